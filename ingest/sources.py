"""Sources: open a camera URL by scheme and yield packets' sizes and decoded frames.

Registry by scheme (STYLE.md): `rtsp` over TCP with H.264 or H.265 is read by our own
client (ingest/rtsp_source.py), which reads in bulk; other `rtsp` streams, `rtsps` and
`file` are read with PyAV (FFmpeg); `synthetic` draws frames in-process (demo and tests,
no camera needed). A source knows nothing of tiles or walls; it honours one question from
its worker: "what is to be decoded now?" (ingest/decoding.py says what follows from it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

import av
import av.error
import numpy as np

from ingest.backlog import CameraBacklog
from ingest.decoding import IDLE_STILL_INTERVAL, DecodePolicy, Decoding, PolicySource
from ingest.lag import LagGuard
from ingest.stamp import draw_stamp

SINGLE_THREAD_PIXELS = 1280 * 720  # above this, FFmpeg's own decoder threads pay
# A synthetic camera reduced for want of CPU draws a picture this often, as a camera with a
# one-second GOP shows its keyframes.
REDUCED_PICTURE_INTERVAL = 1.0


@dataclass(frozen=True)
class SourceSpec:
    url: str
    username: str | None = None
    password: str | None = None
    transport: str = "tcp"
    open_timeout: float = 5.0
    read_timeout: float = 5.0


@dataclass(frozen=True)
class Packet:
    """What a source yields: the size of a received packet, a frame if one was decoded, and
    for PyAV sources the compressed packet and its stream (remuxing without decoding)."""

    size: int
    frame: av.VideoFrame | None = None
    raw: av.Packet | None = None
    stream: av.video.stream.VideoStream | None = None
    # Not decoded on purpose (behind the camera: skipping to a keyframe), not for garbage.
    skipped: bool = False


class SourceError(Exception):
    """A source failed; `reason` is short, human-readable and free of secrets."""

    def __init__(self, reason: str, definitive: bool = False, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        # The camera answered and said no (refused, 401, 404): it is not merely hung.
        self.definitive = definitive
        self.timed_out = timed_out


_DEFINITIVE = (ConnectionRefusedError, av.error.HTTPUnauthorizedError, av.error.HTTPNotFoundError,
               av.error.HTTPForbiddenError)


def source_error(error: Exception) -> SourceError:
    """A SourceError for an exception from PyAV/FFmpeg, URL and password left out."""
    return SourceError(describe_av_error(error), definitive=isinstance(error, _DEFINITIVE),
                       timed_out=isinstance(error, (TimeoutError, av.error.ExitError)))


class Source(Protocol):
    codec: str
    behind: float | None  # seconds behind the camera's clock (ingest/lag.py), if known
    lag_skips: int  # times decoding fell behind and skipped to a keyframe

    def sample_aspect(self) -> float: ...

    def packets(self, decoding: Callable[[], Decoding],
                live: threading.Event | None = None) -> Iterator[Packet]:
        """Packets, decoded as `decoding()` says (ingest/decoding.py). `live` is set while
        someone needs the packets as they come: a remux of the camera's stream, or its tiles
        decoded in full. A source that reads an idle or reduced camera in bursts reads it as
        data comes then, and wakes when it is set."""
        ...

    def close(self) -> None: ...


def _with_credentials(url: str, username: str | None, password: str | None) -> str:
    if not username:
        return url
    parts = urlsplit(url)
    userinfo = quote(username, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.hostname}"
                                     + (f":{parts.port}" if parts.port else "")))


def describe_av_error(error: Exception) -> str:
    """A short reason for an FFmpeg error, without the URL (which may hold a password)."""
    if isinstance(error, av.error.HTTPUnauthorizedError):
        return "authentication failed (401 Unauthorized)"
    if isinstance(error, av.error.HTTPNotFoundError):
        return "stream not found (404)"
    if isinstance(error, av.error.HTTPForbiddenError):
        return "access forbidden (403)"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, (TimeoutError, av.error.ExitError)):
        return "timed out"
    if isinstance(error, av.error.FFmpegError):
        # strerror is FFmpeg's text for the code; the filename (the URL) is left out.
        return (error.strerror or type(error).__name__).strip()
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__


class PyAVSource(PolicySource):
    """rtsp://, rtsps:// and file:// through PyAV (FFmpeg)."""

    def __init__(self, spec: SourceSpec) -> None:
        parts = urlsplit(spec.url)
        self._is_file = parts.scheme == "file"
        if self._is_file:
            target = unquote(parts.path)
            options: dict[str, str] = {}
        else:
            target = _with_credentials(spec.url, spec.username, spec.password)
            options = {
                "rtsp_transport": spec.transport,
                # Socket timeout in microseconds (connect and every read, TCP and UDP).
                "timeout": str(int(spec.read_timeout * 1_000_000)),
                # Live cameras: start at once (FIELD-NOTES: 0.17 s vs 2 s to open).
                "analyzeduration": "0",
                "probesize": "32",
                # Not fflags=nobuffer: with it FFmpeg drops the packets it read while
                # probing, and the first one is the keyframe most cameras (and GStreamer's
                # RTSP server) start a session with: the picture then waited a whole GOP
                # for the next keyframe (1 s on the bench's cameras, often 2-4 s on real
                # ones), at every start and every reconnect. It buffers nothing else.
                "flags": "low_delay",
                "allowed_media_types": "video",
            }
        opening = time.monotonic()
        try:
            # PyAV enforces its timeouts in FFmpeg's interrupt callback, which takes the GIL
            # to read the clock, and FFmpeg calls it around every socket read: with 16
            # cameras, thousands of GIL hand-offs a second. So PyAV keeps the open timeout
            # (the whole handshake: a camera that accepts and never answers) and reads are
            # bounded by FFmpeg's socket timeout (`timeout` above), free until it fires.
            self._container = av.open(target, options=options, timeout=(spec.open_timeout, None))
        except Exception as error:  # noqa: BLE001 - every failure becomes a redacted reason
            if time.monotonic() - opening >= spec.open_timeout * 0.9 and not isinstance(error, _DEFINITIVE):
                # FFmpeg reports an interrupted open as "invalid data": it was silence.
                raise SourceError("timed out (no answer)", timed_out=True) from None
            raise source_error(error) from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError("no video track")
        self._stream = self._container.streams.video[0]
        context = self._stream.codec_context
        self.codec = context.name
        if 0 < context.width * context.height <= SINGLE_THREAD_PIXELS:
            # One decoder thread per camera: cameras already run in parallel, and FFmpeg's
            # slice threads only add hand-offs on small pictures (about 4 % of the decode
            # CPU for 16 x 640x360, and 3 idle threads less per camera).
            context.thread_count = 1
        # How far behind the camera this worker reads (live sources only: files are paced).
        guard = None
        if not self._is_file and self._stream.time_base:
            guard = LagGuard(CameraBacklog(spec.url))
        self._policy = DecodePolicy(lambda packet: list(packet.decode()), guard)
        self._time_base = float(self._stream.time_base or 0)

    def packets(self, decoding: Callable[[], Decoding],
                live: threading.Event | None = None) -> Iterator[Packet]:
        start_wall = time.monotonic()
        first_pts: float | None = None
        while True:
            try:
                for packet in self._container.demux(self._stream):
                    if packet.size == 0:
                        continue
                    timestamp = None if packet.pts is None else packet.pts * self._time_base
                    frames = self._policy.decode(packet, packet.is_keyframe, timestamp,
                                                 decoding(), time.monotonic())
                    if not frames:
                        yield Packet(packet.size, None, packet, self._stream,
                                     skipped=self._policy.skipping)
                    for index, frame in enumerate(frames):
                        if self._is_file:
                            first_pts = self._pace(frame, start_wall, first_pts)
                        # The compressed packet goes with its first frame only.
                        yield Packet(packet.size if index == 0 else 0, frame,
                                     packet if index == 0 else None, self._stream)
            except av.error.EOFError:
                pass
            except Exception as error:  # noqa: BLE001
                raise source_error(error) from None
            if not self._is_file:
                return  # a live stream ended: the worker treats it as a disconnect
            # A file loops forever, like a camera that never stops.
            self._container.seek(0)
            start_wall, first_pts = time.monotonic(), None

    def sample_aspect(self) -> float:
        ratio = self._stream.codec_context.sample_aspect_ratio
        return float(ratio) if ratio else 1.0

    @staticmethod
    def _pace(frame: av.VideoFrame, start: float, first_pts: float | None) -> float | None:
        if frame.time is None:
            return first_pts
        if first_pts is None:
            return frame.time
        delay = start + (frame.time - first_pts) - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, 1.0))
        return first_pts

    def close(self) -> None:
        self._container.close()


