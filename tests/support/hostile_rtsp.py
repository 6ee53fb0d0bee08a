"""A hostile RTSP camera: each path replays one attack of issue 18 (items 2 and 3).

    with HostileCamera() as camera:
        url = camera.url("endless-fua")      # rtsp://127.0.0.1:PORT/endless-fua

Paths (ATTACKS): `digest-open` answers every request 401 with `WWW-Authenticate: Digest `
and 60,000 characters; `digest-stream` plays, then sends that 401 in the middle of the
media; `big-header` answers OPTIONS with a 150 kB header; `huge-length-options` answers
OPTIONS with `Content-Length: 99999999999` and sends bytes for ever; `huge-length-stream`
plays, then sends such an answer in the middle of the media; `endless-fua` plays, then sends
an H.264 FU-A start and middle fragments for ever (same timestamp, no end, no marker).

"For ever" is FLOOD_RATE bytes a second up to FLOOD_CAP per connection (a camera on a
gigabit link; capped so that a client without limits fails a test without taking the
machine's memory), then silence until the client leaves.

It runs in its own process (standard library only): its sending neither shares the GIL nor
counts in the RSS of the process under test.
"""

from __future__ import annotations

import os
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

CHALLENGE = "Digest " + "a" * 60_000  # 27 s in the old regular expression (issue 18)
HEADER_PADDING = 150_000  # bytes of headers in the `big-header` answer
HUGE_LENGTH = 99_999_999_999
FLOOD_RATE = 80_000_000  # bytes a second
FLOOD_CAP = 400_000_000  # bytes a connection
FRAGMENT = 60_000  # FU-A payload bytes a packet (an interleaved frame holds up to 65,535)
SDP = ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=hostile\r\nt=0 0\r\n"
       "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
       "a=fmtp:96 packetization-mode=1\r\na=control:trackID=0\r\n")


class Connection:
    """One client: its requests, our answers, and the attack's bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._pending = b""
        self.first: tuple[str, str, str] | None = None  # read to choose the attack

    def request(self) -> tuple[str, str, str] | None:
        """The next request's method, URL and CSeq; None when the client left."""
        if self.first is not None:
            first, self.first = self.first, None
            return first
        while b"\r\n\r\n" not in self._pending:
            try:
                chunk = self.sock.recv(65_536)
            except OSError:
                return None
            if not chunk:
                return None
            self._pending += chunk
        head, _, self._pending = self._pending.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, url, *_ = lines[0].split(" ") + ["", ""]
        cseq = next((line.partition(":")[2].strip() for line in lines[1:]
                     if line.lower().startswith("cseq:")), "0")
        return method, url, cseq

    def answer(self, status: str, cseq: str, headers: list[str] = (), body: str = "") -> None:
        lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}", *headers]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.send(("\r\n".join(lines) + "\r\n\r\n" + body).encode())

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def play(self) -> None:
        """The handshake of a well-behaved camera, up to PLAY's answer."""
        while (request := self.request()) is not None:
            method, url, cseq = request
            if method == "OPTIONS":
                self.answer("200 OK", cseq, ["Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN"])
            elif method == "DESCRIBE":
                self.answer("200 OK", cseq, ["Content-Type: application/sdp",
                                              f"Content-Base: {url}/"], SDP)
            elif method == "SETUP":
                self.answer("200 OK", cseq, ["Transport: RTP/AVP/TCP;unicast;interleaved=0-1",
                                              "Session: 12345678;timeout=60"])
            elif method == "PLAY":
                self.answer("200 OK", cseq, ["Session: 12345678"])
                return
            else:
                self.answer("200 OK", cseq)
        raise ConnectionError("client left during the handshake")

    def flood(self, pieces: Callable[[], bytes]) -> None:
        """Send what `pieces()` makes, again and again, at FLOOD_RATE up to FLOOD_CAP."""
        started, sent = time.monotonic(), 0
        while sent < FLOOD_CAP:
            piece = pieces()
            self.send(piece)
            sent += len(piece)
            ahead = sent / FLOOD_RATE - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        self.idle()

    def idle(self) -> None:
        """Silence until the client leaves (what it sends is read and ignored)."""
        while True:
            try:
                if not self.sock.recv(65_536):
                    return
            except OSError:
                return


