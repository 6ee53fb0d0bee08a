"""Authentication: who is asking. Session cookies for browsers, bearer tokens for kiosks
and scrapers, login with throttling, and a middleware that refuses by default.

Without a session only the routes in PUBLIC_PATHS answer. State-changing requests from a
browser must come from our own origin (SameSite=Strict cookies, plus an Origin /
Sec-Fetch-Site check), which makes cross-site request forgery fail.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from aiohttp import web

from server.audit import Client
from server.access import digest
from server.config import VigieConfig
from server.errors import json_error
from server.access.scope import Principal, Role, refusal
from server.access.secrets import hash_password, verify_password
from server.access.directory import Directory, StreamAccount
from server.access.sessions import LoginThrottle, SessionStore, credential_fingerprint
from server.access.client import client_address
from server.keys import AUTH, JOURNAL

if TYPE_CHECKING:
    from server.cluster.throttle import SharedThrottle

logger = logging.getLogger(__name__)

COOKIE = "vigie_session"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/login", "/kiosk", "/assets/login.css",
                          "/assets/login.js", "/assets/vigie.svg", "/favicon.ico",
                          # ONVIF authenticates each SOAP request itself (WS-Security)
                          "/onvif/device_service", "/onvif/media_service"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Login:
    """A principal that just proved itself, and the fingerprint of the credential it used."""

    principal: Principal
    credential: str


@dataclass(frozen=True)
class Credential:
    """What let a request in: a session (by its token's digest) or a bearer token (by its
    hash). An open view keeps it, so that it can ask later whether it still holds."""

    kind: str  # "session" | "token" | "stream" (an RTSP login: user name and fingerprint)
    key: str


class Auth:
    def __init__(self, config: VigieConfig) -> None:
        self.directory = Directory(config)
        # Signs Digest nonces (server/access/digest.py) for RTSP and HTTP snapshots alike.
        self.nonce_secret = secrets.token_bytes(32)
        self.sessions = SessionStore(idle_seconds=config.sessions.idle_minutes * 60)
        self.throttle = LoginThrottle()
        self.secure_cookies = config.sessions.secure_cookies
        # In a cluster (server/cluster/sessions.py): find a cookie made on another node,
        # and wait until a session made here can be found by the others.
        self.look_up_session: Callable[[str], Awaitable[bool]] | None = None
        self.session_shared: Callable[[str], Awaitable[None]] | None = None
        # In a cluster (server/cluster/throttle.py): failed logins counted on every node.
        self.shared_throttle: SharedThrottle | None = None

    async def async_reserve(self, user: str, address: str) -> tuple[float, float]:
        """Start a login attempt (LoginThrottle.reserve): (seconds to wait, 0) or (0, its
        stamp). In a cluster, counted cluster-wide; this node's own count if NATS fails."""
        if self.shared_throttle is not None:
            try:
                return await self.shared_throttle.async_reserve(user, address)
            except Exception as error:  # noqa: BLE001 - throttled here alone meanwhile
                logger.warning("login throttle: the cluster's count unavailable (%s); this node's own", error)
        return self.throttle.reserve(user, address)

    def login_succeeded(self, user: str, address: str, stamp: float) -> None:
        self.throttle.succeeded(user, address, stamp)
        if self.shared_throttle is not None:
            self.shared_throttle.succeeded(user, address, stamp)

    def login_cancelled(self, user: str, address: str, stamp: float) -> None:
        self.throttle.cancel(user, address, stamp)
        if self.shared_throttle is not None:
            self.shared_throttle.cancelled(user, address, stamp)

    def reload(self, config: VigieConfig) -> None:
        self.directory = Directory(config)
        self.sessions.idle_seconds = config.sessions.idle_minutes * 60
        self.secure_cookies = config.sessions.secure_cookies
        dropped = self.sessions.retain(self.directory.still_valid)
        if dropped:
            logger.info("config reload ended %d sessions of removed or changed users", dropped)

    async def async_create_session(self, login: Login, request: web.Request) -> str:
        """A new session for a principal that just proved itself; returns the cookie's token
        (in a cluster, once every node can find it)."""
        token = self.sessions.create(login.principal, client_address(request), login.credential,
                                     request.headers.get("User-Agent", ""))
        if self.session_shared is not None:
            await self.session_shared(token)
        return token

    def token_login(self, token: str) -> Login | None:
        """A kiosk screen trading its wall token for a session (metrics tokens never)."""
        token_hash = self.directory.token_hash(token)
        principal = self.directory.tokens.get(token_hash)
        if principal is None or principal.role != Role.KIOSK:
            return None
        return Login(principal, credential_fingerprint(token_hash))

    def identify(self, request: web.Request) -> tuple[Principal, Credential] | None:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            token_hash = self.directory.token_hash(header[7:].strip())
            principal = self.directory.tokens.get(token_hash)
            return None if principal is None else (principal, Credential("token", token_hash))
        token = request.cookies.get(COOKIE)
        if token:
            session = self.sessions.get(token)
            if session is not None:
                return session.principal, Credential("session", self.sessions.digest(token))
        return None

    def holder(self, credential: Credential) -> Principal | None:
        """Who holds this credential now (None: the session ended, the token was rotated,
        the stream password changed, the user's authorisation ran out)."""
        if credential.kind == "token":
            principal = self.directory.tokens.get(credential.key)
        elif credential.kind == "stream":
            name, _, fingerprint = credential.key.partition("\x00")
            account = self.directory.streams.get(name)
            principal = account.principal if account and account.fingerprint == fingerprint else None
        else:
            session = self.sessions.get_by_digest(credential.key, touch=False)
            principal = None if session is None else session.principal
        if principal is not None and principal.valid_until is not None and time.time() >= principal.valid_until:
            return None
        return principal

    def stream_login(self, fields: dict[str, str], method: str,
                     secret: bytes) -> tuple[str, Principal | None, Credential | None]:
        """Check a Digest answer against the user's stream credential: ('ok', principal,
        credential), ('stale', ...) or ('refused', None, None). An unknown user is refused
        like a wrong password."""
        account = self.directory.streams.get(fields.get("username", ""))
        if account is None:
            return "refused", None, None
        outcome = digest.check(fields, method, account.ha1, secret)
        if outcome != "ok":
            return outcome, None, None
        return "ok", account.principal, _stream_credential(account)

    def stream_basic_login(self, user: str, password: str) -> tuple[str, Principal | None, Credential | None]:
        """Basic credentials (only over TLS) checked against the stream credential's HA1."""
        account = self.directory.streams.get(user)
        if account is None or not hmac.compare_digest(account.ha1["SHA-256"], digest.ha1("SHA-256", user, password)):
            return "refused", None, None
        return "ok", account.principal, _stream_credential(account)

    def cookie_secure(self, request: web.Request) -> bool:
        if self.secure_cookies == "always":
            return True
        if self.secure_cookies == "never":
            return False
        return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"

    async def check_password(self, name: str, password: str) -> Login | None:
        """argon2 costs tens of milliseconds of CPU: run it off the event loop. The account
        is read before the check and must be the same after it: a reload during the check
        (a password changed, a user removed or moved to other communes) refuses the login
        rather than make a session of the old credential that the reload could not end."""
        account = self.directory.accounts.get(name.lower())
        loop = asyncio.get_running_loop()
        if account is None or account.password_hash is None:
            # An unknown name costs the same argon2 check as a known one (no user list by
            # timing), against a hash made on first need: made at startup, it held the
            # server's start back by ~0.2 s.
            await loop.run_in_executor(None, _verify_unknown_user, password)
            return None
        login = Login(account.principal, credential_fingerprint(account.password_hash))
        ok = await loop.run_in_executor(None, verify_password, account.password_hash, password)
        if not ok or self.directory.current(account.principal.name) != (login.principal, login.credential):
            return None
        return login


