"""What a request asks to see (a wall, a camera, an ad-hoc mosaic), checked against the
viewer's scope, and the view that opens it (server/access/views.py). A camera or wall the
viewer may not see answers exactly like one that does not exist (404): ids cannot be probed.
"""

from __future__ import annotations

from aiohttp import web

from server.access.auth import audit_client, credential_of, principal_of
from server.access.views import OpenView, Target, shown_to
from server.keys import RUNTIME, VIEWS
from server.runtime import MosaicKey, grid_for

# Kernel send buffer per streaming viewer: a couple of frames. A bigger one (Linux grows it
# to megabytes) hides a slow viewer behind seconds of stale frames instead of dropping.
STREAM_SNDBUF = 256 * 1024
MOSAIC_MAX_CAMERAS = 16
MOSAIC_SIZES = {"640x360": (640, 360), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}


def wall_target(request: web.Request) -> Target:
    runtime = request.app[RUNTIME]
    wall_id = request.match_info["wall_id"]
    if shown_to(runtime, principal_of(request), "wall", wall_id) is None:
        raise web.HTTPNotFound(text="unknown wall")
    return Target("wall", wall_id, wall_id, runtime.wall_stream(wall_id))


def camera_target(request: web.Request) -> Target:
    runtime = request.app[RUNTIME]
    camera_id = request.match_info["camera_id"]
    if shown_to(runtime, principal_of(request), "camera", camera_id) is None:
        raise web.HTTPNotFound(text="unknown camera")
    stream = runtime.camera_stream(camera_id)
    if stream is None:  # a reload is restarting it (its own worker not back yet)
        raise web.HTTPServiceUnavailable(text="camera restarting; try again in a moment")
    return Target("camera", camera_id, camera_id, stream)


def mosaic_target(request: web.Request) -> Target:
    """`?cameras=a,b,c&layout=2x2&size=1280x720&fps=15`: cameras the viewer may see. The
    mosaic itself is made only when a view of it opens (HEAD or a refusal makes none)."""
    runtime = request.app[RUNTIME]
    query = request.rel_url.query
    camera_ids = tuple(part for part in query.get("cameras", "").split(",") if part)
    if not camera_ids or len(camera_ids) > MOSAIC_MAX_CAMERAS:
        raise web.HTTPBadRequest(text=f"cameras: give 1 to {MOSAIC_MAX_CAMERAS} camera ids")
    for camera_id in camera_ids:
        if shown_to(runtime, principal_of(request), "camera", camera_id) is None:
            raise web.HTTPNotFound(text="unknown camera")
    layout = query.get("layout")
    if layout:
        try:
            columns, rows = (int(part) for part in layout.lower().split("x"))
        except ValueError:
            raise web.HTTPBadRequest(text="layout must be COLUMNSxROWS, e.g. 2x2") from None
        if not (1 <= columns <= 4 and 1 <= rows <= 4 and columns * rows >= len(camera_ids)):
            raise web.HTTPBadRequest(text="layout must be 1x1 to 4x4 and hold every camera")
    else:
        columns, rows = grid_for(len(camera_ids))
    size = MOSAIC_SIZES.get(query.get("size", "1280x720"))
    if size is None:
        raise web.HTTPBadRequest(text=f"size must be one of {', '.join(MOSAIC_SIZES)}")
    try:
        fps = float(query.get("fps", "15"))
    except ValueError:
        raise web.HTTPBadRequest(text="fps must be a number") from None
    if not 1 <= fps <= 25:
        raise web.HTTPBadRequest(text="fps must be between 1 and 25")
    key = MosaicKey(camera_ids, columns, rows, size, fps)
    return Target("mosaic", ",".join(camera_ids), key, None)


def open_view(request: web.Request, target: Target, output: str, fmt: str, **options) -> OpenView:
    """Register the request's view of `target` (scope checked again, now)."""
    return request.app[VIEWS].open(principal_of(request), credential_of(request),
                                   audit_client(request), target, output, fmt, **options)
