"""Authentication: who is asking. Session cookies for browsers, bearer tokens for kiosks
and scrapers, login with throttling, and a middleware that refuses by default.

Without a session only the routes in PUBLIC_PATHS answer. State-changing requests from a
browser must come from our own origin (SameSite=Strict cookies, plus an Origin /
Sec-Fetch-Site check), which makes cross-site request forgery fail.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from server.config import VigieConfig
from server.errors import json_error
from server.scope import Principal, Role
from server.secrets import hash_password, verify_password
from server.sessions import LoginThrottle, SessionStore

logger = logging.getLogger(__name__)

COOKIE = "vigie_session"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/login", "/kiosk", "/assets/login.css",
                          "/assets/login.js", "/assets/vigie.svg", "/favicon.ico"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Account:
    principal: Principal
    password_hash: str


class Directory:
    """Users and tokens of one config, indexed for login and per-request lookups."""

    def __init__(self, config: VigieConfig) -> None:
        self.accounts: dict[str, Account] = {}
        for user in config.users:
            role = Role(user.role)
            communes = frozenset(user.communes) if role == Role.POLICE else frozenset()
            self.accounts[user.name.lower()] = Account(Principal(user.name, role, communes),
                                                       user.password_hash)
        self.tokens: dict[str, Principal] = {}
        for kiosk in config.kiosks:
            self.tokens[kiosk.token_hash] = Principal(f"kiosk:{kiosk.id}", Role.KIOSK, wall=kiosk.wall)
        if config.metrics.token_hash:
            self.tokens[config.metrics.token_hash] = Principal("metrics", Role.METRICS)

    def by_token(self, token: str) -> Principal | None:
        return self.tokens.get("sha256:" + hashlib.sha256(token.encode()).hexdigest())

    def principal_named(self, name: str) -> Principal | None:
        """The current principal of a user or token name (restoring saved sessions)."""
        account = self.accounts.get(name.lower())
        if account is not None:
            return account.principal
        return next((p for p in self.tokens.values() if p.name == name), None)

    def still_valid(self, principal: Principal) -> bool:
        """After a reload: is this principal still defined, with the same rights?"""
        if principal.role in (Role.KIOSK, Role.METRICS):
            return principal in self.tokens.values()
        account = self.accounts.get(principal.name.lower())
        return account is not None and account.principal == principal


class Auth:
    def __init__(self, config: VigieConfig) -> None:
        self.directory = Directory(config)
        self.sessions = SessionStore(idle_seconds=config.sessions.idle_minutes * 60)
        self.throttle = LoginThrottle()
        self.secure_cookies = config.sessions.secure_cookies

    def reload(self, config: VigieConfig) -> None:
        self.directory = Directory(config)
        self.sessions.idle_seconds = config.sessions.idle_minutes * 60
        self.secure_cookies = config.sessions.secure_cookies
        dropped = self.sessions.retain(self.directory.still_valid)
        if dropped:
            logger.info("config reload ended %d sessions of removed or changed users", dropped)

    def principal(self, request: web.Request) -> Principal | None:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            return self.directory.by_token(header[7:].strip())
        token = request.cookies.get(COOKIE)
        if token:
            session = self.sessions.get(token)
            if session is not None:
                return session.principal
        return None

    def cookie_secure(self, request: web.Request) -> bool:
        if self.secure_cookies == "always":
            return True
        if self.secure_cookies == "never":
            return False
        return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"

    async def check_password(self, name: str, password: str) -> Principal | None:
        """argon2 costs tens of milliseconds of CPU: run it off the event loop."""
        account = self.directory.accounts.get(name.lower())
        loop = asyncio.get_running_loop()
        if account is None:
            # An unknown name costs the same argon2 check as a known one (no user list by
            # timing), against a hash made on first need: made at startup, it held the
            # server's start back by ~0.2 s.
            await loop.run_in_executor(None, _verify_unknown_user, password)
            return None
        ok = await loop.run_in_executor(None, verify_password, account.password_hash, password)
        return account.principal if ok else None


@functools.cache
def _unknown_user_hash() -> str:
    """A hash nobody's password matches (made in an executor thread; a race makes two)."""
    return hash_password(secrets.token_hex(16))


def _verify_unknown_user(password: str) -> bool:
    """In an executor thread: the argon2 check an unknown name costs (the first one also
    makes the hash, a one-off)."""
    return verify_password(_unknown_user_hash(), password)


AUTH = web.AppKey("auth", Auth)
PRINCIPAL = "principal"  # request key


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def client_address(request: web.Request) -> str:
    return request.remote or "-"


def _same_origin(request: web.Request) -> bool:
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None  # scripts send none; an opaque origin is refused
    return urlsplit(origin).netloc == request.host


def _wants_html(request: web.Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


@web.middleware
async def auth_middleware(request: web.Request, handler):
    if request.method in UNSAFE_METHODS and not _same_origin(request):
        return json_error(403, "cross-site request refused")
    principal = request.app[AUTH].principal(request)
    if principal is not None:
        request[PRINCIPAL] = principal
        return await handler(request)
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    if _wants_html(request):
        raise web.HTTPSeeOther(f"/login?next={request.rel_url.path_qs}")
    return json_error(401, "authentication required")


def safe_next(target: str | None) -> str:
    """Only same-site relative paths: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