def _stream_credential(account: StreamAccount) -> Credential:
    """A stream login's credential: the user and its credential's fingerprint (a changed
    stream password ends what it opened)."""
    return Credential("stream", f"{account.principal.name}\x00{account.fingerprint}")


@functools.cache
def _unknown_user_hash() -> str:
    """A hash nobody's password matches (made in an executor thread; a race makes two)."""
    return hash_password(secrets.token_hex(16))


def _verify_unknown_user(password: str) -> bool:
    """In an executor thread: the argon2 check an unknown name costs (the first one also
    makes the hash, a one-off)."""
    return verify_password(_unknown_user_hash(), password)


PRINCIPAL = "principal"  # request key
CREDENTIAL = "credential"  # request key: the Credential that let the request in


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def credential_of(request: web.Request) -> Credential:
    return request[CREDENTIAL]


def audit_client(request: web.Request, principal: Principal | None = None,
                 user: str | None = None) -> Client:
    principal = principal or request.get(PRINCIPAL)
    return Client(
        user=principal.name if principal else (user or "-"),
        role=principal.role.value if principal else "anonymous",
        address=client_address(request),
        user_agent=request.headers.get("User-Agent", "")[:300],
    )


def _same_origin(request: web.Request) -> bool:
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None  # scripts send none; an opaque origin is refused
    return urlsplit(origin).netloc == request.host


