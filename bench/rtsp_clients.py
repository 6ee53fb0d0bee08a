"""Bench RTSP clients: many cheap RTSP-over-TCP readers in one process (bench/rtsp.py).

    python -m bench.rtsp_clients

Run by the bench as a separate process, so its CPU is counted apart from Vigie's. Commands
come as JSON lines on stdin, answers as JSON lines on stdout (as bench/viewers.py):
  {"cmd": "open", "url": U, "count": N}
      opens N sessions of U (rtsp://user:password@host:port/path) at once; answers
      {"opened": n, "errors": [...]} once each is playing (or failed).
  {"cmd": "counts"}  answers {"clients": [[packets, bytes, pictures, alive], ...]}.
  {"cmd": "close"}   closes every session; answers {"closed": n}.
  {"cmd": "latency", "direct": U1, "via": U2, "seconds": S}
      reads U1 (the camera) and U2 (the same camera through Vigie) side by side for S
      seconds; answers {"deltas_ms": [...], "direct": n, "via": n, "matched": n}: for each
      picture of U2, its arrival less the same picture's arrival on U1.
  Stdin EOF exits.

One session: OPTIONS, DESCRIBE (Digest MD5 when challenged: ingest/digest.py computes the
answer), SETUP with RTP/AVP/TCP;unicast;interleaved=0-1, PLAY, then the interleaved data is
read in 64 kB reads and dropped, counting RTP packets, bytes and pictures (marker bits).
Answers to our own keep-alives (GET_PARAMETER every 20 s) are skipped in the stream.

Pictures are matched by content for the latency: Vigie passes a camera's access units on
byte for byte but with its own RTP times, so each picture is named by a hash of its slice
NAL units (types 1-5, put back together from FU-A fragments and STAP-A aggregates), and
arrives when the first packet of its RTP time does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ingest.digest import ha1, parse_fields, response

READ_SIZE = 65_536
KEEPALIVE_SECONDS = 20.0
CONTENT_LENGTH = re.compile(rb"content-length:[ \t]*(\d+)", re.IGNORECASE)
AUTHENTICATE = re.compile(rb"^www-authenticate:[ \t]*(.*?)\r?$", re.IGNORECASE | re.MULTILINE)
SLICES = frozenset(range(1, 6))  # H.264 NAL unit types of coded slices (VCL)


class RtspError(Exception):
    """A session that could not start: the request and the status it got."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]   # last value per name, lowercased names
    challenges: list[str]     # every WWW-Authenticate value
    body: bytes


