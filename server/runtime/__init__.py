"""The running data plane built from a config, as the server sees it.

Holds: runtime (Runtime: workers, tile store, walls, streams, reloads), walls (configured
and automatic walls, the communes each is meant for), changes (what a
new config changes, pure), streams (the Stream protocol; a wall's, camera's or mosaic's
compositor and its hubs; a camera's own stream remuxed), specs (what a camera's section
makes for its worker and source), tours, describe (cameras and
walls as JSON), looplag (how late the event loop runs).
May import: ingest, server.config. Never server.access, server.outputs or server.api.
"""

from server.runtime.changes import ReloadSummary
from server.runtime.runtime import MosaicKey, Runtime, TooManyMosaics
from server.runtime.walls import COMMUNE_WALL_PREFIX, grid_for, wall_spec

__all__ = ["COMMUNE_WALL_PREFIX", "MosaicKey", "ReloadSummary", "Runtime", "TooManyMosaics",
           "grid_for", "wall_spec"]
