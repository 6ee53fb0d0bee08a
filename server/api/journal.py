"""GET /api/audit: the viewing journal for admins, filtered, as JSON or CSV."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from server.audit import rows_to_csv
from server.access.auth import principal_of
from server.keys import JOURNAL
from server.access.scope import can_administer

routes = web.RouteTableDef()
MAX_LIMIT = 10_000


def _time(value: str | None, name: str) -> float | None:
    """Epoch seconds or ISO 8601 (2026-11-25T08:00:00+01:00)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: epoch seconds or ISO 8601 date expected") from None


def _int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None
    if not low <= number <= high:
        raise web.HTTPBadRequest(text=f"{name} must be between {low} and {high}")
    return number


@routes.get("/api/audit")
async def api_audit(request: web.Request) -> web.StreamResponse:
    """Filters: user, camera, commune, since, until, kind (comma list), limit, offset,
    format=json|csv."""
    if not can_administer(principal_of(request)):
        raise web.HTTPForbidden(text="the journal is for admins")
    query = request.rel_url.query
    kinds = [kind for kind in query.get("kind", "").split(",") if kind] or None
    output = query.get("format", "json")
    if output not in ("json", "csv"):
        raise web.HTTPBadRequest(text="format must be json or csv")
    rows = await request.app[JOURNAL].async_query(
        user=query.get("user") or None, camera=query.get("camera") or None,
        commune=query.get("commune") or None,
        since=_time(query.get("since"), "since"), until=_time(query.get("until"), "until"),
        kinds=kinds, limit=_int(query.get("limit"), "limit", 1000, 1, MAX_LIMIT),
        offset=_int(query.get("offset"), "offset", 0, 0, 10**9))
    if output == "csv":
        return web.Response(text=rows_to_csv(rows), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": 'attachment; filename="vigie-journal.csv"'})
    return web.json_response(rows)
