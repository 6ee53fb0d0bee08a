"""How far behind its camera a worker reads, and when to skip decoding to catch up.

A worker short of CPU decodes slower than its camera sends; the packets wait in the socket
and the wall shows ever older pictures while looking live (bench B, 64 cameras on 2 cores:
14 s behind). Each packet's arrival (when the worker reads it) minus its timestamp is
constant while the worker keeps up; the smallest such offset seen is "on time", and the
excess over it is the lag.

Lag alone does not say whose fault it is: on a thin link a big keyframe, and the frames
queued behind it, arrive late too, and not decoding would not bring them sooner, only
freeze the camera (CI's rural-link test caught three guards built on lag and timing alone).
So the guard skips only when the camera's data is waiting in our own socket
(ingest/source/backlog.py): then reading without decoding drains it many times faster than real
time, and decoding resumes at the first keyframe back at the live edge.
"""

from __future__ import annotations

from collections.abc import Callable

MAX_LAG = 1.0  # seconds behind the camera before skipping, if the backlog is ours
CAUGHT_UP = 0.3  # seconds behind, at most, for a keyframe to resume decoding at
# Skipping longer than this (a camera whose keyframes are not flagged, a very long GOP),
# decoding resumes anyway, mid-GOP: a picture that heals at the next keyframe beats a
# frozen one.
SKIP_LIMIT = 10.0
JUMP_BACK = 1.0  # timestamps going back more than this: the camera's clock was reset
# A backlog is ours when the camera's socket holds at least this much unread (on two
# readings in a row, ingest/source/backlog.py).
BACKLOG_SECONDS = 0.5  # of the camera's own bitrate, within:
BACKLOG_MIN_BYTES = 16_384
# A socket read slowly may hold little more than its initial buffer (the kernel grows it
# for readers that keep up): 0.5 s of an 8 Mbit/s camera (500 kB) might never be seen, and
# older kernels' initial window is about 64 kB: kept clearly below.
BACKLOG_MAX_BYTES = 49_152
# The camera's clock and ours drift apart (quartz: 10-100 ppm), and some cameras stamp a
# nominal rate (30 fps for 29.97: 0.1 %). Letting "on time" creep later by 0.2 % keeps that
# from reading as lag; a worker that cannot keep up falls behind much faster (a backlog
# growing slower than 7 s an hour is not seen).
DRIFT_ALLOWANCE = 0.002
RATE_WINDOW = 2.0  # camera seconds over which its bitrate is averaged


class LagMeter:
    def __init__(self) -> None:
        self._on_time: float | None = None  # smallest (arrival - timestamp) seen
        self._last_arrival = 0.0
        self._last_timestamp: float | None = None

    def lag(self, timestamp: float, arrival: float) -> float:
        """Seconds behind the camera for a packet stamped `timestamp` (camera seconds) and
        read at `arrival` (our monotonic clock)."""
        if self._last_timestamp is not None and timestamp < self._last_timestamp - JUMP_BACK:
            self._on_time = None  # a clock reset, not lag: a new reference
        self._last_timestamp = timestamp
        offset = arrival - timestamp
        if self._on_time is None:
            self._on_time = offset
        else:
            self._on_time = min(offset, self._on_time + DRIFT_ALLOWANCE * (arrival - self._last_arrival))
        self._last_arrival = arrival
        return offset - self._on_time


class LagGuard:
    """One per source, used by its worker thread only: decode this packet or skip it.

    `bytes_waiting` says how much of this camera's data waits unread in our sockets (our
    RTSP client's own socket, or ingest.source.backlog's reading of /proc for FFmpeg's); it must
    answer at once."""

    def __init__(self, bytes_waiting: Callable[[], int]) -> None:
        self.meter = LagMeter()
        self.skips = 0  # times decoding fell behind and skipped to a keyframe
        self.behind: float | None = None  # seconds behind the camera at the last packet
        self._bytes_waiting = bytes_waiting
        self._skipping_since: float | None = None
        self._rate_start = -1e18  # camera seconds
        self._rate_bytes = 0
        self._bitrate = 0.0  # bytes per second, over the last RATE_WINDOW

    @property
    def skipping(self) -> bool:
        return self._skipping_since is not None

    def stop(self) -> None:
        """Nobody watches: nothing is decoded in full, nothing to guard."""
        self._skipping_since = self.behind = None

    def observe(self, size: int, timestamp: float | None, now: float) -> None:
        """Keyframes only (reduced for want of CPU): how far behind, nothing to skip. The
        clock of a reduced camera's tiles stays the time its pictures were taken."""
        self._skipping_since = None
        self._count(size, timestamp)
        if timestamp is not None:
            self.behind = self.meter.lag(timestamp, now)

    def decode(self, size: int, timestamp: float | None, is_keyframe: bool, now: float) -> bool:
        """False: skip decoding this packet (behind, by our fault). True after a skip means
        this packet is the keyframe decoding resumes at."""
        self._count(size, timestamp)
        if timestamp is None:  # no timestamp (rare): as late as the last packet
            lag = self.behind or 0.0
        else:
            lag = self.behind = self.meter.lag(timestamp, now)
        if self._skipping_since is None:
            if lag <= MAX_LAG or not self._backlog_is_ours():
                return True
            self._skipping_since = now
            self.skips += 1
        elif now - self._skipping_since > SKIP_LIMIT:
            self._skipping_since = None  # no keyframe came (or none flagged): decode anyway
            return True
        # Resume at a keyframe back at the live edge, or at one once our socket is empty: the
        # lag left then is the link's (its data was late *and* ours briefly waited), and
        # skipping on would freeze the camera for nothing.
        if not is_keyframe or (lag > CAUGHT_UP and self._backlog_is_ours()):
            return False
        self._skipping_since = None
        return True

    def _backlog_is_ours(self) -> bool:
        threshold = min(BACKLOG_MAX_BYTES, max(BACKLOG_MIN_BYTES, BACKLOG_SECONDS * self._bitrate))
        return self._bytes_waiting() >= threshold

    def _count(self, size: int, timestamp: float | None) -> None:
        """The camera's bitrate over RATE_WINDOW of its own time (our reading rate would
        read low exactly when we are behind)."""
        if timestamp is None:
            return
        self._rate_bytes += size
        elapsed = timestamp - self._rate_start
        if elapsed < 0 or elapsed > 10 * RATE_WINDOW:
            self._rate_start, self._rate_bytes = timestamp, 0  # first packet, or a jump
        elif elapsed >= RATE_WINDOW:
            self._bitrate = self._rate_bytes / elapsed
            self._rate_start, self._rate_bytes = timestamp, 0
