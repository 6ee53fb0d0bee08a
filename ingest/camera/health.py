"""Per-camera health: state, reason, rates. Written by the worker, read by the API."""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from dataclasses import dataclass

from ingest.camera.picture_health import PictureStatus
from ingest.rates import RateMeter
from ingest.source.decoding import Decoding


class CameraState(str, enum.Enum):
    CONNECTING = "connecting"  # first connection not yet made
    LIVE = "live"
    STALLED = "stalled"        # connected, but no frame for stale_after seconds
    OFFLINE = "offline"        # connection failed or ended; reconnecting with back-off


@dataclass(frozen=True)
class CameraStatus:
    """A consistent snapshot of a camera's health, safe to serialise (no secrets)."""

    state: CameraState
    reason: str | None
    since: float  # wall time the state began
    codec: str | None
    width: int | None
    height: int | None
    input_fps: float
    bitrate_bps: float
    frame_age: float | None  # seconds since the last decoded frame
    last_frame_wall: float | None
    reconnects_last_hour: int
    last_error: str | None
    frames_total: int
    decoding: Decoding  # of the last picture
    lag_skips: int = 0  # times decoding fell behind the camera and skipped to a keyframe
    # Seconds the last picture came behind the camera's own clock (beyond the best seen on
    # this connection): a slow link's or a busy server's delay. None while idle.
    behind: float | None = None
    # Whether the picture is usable (ingest/camera/picture_health.py); None: not judged.
    picture: PictureStatus | None = None


class CameraHealth:
    """Mutable health record of one camera, guarded by a lock."""

    def __init__(self, stale_after: float) -> None:
        self._lock = threading.Lock()
        self.stale_after = stale_after
        self._state = CameraState.CONNECTING
        self._reason: str | None = "starting"
        self._since = time.time()
        self._codec: str | None = None
        self._size: tuple[int, int] | None = None
        self._packets = RateMeter()
        self._last_frame_mono: float | None = None
        self._last_packet_mono: float | None = None
        self._last_frame_wall: float | None = None
        self._reconnects: deque[float] = deque()
        self._last_error: str | None = None
        self._frames_total = 0
        self._decoding = Decoding.IDLE
        self._lag_skips = 0
        self._behind: float | None = None
        self._picture: PictureStatus | None = None

    def set_state(self, state: CameraState, reason: str | None = None) -> None:
        with self._lock:
            if state != self._state:
                self._since = time.time()
            self._state = state
            self._reason = reason
            if state in (CameraState.OFFLINE, CameraState.STALLED) and reason:
                self._last_error = reason

    def connected(self, codec: str) -> None:
        with self._lock:
            self._codec = codec

    def packet(self, now: float, size: int) -> None:
        with self._lock:
            self._packets.add(now, size)
            self._last_packet_mono = now

    def frame(self, now: float, wall: float, width: int, height: int, decoding: Decoding,
              behind: float | None = None) -> None:
        with self._lock:
            self._behind = behind
            self._last_frame_mono = now
            self._last_frame_wall = wall
            self._size = (width, height)
            self._frames_total += 1
            self._decoding = decoding
            if self._state != CameraState.LIVE:
                self._since = wall
                self._state = CameraState.LIVE
                self._reason = None

    def set_picture(self, picture: PictureStatus) -> None:
        with self._lock:
            self._picture = picture

    def lag_skipped(self, count: int) -> None:
        with self._lock:
            self._lag_skips += count

    def reconnected(self, now: float) -> None:
        with self._lock:
            self._reconnects.append(now)

    def frame_age(self, now: float) -> float | None:
        with self._lock:
            return None if self._last_frame_mono is None else now - self._last_frame_mono

    def status(self) -> CameraStatus:
        now, wall = time.monotonic(), time.time()
        with self._lock:
            while self._reconnects and self._reconnects[0] < now - 3600:
                self._reconnects.popleft()
            age = None if self._last_frame_mono is None else now - self._last_frame_mono
            state, reason, since = self._state, self._reason, self._since
            # The watchdog, as seen by readers: a live camera silent too long is stalled,
            # even while its worker is still blocked in a read that has not timed out yet.
            # Silence is measured on packets: an unwatched camera decodes keyframes only.
            silence = None if self._last_packet_mono is None else now - self._last_packet_mono
            if state == CameraState.LIVE and silence is not None and silence > self.stale_after:
                state, reason = CameraState.STALLED, f"no data for {silence:.0f} s"
                since = wall - silence + self.stale_after
            packets_per_second, bytes_per_second = self._packets.rates(now)
            return CameraStatus(
                state=state, reason=reason, since=since, codec=self._codec,
                width=self._size[0] if self._size else None,
                height=self._size[1] if self._size else None,
                input_fps=round(packets_per_second, 2),
                bitrate_bps=round(bytes_per_second * 8),
                frame_age=None if age is None else round(age, 3),
                last_frame_wall=self._last_frame_wall,
                reconnects_last_hour=len(self._reconnects), last_error=self._last_error,
                frames_total=self._frames_total, decoding=self._decoding,
                lag_skips=self._lag_skips,
                behind=None if self._behind is None or state != CameraState.LIVE else round(self._behind, 3),
                picture=self._picture,
            )
