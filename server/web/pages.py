"""The viewer's pages: HTML shells from viewer/, filled in by its ES modules."""

from __future__ import annotations

from aiohttp import web

from server.access.auth import COOKIE
from server.access.client import client_address
from server.keys import AUTH, JOURNAL
from server.access.auth import audit_client
from server.web.static import page

routes = web.RouteTableDef()


@routes.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    return page("index.html")


@routes.get("/walls/{wall_id}")
async def wall_page(request: web.Request) -> web.StreamResponse:
    return page("wall.html")


@routes.get("/cameras/{camera_id}")
async def camera_page(request: web.Request) -> web.StreamResponse:
    return page("camera.html")


@routes.get("/maintenance")
async def maintenance_page(request: web.Request) -> web.StreamResponse:
    """Camera health for technicians: problems now, availability per commune, planned works
    (server/api/maintenance.py). Police see their communes, read only."""
    return page("maintenance.html")


@routes.get("/kiosk")
async def kiosk(request: web.Request) -> web.StreamResponse:
    """A wall screen opens /kiosk?token=T once: the token becomes a session, and the screen
    lands on its wall in kiosk mode (no chrome). The token is never echoed back."""
    auth = request.app[AUTH]
    token = request.rel_url.query.get("token", "")
    # Counted per address and per token prefix: one screen typing a wrong token (or one
    # attacker) must not lock every kiosk out.
    wait, attempt = await auth.async_reserve("kiosk:" + token[:8], client_address(request))
    if wait > 0:
        raise web.HTTPTooManyRequests(text=f"too many failed attempts: retry in {int(wait) + 1} s",
                                      headers={"Retry-After": str(int(wait) + 1)})
    proof = auth.token_login(token) if token else None
    if proof is None or proof.principal.wall is None:
        await request.app[JOURNAL].async_event("login_failed", audit_client(request, user="kiosk:?"),
                                               detail={"reason": "bad token"})
        raise web.HTTPNotFound(text="unknown kiosk token")
    auth.login_succeeded("kiosk:" + token[:8], client_address(request), attempt)
    principal = proof.principal
    session = await auth.async_create_session(proof, request)
    await request.app[JOURNAL].async_event("login", audit_client(request, principal))
    response = web.Response(status=303, headers={"Location": f"/walls/{principal.wall}?kiosk=1",
                                                 "Referrer-Policy": "no-referrer"})
    response.set_cookie(COOKIE, session, httponly=True, samesite="Strict", path="/",
                        secure=auth.cookie_secure(request))
    return response
