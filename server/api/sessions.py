"""GET /api/sessions and DELETE /api/sessions?user=: admins see who is logged in, and end
a user's sessions (a lost phone, a leaving agent). Ending a session ends its open views
(server/access/views.py). No token ever appears: sessions are listed by user, time and address."""

from __future__ import annotations

from aiohttp import web

from server.access.auth import principal_of
from server.keys import AUTH, JOURNAL
from server.access.auth import audit_client
from server.access.scope import can_administer

routes = web.RouteTableDef()
MAX_USER = 128


def _admin(request: web.Request) -> None:
    if not can_administer(principal_of(request)):
        raise web.HTTPForbidden(text="only admins manage sessions")


def _user(request: web.Request, required: bool) -> str | None:
    user = request.rel_url.query.get("user")
    if user is not None and not 0 < len(user) <= MAX_USER:
        raise web.HTTPBadRequest(text=f"user: 1 to {MAX_USER} characters")
    if required and user is None:
        raise web.HTTPBadRequest(text="give ?user=NAME")
    return user


@routes.get("/api/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    _admin(request)
    sessions = request.app[AUTH].sessions.list(_user(request, required=False))
    return web.json_response([{
        "user": session.principal.name, "role": session.principal.role.value,
        "created": round(session.created, 3), "last_seen": round(session.last_seen, 3),
        "address": session.address, "user_agent": session.user_agent, "open_views": session.views,
    } for session in sessions])


@routes.delete("/api/sessions")
async def end_sessions(request: web.Request) -> web.Response:
    _admin(request)
    user = _user(request, required=True)
    assert user is not None
    ended = request.app[AUTH].sessions.end_user(user)
    await request.app[JOURNAL].async_event("sessions_ended", audit_client(request),
                                           target=f"user:{user}", detail={"sessions": ended})
    return web.json_response({"user": user, "ended": ended})
