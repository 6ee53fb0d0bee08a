"""How far behind its camera a worker reads: the guard that keeps a wall live under overload.

A worker short of CPU decodes slower than its camera sends; the packets wait in the socket's
buffers (megabytes: tens of seconds of video) and the wall shows ever older pictures while
looking live. Measured here (bench B, 64 cameras on 2 cores): 14 s behind. Each packet's
arrival (when the worker reads it) minus its timestamp is constant while the worker keeps
up; the smallest such offset seen is "on time", and the excess over it is the lag. Past
MAX_LAG the source stops decoding until the next keyframe: reading without decoding is
cheap, the backlog drains, and the wall goes on from a live picture, at a lower rate.
"""

from __future__ import annotations

MAX_LAG = 1.0  # seconds behind the camera before skipping to the next keyframe
CAUGHT_UP = 0.3  # seconds behind, at most, to decode again (from a keyframe)
# Draining even tens of seconds of backlog without decoding takes well under a second. A
# "lag" that does not drain that long is the camera's timestamps jumping back: start afresh.
SKIP_LIMIT = 3.0
# The camera's clock and ours drift apart (cheap crystals: up to ~100 ppm). Letting "on
# time" creep later by 1 ms a second keeps 10x that drift from reading as lag.
DRIFT_ALLOWANCE = 0.001


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
