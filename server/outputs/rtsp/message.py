"""RTSP requests as clients send them (RFC 2326 / 7826), read incrementally with hard limits
checked before bytes are kept: a request line and headers up to 16 kB (a line up to 4 kB),
a body up to 64 kB by its Content-Length, a CSeq on every request. Interleaved frames a
client sends on the same connection (its RTCP receiver reports) are skipped whole.

Linear in what arrives: the end of a head is searched for only in bytes not searched yet,
and a buffer is never copied whole per read. What breaks a limit raises `BadRequest` with
the status to answer before the connection is closed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_HEAD = 16_384
MAX_LINE = 4_096
MAX_BODY = 65_536
METHODS = frozenset({"OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN",
                     "GET_PARAMETER", "SET_PARAMETER", "ANNOUNCE", "RECORD"})
_REQUEST_LINE = re.compile(r"([A-Z_]{1,32}) (\S{1,4000}) RTSP/(\d)\.(\d)")


class BadRequest(Exception):
    """The client broke the protocol or a limit: answer `status` and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Request:
    method: str
    url: str
    cseq: str
    headers: dict[str, str] = field(default_factory=dict)  # names lowercased; the last wins
    body: bytes = b""

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


def parse_head(head: bytes) -> Request:
    """A request line and its headers (the bytes before the blank line)."""
    if len(head) > MAX_HEAD:
        raise BadRequest(431, "request header over 16 kB")
    lines = head.decode("utf-8", "replace").split("\r\n")
    if max(map(len, lines)) > MAX_LINE:
        raise BadRequest(431, "request header line over 4 kB")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise BadRequest(400, "not an RTSP request")
    method, url, major, _ = match.groups()
    if major not in ("1", "2"):
        raise BadRequest(505, "RTSP version not supported")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise BadRequest(400, "malformed header line")
        headers[name.strip().lower()] = value.strip()
    cseq = headers.get("cseq", "")
    if not (cseq.isascii() and cseq.isdigit() and len(cseq) <= 10):
        raise BadRequest(400, "CSeq missing or not a number")
    return Request(method, url, cseq, headers)


class RequestReader:
    """Bytes from one client in, whole requests out, in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # the blank line is not in the first `scanned` bytes (less three)
        self._pending: Request | None = None  # head read, body still coming
        self._body_length = 0

    def feed(self, data: bytes) -> list[Request]:
        self._buffer += data
        requests = []
        while (request := self._next()) is not None:
            requests.append(request)
        if self._pending is None and len(self._buffer) > MAX_HEAD + 4 and self._buffer[:1] != b"$":
            raise BadRequest(431, "request header over 16 kB")
        return requests

    def _next(self) -> Request | None:
        buffer = self._buffer
        if self._pending is not None:
            if len(buffer) < self._body_length:
                return None
            request, self._pending = self._pending, None
            request.body = bytes(buffer[: self._body_length])
            del buffer[: self._body_length]
            return request
        while buffer[:1] == b"$":  # an interleaved frame (RTCP from the client): skipped
            if len(buffer) < 4:
                return None
            size = 4 + ((buffer[2] << 8) | buffer[3])
            if len(buffer) < size:
                return None
            del buffer[:size]
            self._scanned = 0
        end = buffer.find(b"\r\n\r\n", max(0, self._scanned - 3), MAX_HEAD + 4)
        if end < 0:
            self._scanned = min(len(buffer), MAX_HEAD + 4)
            return None
        request = parse_head(bytes(buffer[:end]))
        del buffer[: end + 4]
        self._scanned = 0
        length = request.header("content-length", "0")
        if not (length.isascii() and length.isdigit()) or len(length) > 6 or int(length) > MAX_BODY:
            raise BadRequest(413, "request body over 64 kB or a bad Content-Length")
        if int(length):
            self._pending, self._body_length = request, int(length)
            return self._next()
        return request
