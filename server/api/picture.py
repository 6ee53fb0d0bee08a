"""A camera's picture-health reference (ingest/camera/picture_health.py).

- POST /api/cameras/{id}/picture/reference: an operator accepts the current view as the
  reference: after a camera was moved on purpose, a new sign in the scene, or new lighting.
  Operators and admins, journaled; in a cluster every node takes the same view (each judges
  the pictures it decodes).
- GET /api/cameras/{id}/picture/reference.jpg: the newest reference as kept (small, grey,
  privacy masks blacked out), shown beside the current picture on the maintenance page;
  whoever may see the camera, journaled like a snapshot."""

from __future__ import annotations

import asyncio
import functools
import logging

import cv2

from aiohttp import web

from ingest.camera.health import CameraState
from ingest.source.decoding import IDLE_STILL_INTERVAL
from server.access.auth import audit_client, principal_of
from server.access.scope import can_drive_walls, visible_cameras
from server.keys import CLUSTER, JOURNAL, RUNTIME

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()

# A live camera nobody watches decodes a keyframe at least every IDLE_STILL_INTERVAL, or at
# its next keyframe when its GOP is longer (up to 10 s on some cameras): waited for that.
ACCEPT_WAIT = max(3 * IDLE_STILL_INTERVAL, 15.0)


async def _accept(app: web.Application, camera_id: str) -> float | None:
    """The camera's worker takes its next picture as the reference: its time, or None."""
    worker = app[RUNTIME].workers.get(camera_id)
    if worker is None or worker.status().state != CameraState.LIVE:
        return None
    wanted = worker.accept_reference()
    try:
        return await asyncio.wait_for(asyncio.wrap_future(wanted), ACCEPT_WAIT)
    except asyncio.TimeoutError:
        wanted.cancel()
        return None


@routes.post("/api/cameras/{camera_id}/picture/reference")
async def accept_reference(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    camera_id = request.match_info["camera_id"]
    principal = principal_of(request)
    if camera_id not in visible_cameras(principal, runtime.camera_communes):
        raise web.HTTPNotFound(text="unknown camera")  # a foreign camera answers like an unknown one
    if not can_drive_walls(principal):
        raise web.HTTPForbidden(text="only operators and admins set a camera's reference")
    if camera_id not in runtime.workers:
        raise web.HTTPServiceUnavailable(text="camera restarting; try again in a moment")
    taken = await _accept(request.app, camera_id)
    if taken is None:
        raise web.HTTPConflict(text="the camera shows no picture now: nothing to take as its reference")
    await request.app[JOURNAL].async_event("picture_reference", audit_client(request), target=camera_id,
                                           cameras=[camera_id], communes=[runtime.camera_communes[camera_id]])
    cluster = request.app.get(CLUSTER)
    if cluster is not None:
        await cluster.async_tell("picture_reference", {"camera": camera_id})
    return web.json_response({"camera": camera_id, "reference_at": taken})


def _reference_jpeg(app: web.Application, camera_id: str) -> bytes | None:
    """In a worker thread: the newest kept reference as a JPEG, or None."""
    kept = app[RUNTIME].references.load(camera_id)
    if not kept:
        return None
    newest = max(kept, key=lambda reference: reference.learned_at)
    done, jpeg = cv2.imencode(".jpg", newest.grey, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return jpeg.tobytes() if done else None


@routes.get("/api/cameras/{camera_id}/picture/reference.jpg")
async def reference_picture(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    camera_id = request.match_info["camera_id"]
    if camera_id not in visible_cameras(principal_of(request), runtime.camera_communes):
        raise web.HTTPNotFound(text="unknown camera")
    jpeg = await asyncio.get_running_loop().run_in_executor(None, _reference_jpeg, request.app, camera_id)
    if jpeg is None:
        raise web.HTTPNotFound(text="no reference learned yet for this camera")
    await request.app[JOURNAL].async_event("snapshot", audit_client(request), target=f"reference:{camera_id}",
                                           cameras=[camera_id], communes=[runtime.camera_communes[camera_id]])
    return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})


async def _accepted_elsewhere(app: web.Application, payload: dict) -> None:
    camera_id = payload.get("camera")
    if isinstance(camera_id, str) and camera_id in app[RUNTIME].workers:
        if await _accept(app, camera_id) is None:
            logger.warning("camera %s: a reference accepted on node %.64s could not be taken here (no picture)",
                           camera_id, payload.get("from"))


async def _listen_to_the_cluster(app: web.Application) -> None:
    cluster = app.get(CLUSTER)
    if cluster is not None:
        cluster.handlers["picture_reference"] = functools.partial(_accepted_elsewhere, app)


def setup_picture_api(app: web.Application) -> None:
    app.add_routes(routes)
    app.on_startup.append(_listen_to_the_cluster)
