"""Health for orchestrators and admins: /healthz (alive), /readyz (public: ready or not,
nothing more), /api/status (operators and admins: cameras by state, walls, mosaics, load)."""

from __future__ import annotations

import asyncio
import threading
import time

from aiohttp import web

from ingest.camera.health import CameraState
from server.access.auth import principal_of
from server.keys import CLUSTER, RTSP, RUNTIME, STARTED_AT, VIEW_LIMITS

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    runtime = request.app.get(RUNTIME)
    if runtime is None or not runtime.started:
        return web.json_response({"status": "starting"}, status=503)
    cluster = request.app.get(CLUSTER)
    if cluster is not None and not cluster.connected:
        # Cut off from the cluster: its viewers go on, but a load balancer sends new ones
        # to nodes that know every session and relay every camera.
        return web.json_response({"status": "cut off from the cluster"}, status=503)
    # Public: ready or not, nothing about the machine (no paths, no counts).
    return web.json_response({"status": "ready"})


def _require(allowed: bool) -> None:
    if not allowed:
        raise web.HTTPForbidden(text="not allowed for your role")


@routes.get("/api/status")
async def api_status(request: web.Request) -> web.Response:
    _require(principal_of(request).sees_everything)
    runtime = request.app[RUNTIME]
    states: dict[str, int] = {state.value: 0 for state in CameraState}
    for worker in runtime.workers.values():
        states[worker.status().state.value] += 1
    walls = []
    for wall_id, spec in runtime.walls.items():
        stream = runtime.wall_stream(wall_id)
        walls.append({
            "id": wall_id, "name": spec.name, "size": f"{spec.width}x{spec.height}",
            "fps": spec.fps, "composing": stream.compositor.running,
            "viewers": stream.viewer_count,
            "viewers_by_format": {fmt: hub.viewer_count for fmt, hub in stream.hubs.items()},
            "fps_delivered": round(stream.fps_delivered(), 2),
            "dropped_frames": stream.dropped_frames(),
        })
    mosaics = [{"id": stream.name, "composing": stream.compositor.running,
                "viewers": stream.viewer_count} for stream in runtime.mosaic_streams()]
    return web.json_response({
        "ready": runtime.started,
        "open_views": request.app[VIEW_LIMITS].open_views,
        "tasks": len(asyncio.all_tasks()),
        "threads": threading.active_count(),
        "mosaics": mosaics,
        "uptime_seconds": round(time.monotonic() - request.app[STARTED_AT], 1),
        "cameras": {"total": len(runtime.workers), **states},
        "walls": walls,
        # Load shedding (ingest/wall/governor.py): watched cameras reduced to their keyframes.
        "load": runtime.governor.status(),
        # Other video systems reading RTSP: each session, and how many per stream.
        "rtsp": _rtsp_status(request.app),
    })


def _rtsp_status(app: web.Application) -> dict | None:
    server = app.get(RTSP)
    if server is None:
        return None
    sessions = server.status()
    by_path: dict[str, int] = {}
    for session in sessions:
        by_path[session["path"]] = by_path.get(session["path"], 0) + 1
    return {"port": server.port, "sessions": sessions, "sessions_by_path": by_path}