def _wants_html(request: web.Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


@web.middleware
async def auth_middleware(request: web.Request, handler):
    # A WebSocket handshake is a GET that browsers send cross-site with the user's cookies
    # (SameSite=Strict does not cover another port of the same site): checked like a POST.
    if (request.method in UNSAFE_METHODS or _is_upgrade(request)) and not _same_origin(request):
        return json_error(403, "cross-site request refused")
    auth = request.app[AUTH]
    found = auth.identify(request)
    if found is None and auth.look_up_session is not None and request.cookies.get(COOKIE):
        if await auth.look_up_session(request.cookies[COOKIE]):  # made on another node
            found = auth.identify(request)
    snapshot = request.method in ("GET", "HEAD") and _SNAPSHOT.fullmatch(request.path) is not None
    if found is None and snapshot and request.headers.get("Authorization", "")[:7].lower() == "digest ":
        found = await _stream_digest_login(request)
    if found is not None:
        request[PRINCIPAL], request[CREDENTIAL] = found
        return await handler(request)
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    if _wants_html(request):
        raise web.HTTPSeeOther(f"/login?next={quote(request.rel_url.path_qs, safe=SAFE_PATH)}")
    refused = json_error(401, "authentication required")
    if snapshot:  # a video system's snapshot (ONVIF GetSnapshotUri): HTTP Digest, stream credential
        for value in digest.challenges(auth.nonce_secret):
            refused.headers.add("WWW-Authenticate", value)
    return refused


# Where a stream credential (HTTP Digest) is accepted on the web port: snapshots only, as
# ONVIF's GetSnapshotUri gives them; never the API or the pages.
_SNAPSHOT = re.compile(r"/(cameras|walls)/[^/]{1,64}/snapshot\.jpg")


async def _stream_digest_login(request: web.Request) -> tuple[Principal, Credential] | None:
    """An HTTP Digest answer checked against the user's stream credential, through the
    login throttle and the journal like every login."""
    auth = request.app[AUTH]
    fields = digest.parse_authorization(request.headers["Authorization"])
    if fields is None or not fields.get("username") or fields.get("uri") != request.rel_url.raw_path_qs:
        return None
    user, address = fields["username"][:64], client_address(request)
    wait, attempt = await auth.async_reserve(user, address)
    if wait > 0:
        await _journal_stream_failure(request, user, "throttled")
        return None
    outcome, principal, credential = auth.stream_login(fields, request.method, auth.nonce_secret)
    if outcome == "stale":
        auth.login_cancelled(user, address, attempt)
        return None
    if outcome != "ok" or principal is None or credential is None:
        await _journal_stream_failure(request, user, "bad credentials")
        return None
    auth.login_succeeded(user, address, attempt)
    if refusal(principal, "rtsp", address, time.time()) is not None:
        return None
    return principal, credential


async def _journal_stream_failure(request: web.Request, user: str, reason: str) -> None:
    known = user in request.app[AUTH].directory.streams
    await request.app[JOURNAL].async_event(
        "login_failed", audit_client(request, user=user if known else "(unknown user)"),
        detail={"output": "http-digest", "reason": reason})


# What may follow the first "/" of a local path: a path character (RFC 3986 pchar, less
# "%": an escaped "/" or "\\" could turn into a second slash downstream). Not "/" or "\\"
# (another host to a browser), nor a control character or space, which browsers strip
# ("/\t/evil.example" is "//evil.example" to them).
_PATH_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@?#")
_PATH_REST = _PATH_START | frozenset("/%")
SAFE_PATH = "/%-._~!$&'()*+,;=:@?#"  # kept as they are when a path is quoted for next=


def safe_next(target: str | None) -> str:
    """Only same-site relative paths, taken as they are or not at all: never an open
    redirect, never a header split. Anything else goes to the home page."""
    if (not target or len(target) > 2048 or target[0] != "/"
            or (len(target) > 1 and target[1] not in _PATH_START)
            or not all(char in _PATH_REST for char in target[1:])):
        return "/"
    return target
