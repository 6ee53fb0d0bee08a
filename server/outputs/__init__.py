"""Live outputs to viewers: targets (what a request asks to see, scope-checked, and the view
that opens it), mjpeg, snapshot and websocket (fMP4 or JPEG), each opened through
server.access.views.
May import: server.access, server.runtime, server.audit, ingest (encoded frames)."""

from aiohttp import web

from server.outputs import mjpeg, snapshot, websocket


def setup_outputs(app: web.Application) -> None:
    for module in (mjpeg, snapshot, websocket):
        app.add_routes(module.routes)