class Pictures:
    """Pictures as they arrive: (monotonic time of their first packet, hash of their slices)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, bytes]] = []
        self._timestamp: int | None = None
        self._started = 0.0
        self._hash = hashlib.blake2b(digest_size=16)
        self._slices = False

    def packet(self, packet: bytes, now: float) -> None:
        first = packet[0]
        offset = 12 + 4 * (first & 0x0F)  # CSRCs
        if first & 0x10:  # header extension
            offset += 4 + 4 * int.from_bytes(packet[offset + 2 : offset + 4], "big")
        end = len(packet) - (packet[-1] if first & 0x20 else 0)  # padding
        timestamp = int.from_bytes(packet[4:8], "big")
        if timestamp != self._timestamp:
            self._finish()
            self._timestamp, self._started = timestamp, now
        if end > offset:
            self._payload(packet[offset:end])
        if packet[1] & 0x80:  # marker: the picture's last packet
            self._finish()

    def _payload(self, payload: bytes) -> None:
        kind = payload[0] & 0x1F
        if kind in SLICES:  # a single NAL unit
            self._add(payload)
        elif kind == 24:  # STAP-A: 16-bit sizes, then the units
            position = 1
            while position + 2 <= len(payload):
                size = int.from_bytes(payload[position : position + 2], "big")
                unit = payload[position + 2 : position + 2 + size]
                if unit and unit[0] & 0x1F in SLICES:
                    self._add(unit)
                position += 2 + size
        elif kind == 28 and len(payload) > 2 and payload[1] & 0x1F in SLICES:  # FU-A
            if payload[1] & 0x80:  # start: the unit's own header, put back together
                self._add(bytes([(payload[0] & 0xE0) | (payload[1] & 0x1F)]))
            self._add(payload[2:])

    def _add(self, data: bytes) -> None:
        self._hash.update(data)
        self._slices = True

    def _finish(self) -> None:
        if self._slices:
            self.seen.append((self._started, self._hash.digest()))
        self._hash = hashlib.blake2b(digest_size=16)
        self._slices = False
        self._timestamp = None


@dataclass
class Client:
    """One RTSP session over TCP, read until closed."""

    url: str
    pictures: Pictures | None = None  # set: every picture's arrival and hash is kept
    packets: int = 0
    octets: int = 0
    frames: int = 0
    alive: bool = False
    error: str | None = None
    _cseq: int = 0
    _nc: int = 0
    _challenge: dict[str, str] | None = None
    _session: str = ""
    _buffer: bytearray = field(default_factory=bytearray)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _task: asyncio.Task | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 554
        self.user = unquote(parts.username or "")
        self.password = unquote(parts.password or "")
        # The URL as requested: without the credentials.
        self.base = f"rtsp://{self.host}:{self.port}{parts.path or '/'}"

    # -- the session's requests -----------------------------------------------------------

    async def start(self, timeout: float = 20.0) -> None:
        """Connect and play; then read in a task of its own until `close`."""
        async with asyncio.timeout(timeout):
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            await self._request("OPTIONS", self.base)
            described = await self._request("DESCRIBE", self.base, [("Accept", "application/sdp")])
            content_base = described.headers.get("content-base", self.base)
            track = _control(described.body.decode(errors="replace"), content_base)
            setup = await self._request("SETUP", track,
                                        [("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")])
            self._session = setup.headers.get("session", "").split(";")[0].strip()
            await self._request("PLAY", content_base, [("Range", "npt=0.000-")])
        self.alive = True
        self._task = asyncio.create_task(self._read())

    async def _request(self, method: str, url: str, headers: list[tuple[str, str]] = (),
                       attempts: int = 4) -> Answer:
        """Send, and read the answer; a 401 is answered once with Digest, a 503 retried."""
        for _ in range(attempts):
            self._cseq += 1
            lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._cseq}", "User-Agent: vigie-bench"]
            if self._session:
                lines.append(f"Session: {self._session}")
            if self._challenge is not None:
                lines.append(f"Authorization: {self._authorization(method, url)}")
            lines += [f"{name}: {value}" for name, value in headers]
            self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            answer = await self._answer()
            if answer.status == 401 and self.user:
                stale = self._challenge is not None and any("stale=true" in c.lower()
                                                            for c in answer.challenges)
                if self._challenge is not None and not stale:
                    break  # our credentials were refused
                self._challenge = _pick_md5(answer.challenges)
                continue
            if answer.status == 503:
                await asyncio.sleep(1.0)
                continue
            if answer.status != 200:
                break
            return answer
        raise RtspError(f"{method} {url}: {answer.status}")

    def _authorization(self, method: str, uri: str) -> str:
        challenge = self._challenge or {}
        realm, nonce = challenge.get("realm", ""), challenge.get("nonce", "")
        qop = "auth" if "auth" in challenge.get("qop", "").split(",") else ""
        self._nc += 1
        nc, cnonce = f"{self._nc:08x}", os.urandom(8).hex()
        answer = response("MD5", ha1("MD5", self.user, self.password, realm), method, uri,
                          nonce, nc, cnonce, qop)
        fields = (f'Digest username="{self.user}", realm="{realm}", nonce="{nonce}", '
                  f'uri="{uri}", response="{answer}", algorithm=MD5')
        return fields + (f', qop={qop}, nc={nc}, cnonce="{cnonce}"' if qop else "")

    async def _answer(self) -> Answer:
        """The next RTSP answer; interleaved packets before it are skipped."""
        while (first := await self._reader.readexactly(1)) == b"$":
            head = await self._reader.readexactly(3)
            await self._reader.readexactly(int.from_bytes(head[1:3], "big"))
        head = first + await self._reader.readuntil(b"\r\n\r\n")
        status_line, _, rest = head.partition(b"\r\n")
        parts = status_line.split()
        if len(parts) < 2 or not parts[0].startswith(b"RTSP/") or not parts[1].isdigit():
            raise RtspError(f"not an RTSP answer: {status_line[:80]!r}")
        headers = {}
        for line in rest.decode(errors="replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        body = await self._reader.readexactly(length) if length else b""
        challenges = [m.decode(errors="replace").strip() for m in AUTHENTICATE.findall(head)]
        return Answer(int(parts[1]), headers, challenges, body)

    # -- playing --------------------------------------------------------------------------

    async def _read(self) -> None:
        keepalive = asyncio.create_task(self._keepalive())
        try:
            while data := await self._reader.read(READ_SIZE):
                self._feed(data, time.monotonic())
            self.error = self.error or "server closed the connection"
        except (ConnectionError, OSError) as error:
            self.error = self.error or f"{type(error).__name__}: {error}"
        except asyncio.CancelledError:
            pass
        finally:
            keepalive.cancel()
            self.alive = False

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            self._cseq += 1
            self._writer.write((f"GET_PARAMETER {self.base} RTSP/1.0\r\nCSeq: {self._cseq}\r\n"
                                f"Session: {self._session}\r\n\r\n").encode())

    def _feed(self, data: bytes, now: float) -> None:
        """Interleaved frames ($, channel, 16-bit size) and RTSP answers, as they come."""
        buffer = self._buffer
        buffer += data
        position, size = 0, len(buffer)
        while position + 4 <= size:
            if buffer[position] == 0x24:
                end = position + 4 + int.from_bytes(buffer[position + 2 : position + 4], "big")
                if end > size:
                    break
                if buffer[position + 1] == 0 and end - position >= 16:  # RTP (1 is RTCP)
                    self.packets += 1
                    self.octets += end - position - 4
                    if buffer[position + 5] & 0x80:
                        self.frames += 1
                    if self.pictures is not None:
                        self.pictures.packet(bytes(buffer[position + 4 : end]), now)
                position = end
                continue
            head_end = buffer.find(b"\r\n\r\n", position)  # an answer to a keep-alive
            if head_end < 0:
                break
            match = CONTENT_LENGTH.search(buffer, position, head_end)
            end = head_end + 4 + (int(match.group(1)) if match else 0)
            if end > size:
                break
            position = end
        del buffer[:position]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
        self.alive = False


def _pick_md5(challenges: list[str]) -> dict[str, str]:
    """The MD5 Digest challenge (FFmpeg's choice), or a Digest one without an algorithm."""
    for value in challenges:
        scheme, fields = parse_fields(value)
        if scheme == "digest" and fields.get("algorithm", "MD5").upper() == "MD5":
            return fields
    raise RtspError(f"no Digest MD5 challenge in {challenges}")


def _control(sdp: str, base: str) -> str:
    """The video track's URL from the SDP's a=control (absolute or relative to `base`)."""
    control, in_video = "", False
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_video = line.startswith("m=video")
        elif line.startswith("a=control:") and (in_video or not control):
            control = line[len("a=control:"):].strip()
    if not control or control == "*" or control.startswith("rtsp://"):
        return control if control.startswith("rtsp://") else base
    return base.rstrip("/") + "/" + control


# -- the commands -----------------------------------------------------------------------------


async def open_clients(url: str, count: int, clients: list[Client]) -> dict:
    new = [Client(url) for _ in range(count)]
    clients.extend(new)
    results = await asyncio.gather(*(client.start() for client in new), return_exceptions=True)
    failed = [(c, r) for c, r in zip(new, results) if isinstance(r, BaseException)]
    for client, result in failed:
        client.error = f"{type(result).__name__}: {result}"
        await client.close()
    return {"opened": count - len(failed), "errors": sorted({c.error for c, _ in failed})}


def match(direct: list[tuple[float, bytes]], via: list[tuple[float, bytes]]) -> list[float]:
    """For each picture read through Vigie, its arrival less the same picture's direct
    arrival (the nearest in time when a hash repeats: a looped clip), in ms."""
    by_hash: dict[bytes, list[float]] = {}
    for arrived, digest in direct:
        by_hash.setdefault(digest, []).append(arrived)
    deltas = []
    for arrived, digest in via:
        candidates = by_hash.get(digest)
        if candidates:
            nearest = min(candidates, key=lambda t: abs(arrived - t))
            deltas.append((arrived - nearest) * 1000.0)
    return deltas


async def latency(direct_url: str, via_url: str, seconds: float) -> dict:
    direct, via = Client(direct_url, Pictures()), Client(via_url, Pictures())
    try:
        await direct.start()
        await via.start()
        await asyncio.sleep(seconds)
    finally:
        await via.close()
        await direct.close()
    # The first second: the direct client may start after the picture Vigie starts on.
    start = via.pictures.seen[0][0] + 1.0 if via.pictures.seen else 0.0
    seen = [item for item in via.pictures.seen if item[0] >= start]
    deltas = match(direct.pictures.seen, seen)
    return {"deltas_ms": deltas, "direct": len(direct.pictures.seen), "via": len(seen),
            "matched": len(deltas), "errors": [c.error for c in (direct, via) if c.error]}


async def serve() -> None:
    clients: list[Client] = []
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str | None] = asyncio.Queue()

    def read_stdin() -> None:  # a thread: stdin is a pipe (as bench/viewers.py)
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line)
        loop.call_soon_threadsafe(commands.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()

    def answer(payload: dict) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    while (line := await commands.get()) is not None:
        command = json.loads(line)
        kind = command["cmd"]
        if kind == "open":
            answer(await open_clients(command["url"], int(command["count"]), clients))
        elif kind == "counts":
            answer({"clients": [[c.packets, c.octets, c.frames, c.alive] for c in clients],
                    "errors": sorted({c.error for c in clients if c.error})})
        elif kind == "close":
            await asyncio.gather(*(client.close() for client in clients))
            answer({"closed": len(clients)})
            clients.clear()
        elif kind == "latency":
            try:
                answer(await latency(command["direct"], command["via"], float(command["seconds"])))
            except Exception as error:  # noqa: BLE001 - reported to the bench
                answer({"error": f"{type(error).__name__}: {error}"})
        else:
            answer({"error": f"unknown command {kind!r}"})
    await asyncio.gather(*(client.close() for client in clients))


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench stops us (stdin EOF / SIGTERM)
    asyncio.run(serve())
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
