"""One RTSP session: a feed, the transport its client chose, and while it plays, a view
(server/access/views.py) whose frames are packetised and sent.

The view's hub viewer is the client's bounded buffer: a client that falls behind skips to
the next keyframe, and one that takes nothing for the hub's stall timeout is dropped; the
others never wait for it. A client starts on a keyframe, with the parameter sets in band
just before it. RTP time follows each picture's capture time on the wall clock, and an
RTCP sender report goes before the first packet and then every SR_INTERVAL seconds, so a
recipient keeps the true time of every picture.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from typing import Protocol

from ingest.encode.rtp import RtpPacketiser
from server.access.auth import Credential
from server.access.scope import Principal
from server.access.views import OpenView, ViewRegistry
from server.audit import Client
from server.outputs.rtsp.feed import Feed

logger = logging.getLogger(__name__)

SR_INTERVAL = 2.0  # seconds between RTCP sender reports (at most 5, the bound)
CLOCK_RATE = 90_000


class Transport(Protocol):
    kind: str  # "tcp" (interleaved) or "udp"

    def send(self, packets: list[bytes], report: bytes | None) -> int:
        """Send a report (if any) then the packets; returns the bytes handed over."""
        ...

    async def drain(self) -> None: ...

    def header(self) -> str:
        """The Transport header of the SETUP answer."""
        ...


class Interleaved:
    """RTP and RTCP inside the RTSP connection (RFC 2326 10.12), on the client's channels."""

    kind = "tcp"

    def __init__(self, writer: asyncio.StreamWriter, channel: int) -> None:
        self._writer = writer
        self.channel = channel

    def send(self, packets: list[bytes], report: bytes | None) -> int:
        parts = []
        if report is not None:
            parts.append(b"$" + bytes([self.channel + 1]) + len(report).to_bytes(2, "big") + report)
        prefix = b"$" + bytes([self.channel])
        for packet in packets:
            parts.append(prefix + len(packet).to_bytes(2, "big") + packet)
        blob = b"".join(parts)
        if not self._writer.is_closing():
            self._writer.write(blob)  # one write per picture: one system call
        return len(blob)

    async def drain(self) -> None:
        await self._writer.drain()

    def header(self) -> str:
        return f"RTP/AVP/TCP;unicast;interleaved={self.channel}-{self.channel + 1}"


class UdpPeer:
    """RTP and RTCP over UDP, from the server's two ports to the client's, at the address
    of the RTSP connection itself: a `destination` asked for is never used."""

    kind = "udp"

    def __init__(self, rtp: asyncio.DatagramTransport, rtcp: asyncio.DatagramTransport,
                 address: str, client_ports: tuple[int, int], server_ports: tuple[int, int]) -> None:
        self._rtp, self._rtcp = rtp, rtcp
        self.address = address
        self.client_ports = client_ports
        self._server_ports = server_ports

    def send(self, packets: list[bytes], report: bytes | None) -> int:
        sent = 0
        if report is not None:
            self._rtcp.sendto(report, (self.address, self.client_ports[1]))
            sent += len(report)
        for packet in packets:
            self._rtp.sendto(packet, (self.address, self.client_ports[0]))
            sent += len(packet)
        return sent

    async def drain(self) -> None:
        return None  # datagrams are not queued: the kernel drops what it cannot send

    def header(self) -> str:
        client, server = self.client_ports, self._server_ports
        return (f"RTP/AVP;unicast;client_port={client[0]}-{client[1]};"
                f"server_port={server[0]}-{server[1]}")


class RtspSession:
    def __init__(self, feed: Feed, codec: str, transport: Transport, principal: Principal,
                 credential: Credential, client: Client) -> None:
        self.id = secrets.token_hex(8)
        self.feed = feed
        self.codec = codec
        self.transport = transport
        self.principal = principal
        self.credential = credential
        self.client = client
        self.packetiser = RtpPacketiser(codec)
        self._rendering = f"rtp-{codec}"  # where a picture keeps its payloads for every client
        self.view: OpenView | None = None
        self.task: asyncio.Task | None = None
        self.last_activity = time.monotonic()
        self.started = time.time()
        self.bytes_sent = 0
        self.frames_sent = 0
        self._dropped_before = 0  # frames dropped by views closed before (a PAUSE)
        self._bytes_journaled = 0  # bytes sent by views closed before
        self.ended: str | None = None  # why the stream stopped on the server's side
        self._offset = int.from_bytes(os.urandom(4), "big")  # RTP time starts at random

    @property
    def dropped(self) -> int:
        """Frames skipped for this client (it fell behind), over its plays."""
        return self._dropped_before + (self.view.viewer.dropped if self.view is not None else 0)

    @property
    def playing(self) -> bool:
        return self.task is not None and not self.task.done()

    def rtp_time(self, wall_time: float) -> int:
        return (self._offset + round(wall_time * CLOCK_RATE)) & 0xFFFFFFFF

    def play(self, views: ViewRegistry) -> None:
        """Open the view (scope, limits, journal: may raise as ViewRegistry.open does) and
        start sending."""
        if self.playing:
            return
        self.view = views.open(self.principal, self.credential, self.client, self.feed.target,
                               f"rtsp-{self.transport.kind}", self.feed.fmt)
        self.task = asyncio.create_task(self._send(self.view), name=f"rtsp-{self.id}")
        self.view.viewer.task = self.task

    async def async_stop(self, views: ViewRegistry, reason: str) -> None:
        """Stop sending (PAUSE, TEARDOWN, the connection's end) and close the view."""
        task, view = self.task, self.view
        if view is not None:
            self._dropped_before += view.viewer.dropped
        sent, self._bytes_journaled = self.bytes_sent - self._bytes_journaled, self.bytes_sent
        self.task = self.view = None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, ConnectionError):
                pass
        if view is not None:
            # Ended on the server's side first (revoked, too slow): that is the reason.
            server_side = self.ended or (view.viewer.close_reason if view.viewer.closed else None)
            await views.async_close(view, server_side or reason, bytes_sent=sent)

    async def _send(self, view: OpenView) -> None:
        viewer = view.viewer
        parameter_sets = b""
        needs_sets = True
        last_report = float("-inf")
        while (frame := await viewer.next_frame()) is not None:
            unit = self.feed.units(frame)
            if unit.header:
                if unit.content_type != self.codec:
                    self.ended = "codec changed"  # announced another in the SDP: start again
                    break
                parameter_sets, needs_sets = unit.data, True
                continue
            if needs_sets:
                if not unit.keyframe:
                    continue
                payloads = self.packetiser.payloads(parameter_sets + unit.data)
                needs_sets = False
            else:
                # Cut once per picture for every client of this codec (with the picture).
                payloads = unit.renderings.get(self._rendering)  # type: ignore[assignment]
                if payloads is None:
                    payloads = self.packetiser.payloads(unit.data)
                    unit.renderings[self._rendering] = payloads  # type: ignore[assignment]
            timestamp = self.rtp_time(unit.wall_time)
            report = None
            now = time.monotonic()
            if now - last_report >= SR_INTERVAL:
                report = self.packetiser.sender_report(unit.wall_time, timestamp)
                last_report = now
            self.bytes_sent += self.transport.send(self.packetiser.packets(payloads, timestamp), report)
            self.frames_sent += 1
            await self.transport.drain()
        if self.ended is None:
            self.ended = view.revoked or viewer.close_reason or "closed"
