"""Cameras and files read with PyAV (FFmpeg): `rtsps`, `file`, and the `rtsp` streams our
own client does not take (ingest/source/rtsp/source.py falls back to this)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import av
import av.error

from ingest.source.backlog import CameraBacklog
from ingest.source.base import Packet, SourceError, SourceSpec, register_scheme
from ingest.source.decoding import DecodePolicy, Decoding, PolicySource
from ingest.source.lag import LagGuard

SINGLE_THREAD_PIXELS = 1280 * 720  # above this, FFmpeg's own decoder threads pay


_DEFINITIVE = (ConnectionRefusedError, av.error.HTTPUnauthorizedError, av.error.HTTPNotFoundError,
               av.error.HTTPForbiddenError)


def source_error(error: Exception) -> SourceError:
    """A SourceError for an exception from PyAV/FFmpeg, URL and password left out."""
    return SourceError(describe_av_error(error), definitive=isinstance(error, _DEFINITIVE),
                       timed_out=isinstance(error, (TimeoutError, av.error.ExitError)))


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


register_scheme("rtsps", PyAVSource)
register_scheme("file", PyAVSource)
