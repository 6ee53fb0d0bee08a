"""GET /api/cameras and /api/cameras/{id}: the cameras a principal may read, with their
state, rates and reasons (a foreign camera answers exactly like an unknown one)."""

from __future__ import annotations

from aiohttp import web

from ingest.camera.worker import CameraWorker
from server.access.auth import principal_of
from server.access.scope import Role, visible_cameras
from server.access.views import shown_to
from server.keys import CLUSTER, RUNTIME
from server.runtime.describe import camera_json

routes = web.RouteTableDef()


def _listed_camera_ids(request: web.Request) -> list[str]:
    """Cameras whose status a principal may read: those it may watch, and for a kiosk the
    cameras of its wall (names and states for its labels; it still cannot open them)."""
    runtime = request.app[RUNTIME]
    principal = principal_of(request)
    if principal.role == Role.KIOSK and principal.wall:
        on_wall = set(shown_to(runtime, principal, "wall", principal.wall) or ())
        return [camera_id for camera_id in runtime.camera_communes if camera_id in on_wall]
    return visible_cameras(principal, runtime.camera_communes)


def _visible_workers(request: web.Request) -> list[CameraWorker]:
    runtime = request.app[RUNTIME]
    # A camera a reload is restarting has no worker for a moment: not listed meanwhile.
    return [worker for camera_id in _listed_camera_ids(request)
            if (worker := runtime.workers.get(camera_id)) is not None]


def _described(request: web.Request, worker: CameraWorker) -> dict:
    """A camera's JSON, with the node that pulls it when in a cluster."""
    described = camera_json(worker)
    cluster = request.app.get(CLUSTER)
    if cluster is not None:
        described["node"] = cluster.owner(worker.camera.id)
        # Pulled by another node: the camera's state is that node's (this one only reads
        # its relay); what this node decodes (frame age, decoding) stays its own.
        described.update(cluster.relay.camera_health(worker.camera.id) or {})
    return described


@routes.get("/api/cameras")
async def api_cameras(request: web.Request) -> web.Response:
    return web.json_response([_described(request, worker) for worker in _visible_workers(request)])


@routes.get("/api/cameras/{camera_id}")
async def api_camera(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    camera_id = request.match_info["camera_id"]
    # A foreign camera answers exactly like an unknown one: no existence oracle.
    if camera_id not in _listed_camera_ids(request):
        raise web.HTTPNotFound(text="unknown camera")
    worker = runtime.workers.get(camera_id)
    if worker is None:
        raise web.HTTPServiceUnavailable(text="camera restarting; try again in a moment")
    return web.json_response(_described(request, worker))
