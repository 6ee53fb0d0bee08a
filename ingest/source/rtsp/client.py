"""A small RTSP/1.0 client for one video track over interleaved TCP (RFC 2326 10.12).

Why our own, when FFmpeg has one: FFmpeg's RTSP demuxer reads the interleaved stream a
byte, three bytes and a packet at a time, each read behind a poll, and wakes its thread
for every RTP packet. For cameras nobody watches that waking is most of what they cost
(bench D: 64 cameras received, not decoded, took 0.21 s/s of CPU through FFmpeg). Reading
the socket in bulk every quarter second costs 0.016 s/s for the same packets (measured
with a prototype, see the issue 5 note). Go2rtc reads RTSP the same way, for the same reason.

Scope: H.264 and H.265 over TCP, Basic and Digest authentication, keep-alives. Anything
else (UDP, MJPEG, RTSPS, other codecs) stays with FFmpeg: `Unsupported` says so before
any media flows. Blocking sockets, one client per camera worker thread.
"""

from __future__ import annotations

import base64
import fcntl
import mmap
import re
import socket
import struct
import termios
import time
from urllib.parse import unquote, urlsplit, urlunsplit

from ingest.source.rtsp.rtp import DEPACKETISERS, AccessUnit, Depacketiser, UnitTooLarge, parameter_sets
from ingest.source.base import SourceError
from ingest.source.rtsp.message import (
    MAX_HEAD,
    MAX_LINE,
    _REQUEST_LINE,
    _STATUS_LINE,
    _STATUS_REASONS,
    _WORDING,
    Response,
    TooLarge,
    Track,
    Unsupported,
    _choose_challenge,
    _digest,
    body_length,
    parse_response,
    parse_sdp,
    split_head,
)

