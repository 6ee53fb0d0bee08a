"""The maintenance side of camera health: availability per camera and commune, the incidents
open now and their acknowledgement, planned works (server/audit/incidents.py reads them from
the journal, server/audit/availability.py computes the figures).

- GET /api/availability?commune=&camera=&since=&until=&format=json|csv
- GET /api/incidents: open incidents, planned works in force or to come
- POST /api/incidents/{incident}/acknowledge {"comment"}
- POST /api/works {"cameras", "communes", "start", "end", "reason"}; DELETE /api/works/{key}

Admins and operators see every camera and act; police see their communes' cameras, read
only; anyone else gets 403. Every action is journaled."""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import time
from typing import Any

from aiohttp import web

from server.access.auth import audit_client, principal_of
from server.access.scope import Role, can_drive_walls, visible_cameras
from server.api.journal import _time
from server.audit.availability import Works, availability, availability_csv
from server.audit.incidents import (ACK_KIND, WORKS_CANCELLED_KIND, WORKS_KIND, history, incident_camera,
                                    open_incidents, planned_works)
from server.keys import CONFIG, JOURNAL, RUNTIME

routes = web.RouteTableDef()

TEXT_MAX = 500               # characters of a comment or a reason
WORKS_MAX_SECONDS = 366 * 86400
DEFAULT_WINDOW = 30 * 86400  # availability over the last 30 days unless asked otherwise
_KEY = re.compile(r"[0-9a-f]{16}")
LATEST = 32503680000.0       # 3000-01-01: times beyond are typing errors (and overflow dates)
READERS = (Role.ADMIN, Role.OPERATOR, Role.POLICE)


def _scope(request: web.Request) -> dict[str, str]:
    """The cameras this user may see, with their communes; 403 for who may see none here."""
    principal = principal_of(request)
    if principal.role not in READERS:
        raise web.HTTPForbidden(text="camera health is for operators, admins and police")
    communes = request.app[RUNTIME].camera_communes
    return {camera: communes[camera] for camera in visible_cameras(principal, communes)}


def _moment(value: str | None, name: str) -> float | None:
    moment = _time(value, name)
    if moment is not None and not (math.isfinite(moment) and 0 <= moment <= LATEST):
        raise web.HTTPBadRequest(text=f"{name}: a time between 1970 and 3000 expected")
    return moment


def _acting(request: web.Request) -> dict[str, str]:
    scope = _scope(request)
    if not can_drive_walls(principal_of(request)):
        raise web.HTTPForbidden(text="only operators and admins acknowledge incidents and plan works")
    return scope


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="a JSON object is expected") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="a JSON object is expected")
    return body


def _text(body: dict[str, Any], field: str, required: bool) -> str:
    value = body.get(field, "")
    if not isinstance(value, str) or len(value) > TEXT_MAX or (required and not value.strip()):
        raise web.HTTPBadRequest(text=f"{field}: text of at most {TEXT_MAX} characters expected"
                                 + (", not empty" if required else ""))
    return value.strip()


@routes.get("/api/availability")
async def get_availability(request: web.Request) -> web.Response:
    scope = _scope(request)
    query = request.rel_url.query
    now = time.time()
    until = _moment(query.get("until"), "until")
    until = now if until is None else until
    since = _moment(query.get("since"), "since")
    since = until - DEFAULT_WINDOW if since is None else since
    if since >= until:
        raise web.HTTPBadRequest(text="since must be before until")
    output = query.get("format", "json")
    if output not in ("json", "csv"):
        raise web.HTTPBadRequest(text="format must be json or csv")
    cameras = dict(scope)
    if query.get("commune"):
        cameras = {c: commune for c, commune in cameras.items() if commune == query["commune"]}
    if query.get("camera"):
        cameras = {c: commune for c, commune in cameras.items() if c == query["camera"]}
    found = await request.app[JOURNAL].async_in_db(history, since, until, set(cameras))
    # A month of a thousand cameras is a few hundred milliseconds of Python: not on the loop.
    report = await asyncio.get_running_loop().run_in_executor(
        None, availability, cameras, found.periods, found.works, found.runs, since, until, now)
    if output == "csv":
        return web.Response(text=availability_csv(report), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": 'attachment; filename="vigie-availability.csv"',
                                     "Cache-Control": "no-store"})
    return web.json_response(report, headers={"Cache-Control": "no-store"})


