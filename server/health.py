"""Health for admins and orchestrators: /healthz, /readyz, /api/status, /api/cameras, /metrics."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from aiohttp import web

from ingest.source.decoding import Decoding
from ingest.camera.health import CameraState, CameraStatus
from ingest.camera.worker import CameraWorker
from server.auth import principal_of
from server.describe import camera_json, wall_json
from server.keys import RUNTIME, STARTED_AT
from server.limits import VIEW_LIMITS
from server.runtime import Runtime
from server.scope import Role, can_read_metrics, visible_cameras
from server.views import shown_to

routes = web.RouteTableDef()



@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    runtime = request.app.get(RUNTIME)
    if runtime is None or not runtime.started:
        return web.json_response({"status": "starting"}, status=503)
    # Public: ready or not, nothing about the machine (no paths, no counts).
    return web.json_response({"status": "ready"})


def _require(allowed: bool) -> None:
    if not allowed:
        raise web.HTTPForbidden(text="not allowed for your role")


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
    })


@routes.get("/api/cameras")
async def api_cameras(request: web.Request) -> web.Response:
    return web.json_response([camera_json(worker) for worker in _visible_workers(request)])


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
    return web.json_response(camera_json(worker))


def wall_visible(request: web.Request, wall_id: str) -> bool:
    return shown_to(request.app[RUNTIME], principal_of(request), "wall", wall_id) is not None


@routes.get("/api/walls")
async def api_walls(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    principal = principal_of(request)
    return web.json_response([wall_json(runtime, wall_id, principal) for wall_id in runtime.walls
                              if wall_visible(request, wall_id)])


@routes.get("/api/walls/{wall_id}")
async def api_wall(request: web.Request) -> web.Response:
    wall_id = request.match_info["wall_id"]
    if not wall_visible(request, wall_id):
        raise web.HTTPNotFound(text="unknown wall")
    return web.json_response(wall_json(request.app[RUNTIME], wall_id, principal_of(request)))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(runtime: Runtime) -> str:
    """Prometheus text exposition, per camera (camera, commune labels) and per wall."""
    now = time.monotonic()
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{{{labels}}} {value:g}" for labels, value in samples)

    cameras: list[tuple[str, CameraStatus]] = []
    for worker in runtime.workers.values():
        labels = f'camera="{_label(worker.camera.id)}",commune="{_label(worker.camera.commune_id)}"'
        cameras.append((labels, worker.status()))
    family("vigie_camera_up", "gauge", "1 if the camera is live.",
           [(labels, float(status.state == CameraState.LIVE)) for labels, status in cameras])
    family("vigie_camera_state", "gauge", "Camera state (one series per state, 1 for the current one).",
           [(f'{labels},state="{state.value}"', float(status.state == state))
            for labels, status in cameras for state in CameraState])
    family("vigie_camera_input_fps", "gauge", "Frames per second received from the camera.",
           [(labels, status.input_fps) for labels, status in cameras])
    family("vigie_camera_bitrate_bits_per_second", "gauge", "Bitrate received from the camera.",
           [(labels, status.bitrate_bps) for labels, status in cameras])
    family("vigie_camera_frame_age_seconds", "gauge", "Seconds since the last decoded frame (-1: never).",
           [(labels, -1.0 if status.frame_age is None else status.frame_age) for labels, status in cameras])
    family("vigie_camera_reconnects_last_hour", "gauge", "Reconnections in the last hour.",
           [(labels, float(status.reconnects_last_hour)) for labels, status in cameras])
    family("vigie_camera_behind_seconds", "gauge",
           "Seconds the last picture came behind the camera's clock (link or server delay; -1: not decoding in full).",
           [(labels, -1.0 if status.behind is None else status.behind) for labels, status in cameras])
    family("vigie_camera_lag_skips_total", "counter",
           "Times decoding fell behind the camera and skipped to its next keyframe (short of CPU).",
           [(labels, float(status.lag_skips)) for labels, status in cameras])
    family("vigie_camera_decoding", "gauge",
           "What is decoded of the camera, one series per mode, 1 for the current one: full, "
           "reduced (watched, keyframes only: the server is short of CPU), keyframes (nobody watches).",
           [(f'{labels},mode="{mode.value}"', float(status.decoding == mode))
            for labels, status in cameras for mode in Decoding])
    walls = [(f'wall="{_label(wall_id)}"', runtime.wall_stream(wall_id)) for wall_id in runtime.walls]
    family("vigie_wall_fps_delivered", "gauge", "Frames per second sent by the wall's encoder.",
           [(labels, stream.fps_delivered()) for labels, stream in walls])
    family("vigie_wall_viewers", "gauge", "Viewers connected to the wall.",
           [(labels, float(stream.viewer_count)) for labels, stream in walls])
    family("vigie_wall_dropped_frames_total", "counter", "Frames dropped for slow viewers.",
           [(labels, float(stream.dropped_frames())) for labels, stream in walls])
    family("vigie_wall_slow_viewers_disconnected_total", "counter", "Viewers disconnected for being too slow.",
           [(labels, float(stream.disconnected_slow())) for labels, stream in walls])
    return "\n".join(lines) + "\n"


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    _require(can_read_metrics(principal_of(request)))
    return web.Response(text=render_metrics(request.app[RUNTIME]),
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})
