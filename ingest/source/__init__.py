"""What a camera sends: sources by URL scheme, and how much of it is decoded.

Holds: base (SourceSpec, Packet, SourceError, the Source protocol, the scheme registry),
one module per kind of source, each registering its schemes: pyav (FFmpeg: rtsps, file),
synthetic (with scenes: the places demo cameras draw, and their faults), rtsp/ (our own RTSP client and RTP depacketiser, for rtsp), remote (relay: a
camera another node of a cluster pulls, fed by server/cluster/); decoding (the
decoding policy), lag and backlog (how far behind a camera a source is).
May import: ingest.picture (frame stamps) and itself; nothing of cameras, walls or servers.
"""

from ingest.source import pyav, synthetic  # noqa: F401 - they register their schemes
from ingest.source.base import Packet, Source, SourceError, SourceSpec, open_source, schemes
from ingest.source.pyav import PyAVSource, describe_av_error
from ingest.source import remote as _remote  # noqa: F401 - registers relay
from ingest.source.rtsp import source as _rtsp  # noqa: F401 - registers rtsp
from ingest.source.synthetic import SyntheticSource

__all__ = ["Packet", "PyAVSource", "Source", "SourceError", "SourceSpec", "SyntheticSource",
           "describe_av_error", "open_source", "schemes"]
