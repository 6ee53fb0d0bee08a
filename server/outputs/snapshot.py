"""Snapshots: the next frame of a wall, camera or mosaic as one JPEG (a fresh one as it is),
journaled once each."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from ingest.encode.jpeg import JPEG
from server.access.auth import audit_client
from server.access.views import Target, communes_of
from server.errors import json_error
from server.keys import JOURNAL, RUNTIME, VIEWS
from server.outputs.targets import camera_target, mosaic_target, open_view, wall_target

routes = web.RouteTableDef()

SNAPSHOT_TIMEOUT = 10.0
SNAPSHOT_MAX_AGE = 1.0  # seconds: a frame this fresh is served as it is (`?max_age=` changes it)


def _max_age(request: web.Request) -> float:
    try:
        value = float(request.rel_url.query.get("max_age", SNAPSHOT_MAX_AGE))
    except ValueError:
        raise web.HTTPBadRequest(text="max_age must be a number of seconds") from None
    if not 0 <= value <= 60:
        raise web.HTTPBadRequest(text="max_age must be between 0 and 60 seconds")
    return value


async def _snapshot(request: web.Request, target: Target) -> web.Response:
    max_age = _max_age(request)
    runtime = request.app[RUNTIME]
    # Scope was checked by the target, with no await since: a fresh frame is served as it is.
    stream = target.stream if target.stream is not None else runtime.mosaic(target.key)
    latest = stream.hubs[JPEG].latest if stream is not None else None
    cameras = runtime.target_cameras(target.kind, target.key) or ()
    if latest is not None and time.time() - latest.wall_time <= max_age:
        frame = latest  # fresh enough: no need to start (or keep) the compositor
    else:
        # A view for one frame: it starts the wall, and is re-checked like any other
        # while it waits (a change that hides the wall from this user ends it).
        view = open_view(request, target, "snapshot", JPEG, journaled=False, counted=False)
        try:
            frame = await asyncio.wait_for(view.viewer.next_frame(), SNAPSHOT_TIMEOUT)
        except TimeoutError:
            frame = None
        finally:
            await request.app[VIEWS].async_close(view, "snapshot")
        if view.revoked:
            raise web.HTTPNotFound(text=f"unknown {target.kind}")
        cameras = view.cameras
    if frame is None:
        return json_error(503, "no frame available yet")
    await request.app[JOURNAL].async_event(
        "snapshot", audit_client(request), target=f"{target.kind}:{target.id}",
        cameras=cameras, communes=communes_of(runtime, cameras))
    return web.Response(body=frame.data, content_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})


@routes.get("/walls/{wall_id}/snapshot.jpg")
async def wall_snapshot(request: web.Request) -> web.Response:
    return await _snapshot(request, wall_target(request))


@routes.get("/cameras/{camera_id}/snapshot.jpg")
async def camera_snapshot(request: web.Request) -> web.Response:
    return await _snapshot(request, camera_target(request))


@routes.get("/mosaic/snapshot.jpg")
async def mosaic_snapshot(request: web.Request) -> web.Response:
    return await _snapshot(request, mosaic_target(request))
