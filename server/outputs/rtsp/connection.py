"""One client's RTSP connection: requests read with limits (message.py), authenticated by
Digest against the user's stream credential, answered in order.

OPTIONS answers without credentials; DESCRIBE, SETUP and PLAY need them (once per
connection, checked again through the view registry whenever what the client sees
changes). A path the user may not see answers 404 like an unknown one, after
authentication. A failed answer counts in the login throttle per user and per address,
and is journaled. Garbage, a missing CSeq or an oversized head gets its 4xx and the
connection is closed: never a stall.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from server.access import digest
from server.access.auth import Credential
from server.access.scope import Principal, refusal
from server.audit import Client
from server.outputs.rtsp.feed import Feed, Unavailable, async_resolve, parameter_sets, stream_path
from server.outputs.rtsp.message import BadRequest, Request, RequestReader
from server.outputs.rtsp.sdp import session_description
from server.outputs.rtsp.session import Interleaved, RtspSession, UdpPeer

if TYPE_CHECKING:
    from server.outputs.rtsp.server import RtspServer

logger = logging.getLogger(__name__)

READ_SIZE = 65_536
PUBLIC = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, GET_PARAMETER, SET_PARAMETER, TEARDOWN"
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 413: "Request Entity Too Large",
           431: "Request Header Fields Too Large", 453: "Not Enough Bandwidth",
           454: "Session Not Found", 455: "Method Not Valid in This State",
           459: "Aggregate Operation Not Allowed", 461: "Unsupported Transport",
           500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
           505: "RTSP Version Not Supported"}
SERVER = "Vigie"


class Answer(Exception):
    """Stop handling this request and answer `status` (with these extra headers)."""

    def __init__(self, status: int, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers or []


def answer(status: int, cseq: str | None, headers: list[tuple[str, str]] = (),
           body: bytes = b"") -> bytes:
    lines = [f"RTSP/1.0 {status} {REASONS.get(status, 'Error')}"]
    if cseq is not None:
        lines.append(f"CSeq: {cseq}")
    lines.append(f"Server: {SERVER}")
    lines += [f"{name}: {value}" for name, value in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _transport_choice(header: str) -> dict[str, str] | None:
    """The first transport offered that we serve: RTP over TCP or UDP, unicast."""
    for offer in header.split(","):
        parts = [part.strip() for part in offer.split(";")]
        spec = parts[0].upper()
        if spec not in ("RTP/AVP", "RTP/AVP/UDP", "RTP/AVP/TCP"):
            continue
        params = {}
        for part in parts[1:]:
            name, _, value = part.partition("=")
            params[name.strip().lower()] = value.strip()
        if "multicast" in params:
            continue
        params["lower"] = "tcp" if spec.endswith("TCP") else "udp"
        return params
    return None


def _pair(text: str) -> tuple[int, int] | None:
    first, _, second = text.partition("-")
    if not (first.isdigit() and len(first) <= 5 and (not second or (second.isdigit() and len(second) <= 5))):
        return None
    low = int(first)
    high = int(second) if second else low + 1
    return (low, high) if 0 <= low <= 65535 and 0 <= high <= 65535 else None


class RtspConnection:
    def __init__(self, server: RtspServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self._reader = reader
        self._writer = writer
        peer = writer.get_extra_info("peername") or ("-", 0)
        self.address: str = str(peer[0])
        self.tls = writer.get_extra_info("sslcontext") is not None
        self.principal: Principal | None = None
        self.credential: Credential | None = None
        self.sessions: dict[str, RtspSession] = {}
        self.user_agent = ""
        self.last_activity = time.monotonic()
        self._closed = asyncio.Event()

    # -- the connection ---------------------------------------------------------------

    async def run(self) -> None:
        requests = RequestReader()
        try:
            while not self._closed.is_set():
                read = asyncio.ensure_future(self._reader.read(READ_SIZE))
                closed = asyncio.ensure_future(self._closed.wait())
                done, _ = await asyncio.wait({read, closed}, timeout=self.server.session_timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                closed.cancel()
                if read not in done:
                    read.cancel()
                    if self._closed.is_set() or not self._playing_tcp():
                        break  # silent for the session timeout, or ended by the server
                    continue  # a TCP client playing: its liveness is the socket's (stalls drop it)
                data = read.result()
                if not data:
                    break
                self.last_activity = time.monotonic()
                for session in self.sessions.values():
                    session.last_activity = self.last_activity
                try:
                    for request in requests.feed(data):
                        await self._handle(request)
                except BadRequest as refused:
                    self._writer.write(answer(refused.status, None, [("Connection", "close")]))
                    break
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            await self.async_close("client left")

    def _playing_tcp(self) -> bool:
        return any(s.playing and s.transport.kind == "tcp" for s in self.sessions.values())

    def end(self) -> None:
        """Ask the connection to end (the server's reaper, revoked views, shutdown)."""
        self._closed.set()

    async def async_close(self, reason: str) -> None:
        for session in list(self.sessions.values()):
            await self._end_session(session, reason)
        self._closed.set()
        if not self._writer.is_closing():
            self._writer.close()
        self.server.forget(self)

    async def _end_session(self, session: RtspSession, reason: str) -> None:
        if self.sessions.pop(session.id, None) is None:
            return  # already ending
        await session.async_stop(self.server.views, reason)
        # Out of the open sessions and into the ended totals with no await between: /metrics
        # read in between would lose the session from both.
        self.server.sessions.pop(session.id, None)
        self.server.ended(session)

    # -- requests --------------------------------------------------------------------------

    async def _handle(self, request: Request) -> None:
        self.user_agent = request.header("user-agent")[:300] or self.user_agent
        handler = getattr(self, "_" + request.method.lower(), None)
        try:
            if handler is None:
                raise Answer(405 if request.method in ("ANNOUNCE", "RECORD") else 501,
                             [("Allow", PUBLIC)])
            headers, body = await handler(request)
            status = 200
        except Answer as refused:
            status, headers, body = refused.status, refused.headers, b""
        except Exception:  # noqa: BLE001 - one bad request must not take the server down
            logger.exception("RTSP %s failed", request.method)
            status, headers, body = 500, [], b""
        self._writer.write(answer(status, request.cseq, headers, body))

    async def _options(self, request: Request) -> tuple[list[tuple[str, str]], bytes]:
        return [("Public", PUBLIC)], b""

    async def _get_parameter(self, request: Request) -> tuple[list[tuple[str, str]], bytes]:
        self._session_of(request, required=False)  # a keep-alive
        return self._session_header(request), b""

    _set_parameter = _get_parameter

    async def _describe(self, request: Request) -> tuple[list[tuple[str, str]], bytes]:
        principal = await self._authenticate(request)
        feed = await self._feed(principal, request)
        try:
            codec, sets = await parameter_sets(feed)
        except Unavailable:
            raise Answer(503, [("Retry-After", "5")]) from None
        base = request.url.split("?")[0].rstrip("/") + "/"
        sdp = session_description(codec, sets, feed.fps, "trackID=0", name=feed.path)
        return [("Content-Base", base), ("Content-Type", "application/sdp")], sdp.encode()

    async def _setup(self, request: Request) -> tuple[list[tuple[str, str]], bytes]:
        principal = await self._authenticate(request)
        existing = self._session_of(request, required=False)
        if existing is not None:
            raise Answer(459)  # one track per stream: a second SETUP has nothing to add
        feed = await self._feed(principal, request)
        choice = _transport_choice(request.header("transport"))
        if choice is None:
            raise Answer(461)
        try:
            codec, _ = await parameter_sets(feed)
        except Unavailable:
            raise Answer(503, [("Retry-After", "5")]) from None
        if choice["lower"] == "tcp":
            channels = _pair(choice.get("interleaved", "0-1"))
            if channels is None or channels[0] > 254:
                raise Answer(461)
            transport = Interleaved(self._writer, channels[0])
        else:
            udp = self.server.udp
            ports = _pair(choice.get("client_port", ""))
            if udp is None or ports is None or not ports[0]:
                raise Answer(461)
            # Only ever to the address this request came from: `destination` is ignored,
            # so nobody can point Vigie's streams at a third party.
            transport = UdpPeer(udp.rtp, udp.rtcp, self.address, ports, udp.ports)
        assert self.credential is not None
        session = RtspSession(feed, codec, transport, principal, self.credential, self._client(principal))
        self.sessions[session.id] = session
        self.server.sessions[session.id] = session
        header = f"{transport.header()};ssrc={session.packetiser.ssrc:08X}"
        return [("Transport", header),
                ("Session", f"{session.id};timeout={self.server.session_timeout}")], b""

    async def _play(self, request: Request) -> tuple[list[tuple[str, str]], bytes]:
        await self._authenticate(request)
        session = self._session_of(request)
        if not session.playing:
            try:
                session.play(self.server.views)
            except web.HTTPNotFound:
                raise Answer(404) from None
            except web.HTTPTooManyRequests:
                raise Answer(453) from None
            session.task.add_done_callback(lambda _: self._sending_ended(session))
        url = request.url.split("?")[0].rstrip("/") + "/trackID=0"
        rtp_info = (f"url={url};seq={session.packetiser.sequence};"
                    f"rtptime={session.rtp_time(time.time())}")
        return [*self._session_header(request), ("Range", "npt=0.000-"), ("RTP-Info", rtp_info)], b""

    async def _pause(self, request: Request) -> tuple[list[tuple[str, str]], bytes]:
        session = self._session_of(request)
        await session.async_stop(self.server.views, "paused")
        return self._session_header(request), b""

    async def _teardown(self, request: Request) -> tuple[list[tuple[str, str]], bytes]:
        session = self._session_of(request)
        await self._end_session(session, "closed")
        return [], b""

    # -- helpers ---------------------------------------------------------------------------

    def _sending_ended(self, session: RtspSession) -> None:
        """A session's sending stopped by itself (revoked, too slow, its stream closed):
        the client cannot be told in RTSP 1.0, so the connection ends."""
        if session.id in self.sessions and session.task is not None:
            self.end()

    def _session_of(self, request: Request, required: bool = True) -> RtspSession | None:
        key = request.header("session").split(";")[0].strip()
        session = self.sessions.get(key) if key else None
        if session is None and required:
            raise Answer(454)
        if session is not None:
            session.last_activity = time.monotonic()
        return session

    def _session_header(self, request: Request) -> list[tuple[str, str]]:
        key = request.header("session").split(";")[0].strip()
        return [("Session", f"{key};timeout={self.server.session_timeout}")] if key in self.sessions else []

    async def _feed(self, principal: Principal, request: Request) -> Feed:
        path = urlsplit(request.url).path if "://" in request.url else request.url
        try:
            feed = await async_resolve(self.server.runtime, principal, path)
        except Unavailable:
            raise Answer(503, [("Retry-After", "5")]) from None
        if feed is None:
            raise Answer(404)
        return feed

    def _client(self, principal: Principal) -> Client:
        return Client(user=principal.name, role=principal.role.value, address=self.address,
                      user_agent=self.user_agent)

    # -- authentication --------------------------------------------------------------------

    async def _authenticate(self, request: Request) -> Principal:
        auth = self.server.auth
        if self.credential is not None:
            principal = auth.holder(self.credential)
            if principal is not None:
                self.principal = principal
                return principal
            self.principal = self.credential = None  # its credential changed: log in again
        header = request.header("authorization")
        if not header:
            raise Answer(401, self._challenges())
        scheme = header.split(" ", 1)[0].lower()
        if scheme == "basic" and self.tls:
            fields = _basic_fields(header)
        elif scheme == "digest":
            fields = digest.parse_authorization(header)
        else:
            fields = None
        if fields is None or not fields.get("username"):
            raise Answer(401, self._challenges())
        user = fields["username"][:64]
        if fields.get("uri") is not None and stream_path(_path_of(fields["uri"])) != stream_path(_path_of(request.url)):
            raise Answer(401, self._challenges())
        wait, attempt = await auth.async_reserve(user, self.address)
        if wait > 0:
            await self._journal_failure(user, "throttled")
            raise Answer(503, [("Retry-After", str(int(wait) + 1))])
        if "password" in fields:
            outcome, principal, credential = auth.stream_basic_login(user, fields["password"])
        else:
            outcome, principal, credential = auth.stream_login(fields, request.method, self.server.secret)
        if outcome == "stale":
            auth.login_cancelled(user, self.address, attempt)
            raise Answer(401, self._challenges(stale=True))
        if outcome != "ok" or principal is None or credential is None:
            await self._journal_failure(user, "bad credentials")
            raise Answer(401, self._challenges())
        auth.login_succeeded(user, self.address, attempt)
        reason = refusal(principal, "rtsp", self.address, time.time())
        if reason is not None:
            await self.server.journal().async_event("access_denied", self._client(principal),
                                                     detail={"output": "rtsp", "reason": reason})
            raise Answer(403)
        self.principal, self.credential = principal, credential
        await self.server.journal().async_event("login", self._client(principal), detail={"output": "rtsp"})
        return principal

    def _challenges(self, stale: bool = False) -> list[tuple[str, str]]:
        headers = [("WWW-Authenticate", value) for value in digest.challenges(self.server.secret, stale)]
        if self.tls:
            headers.append(("WWW-Authenticate", f'Basic realm="{digest.REALM}"'))
        return headers

    async def _journal_failure(self, user: str, reason: str) -> None:
        known = user in self.server.auth.directory.streams
        client = Client(user=user if known else "(unknown user)", role="anonymous",
                        address=self.address, user_agent=self.user_agent)
        await self.server.journal().async_event("login_failed", client,
                                                 detail={"output": "rtsp", "reason": reason})


def _path_of(url: str) -> str:
    return urlsplit(url).path if "://" in url else url.split("?")[0]


def _basic_fields(header: str) -> dict[str, str] | None:
    """Basic credentials (only ever read over TLS)."""
    try:
        decoded = base64.b64decode(header.split(" ", 1)[1].strip(), validate=True).decode()
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return {"username": user, "password": password} if colon else None