def rtp(sequence: int, payload_head: bytes, marker: bool = False) -> bytes:
    """An interleaved frame's and an RTP packet's headers (channel 0, H.264 payload 96),
    for a payload that starts with `payload_head` and has FRAGMENT bytes after it."""
    size = 12 + len(payload_head) + FRAGMENT
    return (b"$\x00" + struct.pack(">H", size)
            + struct.pack(">BBHII", 0x80, 96 | (0x80 if marker else 0), sequence & 0xFFFF,
                          90_000, 0x5EC0DE) + payload_head)


# -- the attacks ---------------------------------------------------------------------------
def digest_open(connection: Connection) -> None:
    while (request := connection.request()) is not None:
        connection.answer("401 Unauthorized", request[2], [f"WWW-Authenticate: {CHALLENGE}"])


def digest_stream(connection: Connection) -> None:
    connection.play()
    time.sleep(0.2)
    connection.answer("401 Unauthorized", "99", [f"WWW-Authenticate: {CHALLENGE}"])
    connection.idle()


def big_header(connection: Connection) -> None:
    request = connection.request()
    if request is None:
        return
    line = "X-Padding-{:06d}: " + "p" * 80
    padding = [line.format(index) for index in range(HEADER_PADDING // (len(line) + 2) + 1)]
    connection.answer("200 OK", request[2], ["Public: OPTIONS, DESCRIBE", *padding])
    while (request := connection.request()) is not None:
        connection.answer("404 Not Found", request[2])


def huge_length_options(connection: Connection) -> None:
    request = connection.request()
    if request is None:
        return
    connection.send(f"RTSP/1.0 200 OK\r\nCSeq: {request[2]}\r\n"
                    f"Content-Length: {HUGE_LENGTH}\r\n\r\n".encode())
    junk = b"\x00" * 1_000_000
    connection.flood(lambda: junk)


def huge_length_stream(connection: Connection) -> None:
    connection.play()
    time.sleep(0.2)
    connection.send(f"RTSP/1.0 200 OK\r\nCSeq: 99\r\nContent-Length: {HUGE_LENGTH}\r\n\r\n"
                    .encode())
    junk = b"\x00" * 1_000_000
    connection.flood(lambda: junk)


def endless_fua(connection: Connection) -> None:
    connection.play()
    body = b"\x00" * FRAGMENT
    sequence = 0
    connection.send(rtp(sequence, b"\x7c\x85") + body)  # FU-A start of an IDR slice

    def middle() -> bytes:
        nonlocal sequence
        sequence += 1
        return rtp(sequence, b"\x7c\x05") + body  # neither start nor end, no marker

    connection.flood(middle)


ATTACKS: dict[str, Callable[[Connection], None]] = {
    "digest-open": digest_open, "digest-stream": digest_stream, "big-header": big_header,
    "huge-length-options": huge_length_options, "huge-length-stream": huge_length_stream,
    "endless-fua": endless_fua,
}


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        connection = Connection(self.request)
        first = connection.first = connection.request()
        if first is None:
            return
        # The path names the attack, which gets the first request again.
        attack = ATTACKS.get(urlsplit(first[1]).path.strip("/").split("/")[0])
        try:
            if attack is None:
                connection.answer("404 Not Found", first[2])
            else:
                attack(connection)
        except OSError:
            pass  # the client hung up: what a client with limits does


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve() -> None:
    with _Server(("127.0.0.1", 0), _Handler) as server:
        print(f"READY {server.server_address[1]}", flush=True)
        server.serve_forever()


class HostileCamera:
    """The hostile camera in a child process, for as long as the `with` block lasts."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self) -> HostileCamera:
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())], stdout=subprocess.PIPE,
            stdin=subprocess.PIPE, text=True)  # stdin: it ends when we do (see main)
        line = self._process.stdout.readline()
        if not line.startswith("READY "):
            self._process.kill()
            raise RuntimeError(f"hostile camera did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def url(self, attack: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{attack}"

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def main() -> None:
    # Exit when the parent's end of stdin closes (the test process died).
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    serve()


if __name__ == "__main__":
    main()