USER_AGENT = "Vigie"
READ_SIZE = 262_144  # one recv: a quarter second of an 8 Mbit/s camera
KEEPALIVE_DEFAULT = 60.0  # session timeout when the camera does not say (RFC 2326)
class RtspClient:
    """One camera session: `open()` (OPTIONS, DESCRIBE, SETUP, PLAY), then `read()`."""

    def __init__(self, url: str, username: str | None, password: str | None,
                 open_timeout: float, read_timeout: float) -> None:
        parts = urlsplit(url)
        if parts.username and not username:  # credentials in the URL itself
            username, password = unquote(parts.username), unquote(parts.password or "")
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        self.url = urlunsplit(parts._replace(netloc=netloc))  # never with credentials
        self._address = (host, parts.port or 554)
        self._username, self._password = username or "", password or ""
        self._open_timeout, self._read_timeout = open_timeout, read_timeout
        self._socket: socket.socket | None = None
        self._buffer = bytearray()
        # Media is received into this one buffer: a fresh bytes object per recv (256 kB
        # asked, a few kB given) cost an mmap, page faults and an mremap each time. Anonymous
        # memory, not a bytearray (which zeroes all of it): only the pages the largest read
        # reached are resident, 16 to 32 kB for a substream, 256 kB for a camera that needs them.
        self._scratch = mmap.mmap(-1, READ_SIZE)
        # The size of the RTSP message that starts the buffer, once its header is read and
        # while its body is still coming (0: none).
        self._held_message = 0
        self._cseq = 0
        self._authorization: tuple[str, dict[str, str]] | None = None
        self._nonce_count = 0
        self._session = ""
        self._keepalive_method = "OPTIONS"
        self._keepalive_every = KEEPALIVE_DEFAULT / 2
        self._last_request = 0.0
        self.drained = True  # the last read took all there was
        self.keepalives = 0  # sent while streaming
        self.keepalives_answered = 0  # answered 200 (a camera that says no soon drops us)
        self._channel = 0
        self._play_url = self.url
        self.track: Track | None = None
        self.depacketiser: Depacketiser | None = None

    # -- opening -------------------------------------------------------------------------
    def open(self) -> None:
        deadline = time.monotonic() + self._open_timeout
        try:
            self._socket = socket.create_connection(self._address, timeout=self._open_timeout)
        except ConnectionRefusedError:
            raise SourceError("connection refused", definitive=True) from None
        except socket.gaierror:
            # Not definitive: a resolver that is down (EAI_AGAIN) says the same.
            raise SourceError("host not found") from None
        except TimeoutError:
            raise SourceError("timed out (no answer)", timed_out=True) from None
        except OSError as error:
            raise SourceError(error.strerror or type(error).__name__) from None
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        options = self._request("OPTIONS", self.url, deadline=deadline)
        public = options.header("public").upper()
        if "GET_PARAMETER" in public:
            self._keepalive_method = "GET_PARAMETER"
        described = self._request("DESCRIBE", self.url, {"Accept": "application/sdp"},
                                  deadline=deadline)
        track, other, session_control = parse_sdp(described.body.decode("utf-8", "replace"))
        if track is None:
            raise Unsupported(f"{other} video" if other else "no video track")
        base = (described.header("content-base") or described.header("content-location")
                or self.url)
        setup = self._request("SETUP", self._control_url(base, track.control),
                              {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"},
                              deadline=deadline)
        transport = setup.header("transport")
        if "interleaved" not in transport.lower():
            raise Unsupported("camera refused RTSP over TCP")
        channel = re.search(r"interleaved=(\d{1,3})", transport)
        self._channel = int(channel.group(1)) if channel else 0
        session, _, parameters = setup.header("session").partition(";")
        self._session = session.strip()
        timeout = re.search(r"timeout=(\d{1,6})", parameters)
        if timeout:
            self._keepalive_every = max(5.0, int(timeout.group(1)) / 2)
        # The aggregate control URL: the SDP's session-level one, else the content base
        # (as FFmpeg does).
        self._play_url = self._control_url(base, session_control)
        self._request("PLAY", self._play_url, {"Range": "npt=0.000-"}, deadline=deadline)
        self.track = track
        self.depacketiser = DEPACKETISERS[track.codec](parameter_sets(track.codec, track.fmtp))
        self._socket.settimeout(self._read_timeout)

    @staticmethod
    def _control_url(base: str, control: str) -> str:
        if not control or control == "*":
            return base
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", control):
            return control
        return base + ("" if base.endswith("/") else "/") + control

    # -- requests ------------------------------------------------------------------------
    def _send(self, method: str, url: str, headers: dict[str, str] | None = None) -> None:
        self._cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._cseq}", f"User-Agent: {USER_AGENT}"]
        if self._session:
            lines.append(f"Session: {self._session}")
        if self._authorization is not None:
            lines.append(f"Authorization: {self._authorize(method, url)}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        try:
            self._socket.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        except TimeoutError:
            raise SourceError("timed out", timed_out=True) from None
        except OSError as error:  # reset, broken pipe: the camera went away
            raise SourceError(error.strerror or type(error).__name__) from None
        self._last_request = time.monotonic()

    def _authorize(self, method: str, url: str) -> str:
        scheme, challenge = self._authorization
        if scheme == "digest":
            self._nonce_count += 1
            return _digest(self._username, self._password, method, url, challenge,
                           self._nonce_count)
        token = base64.b64encode(f"{self._username}:{self._password}".encode()).decode()
        return f"Basic {token}"

    def _request(self, method: str, url: str, headers: dict[str, str] | None = None, *,
                 deadline: float) -> Response:
        for attempt in range(2):
            self._send(method, url, headers)
            response = self._response(deadline)
            if response.status == 401 and attempt == 0 and self._username:
                chosen = _choose_challenge(response.headers.get("www-authenticate", []))
                if chosen is not None and self._authorization != chosen:
                    self._authorization, self._nonce_count = chosen, 0
                    continue
            if response.status == 200:
                return response
            reason = _STATUS_REASONS.get(response.status)
            if reason is not None:
                raise SourceError(reason, definitive=True)
            if 300 <= response.status < 400 or response.status in _WORDING:
                # A redirect, or a request this client words in a way the camera refuses:
                # FFmpeg's client follows redirects and words things its own way.
                raise Unsupported(f"{method} answered {response.status}")
            # Anything else (453 not enough bandwidth, 454 session not found, 5xx) may pass.
            raise SourceError(f"{method} answered {response.status} {response.reason}"[:80])
        raise SourceError(_STATUS_REASONS[401], definitive=True)

    def _response(self, deadline: float) -> Response:
        """The next RTSP answer; interleaved packets before it are dropped (none flow
        before PLAY's answer but a camera may start early). Never buffers more than the
        limits allow: each recv asks only for what the answer may still hold."""
        end = self._read_head(deadline)
        response = parse_response(bytes(self._buffer[:end]))
        del self._buffer[: end + 4]
        length = body_length(response.headers)
        while len(self._buffer) < length:
            self._fill(deadline, length - len(self._buffer))
        response.body = bytes(self._buffer[:length])
        del self._buffer[:length]
        return response

    def _read_head(self, deadline: float) -> int:
        """Receive up to the blank line ending an answer's headers; where it starts."""
        scanned = 0  # the blank line is not in the first `scanned` bytes (less three)
        while True:
            if self._drop_interleaved():
                scanned = 0
            if self._buffer[:1] == b"$":  # the rest of a packet: at most 64 kB
                header = self._buffer[:4]
                size = 4 + int.from_bytes(header[2:], "big") if len(header) == 4 else 4
                self._fill(deadline, size - len(self._buffer))
                continue
            end = self._buffer.find(b"\r\n\r\n", max(0, scanned - 3), MAX_HEAD + 4)
            if end >= 0:
                return end
            scanned = len(self._buffer)
            room = MAX_HEAD + 4 - scanned
            if room <= 0:
                raise TooLarge(f"camera sent an RTSP header over {MAX_HEAD // 1024} kB")
            self._fill(deadline, room)

    def _drop_interleaved(self) -> bool:
        """Drop the whole interleaved packets at the buffer's start; whether there were."""
        dropped = False
        while len(self._buffer) >= 4 and self._buffer[0] == 0x24:
            size = 4 + ((self._buffer[2] << 8) | self._buffer[3])
            if len(self._buffer) < size:
                break
            del self._buffer[:size]  # from the front of a bytearray: no copy
            dropped = True
        return dropped

    def _fill(self, deadline: float, room: int) -> None:
        """Receive at most `room` bytes (and at least one) into the buffer."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SourceError("timed out (no answer)", timed_out=True)
        self._socket.settimeout(remaining)
        chunk = self._recv("timed out (no answer)", room)
        if not chunk:
            raise SourceError("camera closed the connection")
        self._buffer += chunk

    def _recv(self, timeout_reason: str, room: int = 0) -> memoryview:
        """One recv into the reused buffer, of at most `room` bytes (0: as many as it
        holds): a view of what came (empty: the camera closed). Valid until the next recv."""
        try:
            size = self._socket.recv_into(self._scratch, min(room, len(self._scratch)))
            return memoryview(self._scratch)[:size]
        except TimeoutError:
            raise SourceError(timeout_reason, timed_out=True) from None
        except OSError as error:
            raise SourceError(error.strerror or type(error).__name__) from None

    # -- streaming -----------------------------------------------------------------------
    def read(self) -> list[AccessUnit] | None:
        """What one recv brings: the access units it completes (maybe none). Blocks up to
        the read timeout; None when the camera closed the stream. Raises SourceError when
        the camera sends more than an RTSP message may hold."""
        if time.monotonic() - self._last_request >= self._keepalive_every:
            self._send(self._keepalive_method, self._play_url)  # its answer is skipped below
            self.keepalives += 1
        chunk = self._recv("timed out")
        if not chunk:
            return None
        # A full read: more is waiting (a camera above 8 Mbit/s read every quarter second).
        self.drained = len(chunk) < len(self._scratch)
        held = bool(self._buffer)
        if held:
            # The end of a packet or message the last read cut, at most MAX_HEAD + MAX_BODY
            # (or a 64 kB packet) long: appended to, never copied whole.
            self._buffer += chunk
            data, size = self._buffer, len(self._buffer)
        else:
            data, size = self._scratch, len(chunk)
        units: list[AccessUnit] = []
        view = memoryview(data)
        try:
            try:
                position = self._walk(data, view, size, units)
            except UnitTooLarge as too_large:  # the session ends, with the reason
                raise TooLarge(str(too_large)) from None
            # What is left (a packet cut by this read) waits for the next one.
            rest = None if held else bytearray(view[position:size])
        finally:
            view.release()
        if rest is None:
            del self._buffer[:position]  # from the front: no copy
        else:
            self._buffer = rest
        return units

    def _walk(self, data: bytearray, view: memoryview, size: int,
              units: list[AccessUnit]) -> int:
        """Depacketise the whole interleaved packets in the first `size` bytes of `data`
        (`view` of it: payloads go to the depacketiser uncopied); returns where the first
        incomplete one starts. RTSP messages met on the way are skipped."""
        position = 0
        channel, push = self._channel, self.depacketiser.push
        while size - position >= 4:
            if data[position] != 0x24:
                # An RTSP answer (to a keep-alive) or a request from the camera: skipped.
                skip = self._skip_message(data, position, size)
                if skip is None:
                    break  # the rest of it is still to come
                if skip == 0:
                    # Not RTSP: garbage; resume at the next packet marker.
                    following = data.find(b"$", position + 1, size)
                    position = size if following < 0 else following
                    continue
                position += skip
                continue
            end = position + 4 + ((data[position + 2] << 8) | data[position + 3])
            if end > size:
                break
            if data[position + 1] == channel:
                push(view[position + 4 : end], units)
            position = end
        return position

    def _skip_message(self, data: bytearray, position: int, size: int) -> int | None:
        """The length of the RTSP message at `position` (data ends at `size`): None while
        it is incomplete, 0 if it is not one. TooLarge past a limit: a message's length is
        known from its header, so nothing past the limits is ever waited for."""
        if position == 0 and self._held_message:
            # The message the last read cut, its header already read: not read again for
            # each of the reads that bring its body.
            if size < self._held_message:
                return None
            skip, self._held_message = self._held_message, 0
            return skip
        line_end = data.find(b"\r\n", position, min(size, position + MAX_LINE + 2))
        if line_end < 0 and size - position < MAX_LINE + 2:
            return None
        first_line = data[position : position + MAX_LINE + 2 if line_end < 0 else line_end]
        if not (first_line.startswith(b"RTSP/") or _REQUEST_LINE.match(first_line)):
            return 0
        end = data.find(b"\r\n\r\n", position, min(size, position + MAX_HEAD + 4))
        if end < 0:
            if size - position < MAX_HEAD + 4:
                return None
            raise TooLarge(f"camera sent an RTSP header over {MAX_HEAD // 1024} kB")
        first, headers = split_head(bytes(data[position:end]))
        skip = end + 4 - position + body_length(headers)
        if position + skip > size:
            self._held_message = skip  # kept at the buffer's start for the next read
            return None
        status = _STATUS_LINE.match(first)  # None: a request from the camera
        if status is not None and status.group(1) == "200":
            self.keepalives_answered += 1
        elif status is not None and status.group(1) == "401":
            self._reauthorize(headers.get("www-authenticate", []))
        return skip

    def _reauthorize(self, challenges: list[str]) -> None:
        """A keep-alive refused with a new challenge (a Digest nonce gone stale): answer it
        with the next keep-alive, sent at once."""
        chosen = _choose_challenge(challenges)
        if chosen is not None and self._username:
            self._authorization, self._nonce_count = chosen, 0
            self._last_request = 0.0

    def waiting(self) -> int:
        """Bytes the camera sent that the worker has not taken yet: the socket's receive
        queue (one ioctl) and our buffer. Data waits there when the worker is short of CPU,
        not when the link is slow (ingest/source/lag.py, ingest/source/backlog.py)."""
        queued = 0
        if self._socket is not None:
            try:
                queued = struct.unpack("i", fcntl.ioctl(self._socket.fileno(), termios.FIONREAD,
                                                        b"\0\0\0\0"))[0]
            except OSError:
                pass  # closed meanwhile: nothing waits
        return len(self._buffer) + queued

    def close(self) -> None:
        if self._socket is None:
            return
        try:
            if self._session:
                self._socket.settimeout(0.5)
                self._send("TEARDOWN", self._play_url)
        except OSError:
            pass  # the camera may be gone already
        finally:
            self._socket.close()
            self._socket = None
            self._release_scratch()

    def _release_scratch(self) -> None:
        try:
            self._scratch.close()  # at once, not when the client is collected
        except BufferError:
            pass  # a view of it is still held: unmapped with its last reference