class SyntheticSource:
    """synthetic://NAME?width=W&height=H&fps=F&tag=T : a moving test pattern with a stamp.

    Drawn in YUV420 with numpy (no encode/decode): used by `vigie demo` and tests.
    """

    codec = "synthetic"
    behind = None  # drawn here, never late
    lag_skips = 0

    def sample_aspect(self) -> float:
        return 1.0

    def __init__(self, spec: SourceSpec) -> None:
        parts = urlsplit(spec.url)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        try:
            self.width = int(query.get("width", 640)) // 2 * 2
            self.height = int(query.get("height", 360)) // 2 * 2
            self.fps = float(query.get("fps", 15))
            self.tag = int(query.get("tag", 0)) & 0xFF
        except ValueError:
            raise SourceError("bad synthetic parameters") from None
        if not (16 <= self.width <= 3840 and 16 <= self.height <= 2160 and 0.5 <= self.fps <= 60):
            raise SourceError("synthetic parameters out of range")
        name = parts.netloc or parts.path.strip("/")
        seed = sum(name.encode()) % 200
        # A diagonal gradient tinted per camera; a bright bar sweeps across it.
        ys, xs = np.mgrid[0 : self.height, 0 : self.width]
        self._base_y = (40 + (xs + ys) * 160 // (self.width + self.height)).astype(np.uint8)
        self._u = np.full((self.height // 2, self.width // 2), 128 + (seed - 100) // 2, np.uint8)
        self._v = np.full((self.height // 2, self.width // 2), 128 - (seed - 100) // 3, np.uint8)
        self._index = 0

    def packets(self, decoding: Callable[[], Decoding],
                live: threading.Event | None = None) -> Iterator[Packet]:
        period = 1.0 / self.fps
        next_due = time.monotonic()
        live = live or threading.Event()
        while True:
            mode = decoding()
            if mode is Decoding.FULL or live.is_set():
                interval, active = period, True  # decoded, or remuxed as it comes
            elif mode is Decoding.REDUCED:
                interval, active = max(period, REDUCED_PICTURE_INTERVAL), True
            else:
                interval, active = max(period, IDLE_STILL_INTERVAL), False
            next_due += interval
            delay = next_due - time.monotonic()
            if delay <= 0:
                next_due = time.monotonic()
            elif active:
                time.sleep(delay)
            elif live.wait(delay):
                next_due = time.monotonic()  # someone started watching: a picture now
            yield Packet(self.width * self.height // 10, self._frame())

    def _frame(self) -> av.VideoFrame:
        self._index += 1
        buffer = np.empty((self.height * 3 // 2, self.width), np.uint8)
        y = buffer[: self.height]
        y[:] = self._base_y
        bar = (self._index * 8) % self.width
        y[:, bar : bar + max(4, self.width // 40)] = 235
        quarter = (self.height // 2) * (self.width // 2)
        chroma = buffer[self.height :].reshape(-1)
        chroma[:quarter] = self._u.reshape(-1)
        chroma[quarter:] = self._v.reshape(-1)
        draw_stamp(y, self.tag, chroma=(chroma[:quarter].reshape(self.height // 2, -1),
                                        chroma[quarter:].reshape(self.height // 2, -1)))
        return av.VideoFrame.from_ndarray(buffer, format="yuv420p")

    def close(self) -> None:
        pass


def _open_rtsp(spec: SourceSpec) -> Source:
    from ingest.rtsp_source import open_rtsp  # it builds on this module's types

    return open_rtsp(spec)


SOURCE_TYPES: dict[str, Callable[[SourceSpec], Source]] = {
    "rtsp": _open_rtsp,
    "rtsps": PyAVSource,
    "file": PyAVSource,
    "synthetic": SyntheticSource,
}


def open_source(spec: SourceSpec) -> Source:
    scheme = urlsplit(spec.url).scheme.lower()
    factory = SOURCE_TYPES.get(scheme)
    if factory is None:
        raise SourceError(f"unsupported URL scheme {scheme!r}")
    return factory(spec)
