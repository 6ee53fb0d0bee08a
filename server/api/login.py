"""POST /login, POST /logout, GET /login (the page), GET /api/me."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from server.access.auth import COOKIE, PRINCIPAL, audit_client, safe_next
from server.access.client import client_address
from server.access.scope import Principal
from server.errors import json_error
from server.keys import AUTH, JOURNAL
from server.web.static import page

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()


async def _credentials(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text="body is not valid JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="body must be a JSON object")
        return body
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            return dict(await request.post())
        except (ValueError, AssertionError, UnicodeDecodeError):  # e.g. multipart without boundary
            raise web.HTTPBadRequest(text="malformed form") from None
    raise web.HTTPUnsupportedMediaType(text="send JSON or an HTML form")


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or len(value) > 1024:
        raise web.HTTPBadRequest(text=f"'{name}' must be a string")
    return value


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    return page("login.html")


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    journal = request.app[JOURNAL]
    body = await _credentials(request)
    is_form = request.content_type != "application/json"
    token = _field(body, "token")
    address = client_address(request)
    if token:  # a kiosk screen trading its wall token for a session
        proof = auth.token_login(token)
        name = proof.principal.name if proof else "kiosk:?"
    else:
        name = _field(body, "user").strip()
        password = _field(body, "password")
        if not name or not password:
            raise web.HTTPBadRequest(text="user and password are required")
        proof = None
    # The journal keeps the typed name only if it is a real account: people type their
    # password in the name field by mistake, and that must not end up in the journal.
    journal_name = name if (token or name.lower() in auth.directory.accounts) else "(unknown user)"
    # Counted when it starts, before the password is checked (reserve, then confirm):
    # concurrent guesses cannot all pass the check before the first failure is recorded.
    throttle_name = name if not token else "kiosk:" + token[:8]
    wait, attempt = await auth.async_reserve(throttle_name, address)
    if wait > 0:
        await journal.async_event("login_failed", audit_client(request, user=journal_name),
                                  detail={"reason": "throttled"})
        if is_form:
            return _see_other("/login?error=throttled")
        response = json_error(429, f"too many failed logins: retry in {int(wait) + 1} s")
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    if not token:
        proof = await auth.check_password(name, password)
    if proof is None:
        await journal.async_event("login_failed", audit_client(request, user=journal_name),
                                  detail={"reason": "bad token" if token else "bad credentials"})
        if is_form:
            return _see_other("/login?error=1")
        return json_error(401, "wrong user name or password")
    auth.login_succeeded(throttle_name, address, attempt)
    principal = proof.principal
    session = await auth.async_create_session(proof, request)
    await journal.async_event("login", audit_client(request, principal))
    response = _see_other(safe_next(_field(body, "next"))) if is_form else web.json_response(me_json(principal))
    response.set_cookie(COOKIE, session, httponly=True, samesite="Strict", path="/",
                        secure=auth.cookie_secure(request))
    return response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(COOKIE)
    if token:
        request.app[AUTH].sessions.drop(token)
    await request.app[JOURNAL].async_event("logout", audit_client(request))
    response = web.json_response({"status": "logged out"})
    response.del_cookie(COOKIE, path="/")
    return response


def me_json(principal: Principal) -> dict[str, Any]:
    return {"user": principal.name, "role": principal.role.value,
            "communes": sorted(principal.communes), "wall": principal.wall}


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    return web.json_response(me_json(request[PRINCIPAL]))
