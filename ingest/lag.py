"""How far behind its camera a worker reads: the guard that keeps a wall live under overload.

A worker short of CPU decodes slower than its camera sends; the packets wait in the socket's
buffers (megabytes: tens of seconds of video) and the wall shows ever older pictures while
looking live. Measured here (bench B, 64 cameras on 2 cores): 14 s behind. Each packet's
arrival (when the worker reads it) minus its timestamp is constant while the worker keeps
up; the smallest such offset seen is "on time", and the excess over it is the lag.

Lag alone does not say whose fault it is: on a thin link a big keyframe, and the frames
queued behind it, arrive late too, and skipping decoding would not bring them sooner. The
backlog is ours when reads find their packet already waiting (they return at once). So the
source skips only when both hold: more than MAX_LAG behind on a predicted frame, and the
last BACKLOG_READS reads quick. It then stops decoding (reading alone is cheap) until a
read has to wait (the backlog has drained) and a keyframe comes, and goes on from a live
picture at a lower rate.
"""

from __future__ import annotations

MAX_LAG = 1.0  # seconds behind the camera before skipping to the next keyframe
QUICK_READ = 0.002  # seconds: a read that returned sooner found its packet waiting
BACKLOG_READS = 5  # that many quick reads in a row: the backlog is in our buffers
# Skipping longer than this (a camera whose keyframes are not flagged, a very long GOP),
# decoding resumes anyway: a picture that heals beats a frozen one.
SKIP_LIMIT = 10.0
# The camera's clock and ours drift apart, and some cameras stamp a nominal rate (30 fps
# for 29.97: 0.1 %). Letting "on time" creep later by 1 % keeps that from reading as lag;
# a worker that cannot keep up falls behind much faster.
DRIFT_ALLOWANCE = 0.01


class LagMeter:
    def __init__(self) -> None:
        self._on_time: float | None = None  # smallest (arrival - timestamp) seen
        self._last_arrival = 0.0

    def reset(self) -> None:
        """Forget the reference (after a skip: the camera's timestamps may have jumped)."""
        self._on_time = None

    def lag(self, timestamp: float, arrival: float) -> float:
        """Seconds behind the camera for a packet stamped `timestamp` (camera seconds) and
        read at `arrival` (our monotonic clock)."""
        offset = arrival - timestamp
        if self._on_time is None:
            self._on_time = offset
        else:
            self._on_time = min(offset, self._on_time + DRIFT_ALLOWANCE * (arrival - self._last_arrival))
        self._last_arrival = arrival
        return offset - self._on_time
