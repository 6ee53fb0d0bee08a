"""GET /api/walls, GET and PUT /api/walls/{id}: the walls a principal may see; operators
change a wall's layout and cells, or run a tour.

Composition happens on the server, so every screen showing the wall follows at once; the
WebSocket viewers also get a `{"type": "wall"}` message to relabel their cells. Changes
live in memory until the next reload or restart (the YAML file stays the reference).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging

from aiohttp import web
from pydantic import ValidationError

from ingest.wall.compositor import WallSpec
from server.access.auth import principal_of
from server.access.views import shown_to
from server.config.walls import Wall
from server.runtime.describe import wall_json
from server.keys import CLUSTER, JOURNAL, RUNTIME, VIEWS
from server.access.auth import audit_client
from server.runtime import COMMUNE_WALL_PREFIX, Runtime, wall_spec
from server.runtime.tours import Tour
from server.access.scope import can_drive_walls

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()

TOUR_SECONDS = (3, 3600)
TOUR_MAX_PAGES = 32


def wall_visible(request: web.Request, wall_id: str) -> bool:
    return shown_to(request.app[RUNTIME], principal_of(request), "wall", wall_id) is not None


@routes.get("/api/walls")
async def api_walls(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    principal = principal_of(request)
    return web.json_response([wall_json(runtime, wall_id, principal.sees_everything)
                              for wall_id in runtime.walls
                              if wall_visible(request, wall_id)])


@routes.get("/api/walls/{wall_id}")
async def api_wall(request: web.Request) -> web.Response:
    wall_id = request.match_info["wall_id"]
    if not wall_visible(request, wall_id):
        raise web.HTTPNotFound(text="unknown wall")
    return web.json_response(wall_json(request.app[RUNTIME], wall_id,
                                       principal_of(request).sees_everything))


def _validation_message(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def _new_spec(runtime: Runtime, wall_id: str, body: dict) -> WallSpec:
    current = runtime.walls[wall_id]
    data = {"id": wall_id, "name": current.name, "size": f"{current.width}x{current.height}",
            "fps": current.fps, "layout": body.get("layout", f"{current.columns}x{current.rows}")}
    for key in ("cameras", "cells"):
        if key in body:
            data[key] = body[key]
    if "cameras" not in data and "cells" not in data:
        raise web.HTTPBadRequest(text="give cameras or cells")
    try:
        wall = Wall.model_validate(data)
    except ValidationError as error:
        raise web.HTTPBadRequest(text=_validation_message(error)) from None
    for cell in wall.resolved_cells():
        if cell.camera is not None and cell.camera not in runtime.camera_communes:
            raise web.HTTPBadRequest(text=f"unknown camera {cell.camera!r}")
    return wall_spec(wall)


async def apply_wall(app: web.Application, wall_id: str, spec: WallSpec) -> None:
    """Show `spec` on the wall. In this order, with no await before the re-check: the new
    cells are in place, nothing the old compositor still makes goes out, every open view
    is judged on the new cells (a police viewer who may not see them is closed), and only
    then does the new compositor start and the viewers left hear of the change."""
    runtime = app[RUNTIME]
    runtime.walls[wall_id] = spec
    stream = runtime.wall_stream(wall_id)
    stream.invalidate()
    app[VIEWS].recheck()
    await stream.async_rebuild()
    app[VIEWS].announce_wall(wall_id)


def _parse_tour(runtime: Runtime, wall_id: str, raw) -> Tour:
    if not isinstance(raw, dict) or set(raw) - {"seconds", "pages"}:
        raise web.HTTPBadRequest(text="tour: an object with seconds and pages")
    seconds, pages = raw.get("seconds"), raw.get("pages")
    if (not isinstance(seconds, (int, float)) or isinstance(seconds, bool)
            or not TOUR_SECONDS[0] <= seconds <= TOUR_SECONDS[1]):
        raise web.HTTPBadRequest(text=f"tour.seconds: from {TOUR_SECONDS[0]} to {TOUR_SECONDS[1]}")
    spec = runtime.walls[wall_id]
    if not isinstance(pages, list) or not 2 <= len(pages) <= TOUR_MAX_PAGES:
        raise web.HTTPBadRequest(text=f"tour.pages: 2 to {TOUR_MAX_PAGES} lists of cameras")
    for page in pages:
        if not isinstance(page, list) or len(page) > spec.columns * spec.rows:
            raise web.HTTPBadRequest(text="tour.pages: each page a list of cameras that fits the layout")
        for camera_id in page:
            if camera_id is not None and not isinstance(camera_id, str):
                raise web.HTTPBadRequest(text="tour.pages: camera ids are strings or null")
            if camera_id is not None and camera_id not in runtime.camera_communes:
                raise web.HTTPBadRequest(text=f"tour.pages: unknown camera {str(camera_id)[:64]!r}")
    return Tour(float(seconds), pages)


async def _run_tour(app: web.Application, wall_id: str, tour: Tour) -> None:
    runtime = app[RUNTIME]
    while True:
        spec = runtime.walls.get(wall_id)
        if spec is None:  # a reload removed the wall
            runtime.tours.pop(wall_id, None)
            return
        page = tour.pages[tour.index]
        data = {"id": wall_id, "name": spec.name, "size": f"{spec.width}x{spec.height}",
                "fps": spec.fps, "layout": f"{spec.columns}x{spec.rows}", "cameras": page}
        await apply_wall(app, wall_id, wall_spec(Wall.model_validate(data)))
        await asyncio.sleep(tour.seconds)
        tour.index = (tour.index + 1) % len(tour.pages)


def stop_tour(app: web.Application, wall_id: str) -> None:
    tour = app[RUNTIME].tours.pop(wall_id, None)
    if tour is not None and tour.task is not None:
        tour.task.cancel()


@routes.put("/api/walls/{wall_id}")
async def put_wall(request: web.Request) -> web.Response:
    app = request.app
    runtime = app[RUNTIME]
    wall_id = request.match_info["wall_id"]
    principal = principal_of(request)
    if not wall_visible(request, wall_id):
        raise web.HTTPNotFound(text="unknown wall")
    if not can_drive_walls(principal):
        raise web.HTTPForbidden(text="only operators and admins change walls")
    if wall_id.startswith(COMMUNE_WALL_PREFIX):
        raise web.HTTPConflict(text="a commune's automatic wall follows its cameras")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="body is not valid JSON") from None
    detail = await change_wall(app, wall_id, body)
    cluster = app.get(CLUSTER)
    if cluster is not None:  # every node shows the same wall
        await cluster.async_tell("wall", {"wall": wall_id, "body": body})
    cameras = runtime.wall_cameras(wall_id)
    await app[JOURNAL].async_event(
        "wall_change", audit_client(request), target=f"wall:{wall_id}", cameras=cameras,
        communes=sorted({runtime.camera_communes[c] for c in cameras}), detail=detail)
    return web.json_response(wall_json(runtime, wall_id, principal.sees_everything))


async def change_wall(app: web.Application, wall_id: str, body: object) -> dict:
    """Apply a wall change (PUT's body: a layout, or a tour); returns what the journal says
    of it. 400 if the body is not one."""
    runtime = app[RUNTIME]
    if not isinstance(body, dict) or not body or set(body) - {"layout", "cameras", "cells", "tour"}:
        raise web.HTTPBadRequest(text="give layout with cameras or cells, or tour")
    if "tour" in body:
        if set(body) != {"tour"}:
            raise web.HTTPBadRequest(text="tour goes alone")
        stop_tour(app, wall_id)
        if body["tour"] is None:
            app[VIEWS].announce_wall(wall_id)
            return {"tour": "stopped"}
        tour = _parse_tour(runtime, wall_id, body["tour"])
        runtime.tours[wall_id] = tour
        tour.task = asyncio.create_task(_run_tour(app, wall_id, tour))
        return {"tour": "started", "seconds": tour.seconds, "pages": len(tour.pages)}
    spec = _new_spec(runtime, wall_id, body)
    stop_tour(app, wall_id)  # a manual change ends the tour
    await apply_wall(app, wall_id, spec)
    return {"layout": f"{spec.columns}x{spec.rows}"}


async def _changed_elsewhere(app: web.Application, payload: dict) -> None:
    """Another node of the cluster changed a wall: the same change here (journaled there)."""
    wall_id = payload.get("wall")
    if not isinstance(wall_id, str) or wall_id not in app[RUNTIME].walls or wall_id.startswith(COMMUNE_WALL_PREFIX):
        return
    try:
        await change_wall(app, wall_id, payload.get("body"))
    except web.HTTPException as refused:
        logger.warning("cluster: a wall change from node %.64s refused here: %s", payload.get("from"), refused.text)


async def _listen_to_the_cluster(app: web.Application) -> None:
    cluster = app.get(CLUSTER)  # started by then (cleanup contexts run before on_startup)
    if cluster is not None:
        cluster.handlers["wall"] = functools.partial(_changed_elsewhere, app)


async def _tours_ctx(app: web.Application):
    yield
    for wall_id in list(app[RUNTIME].tours):
        stop_tour(app, wall_id)


def setup_walls_api(app: web.Application) -> None:
    app.add_routes(routes)
    app.cleanup_ctx.append(_tours_ctx)
    app.on_startup.append(_listen_to_the_cluster)