def _works_json(works: Works, scope: dict[str, str]) -> dict[str, Any]:
    """Works as this user may see them: only the cameras and communes of its scope (police
    learn nothing of another commune's cameras from works that cover theirs too)."""
    return {"key": works.key, "cameras": sorted(works.cameras & scope.keys()),
            "communes": sorted(works.communes & set(scope.values())),
            "start": works.start, "end": works.end, "reason": works.reason}


def _covers(works: Works, scope: dict[str, str]) -> bool:
    return bool(works.cameras & scope.keys()) or bool(works.communes & set(scope.values()))


@routes.get("/api/incidents")
async def get_incidents(request: web.Request) -> web.Response:
    scope = _scope(request)
    journal = request.app[JOURNAL]
    now = time.time()
    every_works = [w for w in await journal.async_in_db(planned_works) if _covers(w, scope)]
    names = {camera.id: camera.name for camera in request.app[CONFIG].cameras}
    workers = request.app[RUNTIME].workers
    incidents = []
    for incident in await journal.async_in_db(open_incidents):
        camera = incident["camera"]
        if camera not in scope:
            continue
        incident["name"] = names.get(camera, camera)
        # As availability.py counts it: planned when it began during works covering it.
        incident["planned"] = any(w.start <= incident["since"] < w.end and _covers(w, {camera: scope[camera]})
                                  for w in every_works)
        # Tells the page when to fetch the reference picture again.
        picture = workers[camera].status().picture if camera in workers else None
        incident["reference_at"] = picture.reference_at if picture else None
        incidents.append(incident)
    works = [_works_json(w, scope) for w in every_works if w.end > now]
    return web.json_response({"incidents": incidents, "works": works, "now": now},
                             headers={"Cache-Control": "no-store"})


@routes.post("/api/incidents/{incident}/acknowledge")
async def acknowledge(request: web.Request) -> web.Response:
    scope = _acting(request)
    key = request.match_info["incident"]
    comment = _text(await _body(request), "comment", required=False)
    journal = request.app[JOURNAL]
    found = await journal.async_in_db(incident_camera, key) if _KEY.fullmatch(key) else None
    if found is None or found[0] not in scope:
        raise web.HTTPNotFound(text="unknown incident")  # another commune's answers like an unknown one
    camera, commune = found
    await journal.async_event(ACK_KIND, audit_client(request), target=key, cameras=[camera], communes=[commune],
                              detail={"comment": comment})
    return web.json_response({"incident": key, "acknowledged": {
        "user": audit_client(request).user, "at": time.time(), "comment": comment}})


@routes.post("/api/works")
async def plan_works(request: web.Request) -> web.Response:
    scope = _acting(request)
    body = await _body(request)
    cameras, communes = body.get("cameras", []), body.get("communes", [])
    for field, names, known in (("cameras", cameras, set(scope)), ("communes", communes, set(scope.values()))):
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) > 1000:
            raise web.HTTPBadRequest(text=f"{field}: a list of names expected")
        unknown = [n for n in names if n not in known]
        if unknown:
            raise web.HTTPBadRequest(text=f"{field}: unknown {unknown[0][:64]!r}")
    if not cameras and not communes:
        raise web.HTTPBadRequest(text="works need cameras or communes")
    start, end = (_moment(str(body.get(f, "")), f) for f in ("start", "end"))
    if start is None or end is None or not 0 < end - start <= WORKS_MAX_SECONDS:
        raise web.HTTPBadRequest(text="start and end: a start before the end, at most a year apart")
    reason = _text(body, "reason", required=True)
    key = secrets.token_hex(8)
    covered = sorted({*communes, *(scope[c] for c in cameras)})
    await request.app[JOURNAL].async_event(WORKS_KIND, audit_client(request), target=key, cameras=cameras,
                                           communes=covered, detail={"start": start, "end": end, "reason": reason,
                                                                     "on_communes": ";".join(communes)})
    return web.json_response({"key": key, "cameras": sorted(cameras), "communes": sorted(communes),
                              "start": start, "end": end, "reason": reason}, status=201)


@routes.delete("/api/works/{key}")
async def cancel_works(request: web.Request) -> web.Response:
    scope = _acting(request)
    key = request.match_info["key"]
    journal = request.app[JOURNAL]
    found = [w for w in await journal.async_in_db(planned_works) if w.key == key and _covers(w, scope)]
    if not found:
        raise web.HTTPNotFound(text="unknown works")
    # With the works' end: kept as long as the works are (the journal's purge).
    await journal.async_event(WORKS_CANCELLED_KIND, audit_client(request), target=key,
                              cameras=sorted(found[0].cameras), communes=sorted(found[0].communes),
                              detail={"end": found[0].end})
    return web.json_response({"key": key, "cancelled": True})
