"""The RTSP server: listens (plain or TLS), owns the two UDP sockets every UDP session
sends from, keeps the sessions, and reaps those silent for the session timeout.

Started and stopped with the web application (a cleanup context), on the same event loop:
the loop only moves bytes; frames are encoded by the streams' threads already.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from server.access.auth import Auth
from server.access.views import ViewRegistry
from server.audit import AuditJournal
from server.keys import AUTH, CONFIG, JOURNAL, RTSP, RUNTIME, VIEWS
from server.outputs.rtsp.connection import RtspConnection
from server.outputs.rtsp.session import RtspSession
from server.runtime import Runtime

logger = logging.getLogger(__name__)

REAP_INTERVAL = 5.0  # seconds between looks for silent sessions
# Bytes the kernel may hold for one client: a few pictures. More (Linux grows it to
# megabytes) hides a slow client behind seconds of stale data instead of skipping it ahead.
CLIENT_SNDBUF = 256 * 1024


@dataclass
class UdpSockets:
    rtp: asyncio.DatagramTransport
    rtcp: asyncio.DatagramTransport
    ports: tuple[int, int]


class _Reports(asyncio.DatagramProtocol):
    """RTCP receiver reports from UDP clients: each one keeps its session alive."""

    def __init__(self, server: RtspServer) -> None:
        self._server = server

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self._server.heard_from(addr[0], addr[1])


class RtspServer:
    def __init__(self, runtime: Runtime, auth: Auth, views: ViewRegistry,
                 journal: Callable[[], AuditJournal], session_timeout: float) -> None:
        self.runtime = runtime
        self.auth = auth
        self.views = views
        self.journal = journal
        self.session_timeout = int(session_timeout)
        self.secret = auth.nonce_secret  # signs Digest nonces (server/access/digest.py)
        self.sessions: dict[str, RtspSession] = {}
        # Per path, of the sessions that ended: [sessions, bytes sent, frames dropped]
        # (the live ones are added when read: counters for /metrics).
        self._ended: dict[str, list[int]] = {}
        self.connections: set[RtspConnection] = set()
        self.udp: UdpSockets | None = None
        self.port = 0
        self.tls = False  # RTSPS
        self._server: asyncio.Server | None = None
        self._reaper: asyncio.Task | None = None

    async def async_start(self, host: str, port: int, udp_first: int,
                          tls: ssl.SSLContext | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._serve, host, port, ssl=tls,
                                                  limit=64 * 1024, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self.tls = tls is not None
        rtp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(host, udp_first))
        rtcp, _ = await loop.create_datagram_endpoint(lambda: _Reports(self), local_addr=(host, udp_first + 1))
        self.udp = UdpSockets(rtp, rtcp, (udp_first, udp_first + 1))
        self._reaper = asyncio.create_task(self._reap_forever())
        logger.info("RTSP server on %s://%s:%d/ (RTP over UDP from ports %d-%d)",
                    "rtsps" if tls else "rtsp", host, self.port, udp_first, udp_first + 1)

    async def async_stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            await connection.async_close("shutdown")
        if self.udp is not None:
            self.udp.rtp.close()
            self.udp.rtcp.close()

    def forget(self, connection: RtspConnection) -> None:
        self.connections.discard(connection)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CLIENT_SNDBUF)
        writer.transport.set_write_buffer_limits(high=CLIENT_SNDBUF)
        connection = RtspConnection(self, reader, writer)
        self.connections.add(connection)
        await connection.run()

    def heard_from(self, address: str, port: int) -> None:
        for session in self.sessions.values():
            transport = session.transport
            if getattr(transport, "address", None) == address and port in getattr(transport, "client_ports", ()):
                session.last_activity = time.monotonic()

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            now = time.monotonic()
            for connection in list(self.connections):
                silent = [s for s in connection.sessions.values()
                          if s.transport.kind == "udp" and now - s.last_activity > self.session_timeout]
                if silent:
                    logger.info("RTSP: %d session(s) from %s silent for %d s: ended",
                                len(silent), connection.address, self.session_timeout)
                    connection.end()

    def ended(self, session: RtspSession) -> None:
        """Count a session that ended in its path's totals."""
        totals = self._ended.setdefault(session.feed.path, [0, 0, 0])
        totals[0] += 1
        totals[1] += session.bytes_sent
        totals[2] += session.dropped

    def totals(self) -> dict[str, tuple[int, int, int, int]]:
        """Per path: (sessions open now, sessions ever, bytes sent, frames dropped)."""
        out: dict[str, list[int]] = {path: [0, *values] for path, values in self._ended.items()}
        for session in list(self.sessions.values()):
            row = out.setdefault(session.feed.path, [0, 0, 0, 0])
            row[0] += 1
            row[1] += 1
            row[2] += session.bytes_sent
            row[3] += session.dropped
        return {path: (row[0], row[1], row[2], row[3]) for path, row in out.items()}

    def status(self) -> list[dict]:
        """The sessions, for /api/status and /metrics (no credential in it)."""
        return [{"session": s.id[:6], "path": s.feed.path, "source": s.feed.source,
                 "user": s.principal.name, "address": s.client.address,
                 "transport": s.transport.kind, "playing": s.playing,
                 "bytes_sent": s.bytes_sent, "frames_sent": s.frames_sent,
                 "dropped_frames": s.dropped,
                 "since": round(s.started, 3)}
                for s in list(self.sessions.values())]


def _tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def rtsp_ctx(app: web.Application) -> AsyncIterator[None]:
    """The RTSP server for the app's lifetime, if `rtsp.listen` is set."""
    settings = app[CONFIG].rtsp
    if not settings.listen:
        yield
        return
    server = RtspServer(app[RUNTIME], app[AUTH], app[VIEWS], lambda: app[JOURNAL],
                        settings.session_timeout)
    tls = _tls_context(*(str(path) for path in settings.tls.paths())) if settings.tls else None
    try:
        await server.async_start(settings.host, settings.port, settings.rtp_port, tls)
    except OSError as error:
        await server.async_stop()
        logger.error("RTSP: cannot listen on %s or UDP %s (%s): change rtsp.listen or rtsp.udp_ports, "
                     "or set rtsp.listen to null to turn RTSP off", settings.listen, settings.udp_ports,
                     error.strerror or error)
        raise SystemExit(2) from None
    app[RTSP] = server
    yield
    await server.async_stop()
