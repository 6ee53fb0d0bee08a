"""POST /api/demo/cameras/{id}/fault: make a demo camera (synthetic://) freeze, go black, be
covered or blur, and back ({"fault": null}), to watch picture health raise the condition and
clear it (README, picture health). Admins only, journaled; a real camera answers 404."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from aiohttp import web

from ingest.source.scenes import FAULTS
from ingest.source.synthetic import DEMO_FAULTS
from server.access.auth import audit_client, principal_of
from server.access.scope import can_administer, visible_cameras
from server.keys import JOURNAL, RUNTIME

routes = web.RouteTableDef()


@routes.post("/api/demo/cameras/{camera_id}/fault")
async def demo_fault(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    camera_id = request.match_info["camera_id"]
    principal = principal_of(request)
    camera = runtime.config.camera(camera_id)
    if camera is None or camera_id not in visible_cameras(principal, runtime.camera_communes):
        raise web.HTTPNotFound(text="unknown camera")
    if not can_administer(principal):
        raise web.HTTPForbidden(text="only admins make demo cameras fail")
    url = urlsplit(camera.url)
    if url.scheme != "synthetic":
        raise web.HTTPNotFound(text="not a demo camera: only synthetic:// cameras take faults")
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(text="the body is not JSON") from None
    if not isinstance(body, dict) or "fault" not in body:
        raise web.HTTPBadRequest(text='the body is {"fault": "freeze" | "black" | "cover" | "blur" | null}')
    fault = body["fault"]
    if fault is not None and fault not in FAULTS:
        raise web.HTTPBadRequest(text=f"fault: one of {', '.join(FAULTS)}, or null")
    name = url.netloc or url.path.strip("/")
    if fault is None:
        DEMO_FAULTS.pop(name, None)
    else:
        DEMO_FAULTS[name] = fault
    await request.app[JOURNAL].async_event("demo_fault", audit_client(request), target=camera_id,
                                           cameras=[camera_id], communes=[camera.commune],
                                           detail={"fault": fault or "none"})
    return web.json_response({"camera": camera_id, "fault": fault})
