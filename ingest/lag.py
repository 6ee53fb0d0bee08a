"""How far behind its camera a worker reads: the guard that keeps a wall live under overload.

A worker short of CPU decodes slower than its camera sends; the packets wait in the socket's
buffers (megabytes: tens of seconds of video) and the wall shows ever older pictures while
looking live. Measured here (bench B, 64 cameras on 2 cores): 14 s behind. Each packet's
arrival (when the worker reads it) minus its timestamp is constant while the worker keeps
up; the smallest such offset seen is "on time", and the excess over it is the lag.

Lag alone does not say whose fault it is: on a thin link a big keyframe, and the frames
queued behind it, arrive late too, and not decoding would not bring them sooner. So past
MAX_LAG the guard *tries*: it stops decoding (reading alone is cheap) and keeps what it
skips. If the lag melts fast (under CAUGHT_UP, losing DRAIN_SPEEDUP seconds of lag a second
at least: reading alone outruns the camera) the backlog was ours: what was kept is dropped
and decoding goes on from the next keyframe, live again at a lower rate (counted, logged).
If it melts only slowly (a link catching up after a big keyframe) or not within PROBE, the
link is the bottleneck: the kept packets are decoded at once (nothing lost but a moment)
and the guard stays calm for CALM seconds. Signs that
fail under load (how fast a read returns: the GIL and the scheduler delay it too) are not
used.
"""

from __future__ import annotations

import enum

import av

MAX_LAG = 1.0  # seconds behind the camera before trying to skip
CAUGHT_UP = 0.3  # seconds behind, at most: the backlog has drained
DRAIN_SPEEDUP = 2.0  # lag lost per second of skipping, at least, for the backlog to be ours
PROBE = 1.0  # seconds of skipping for the lag to halve, or it is the link
CALM = 30.0  # seconds without trying again after a probe that did not drain
# Skipping longer than this (a camera whose keyframes are not flagged, a very long GOP),
# decoding resumes anyway: a picture that heals beats a frozen one.
SKIP_LIMIT = 10.0
KEEP_MAX_BYTES = 4_000_000  # what a probe keeps to give back; beyond, it waits for a keyframe
# The camera's clock and ours drift apart, and some cameras stamp a nominal rate (30 fps
# for 29.97: 0.1 %). Letting "on time" creep later by 1 % keeps that from reading as lag;
# a worker that cannot keep up falls behind much faster.
DRIFT_ALLOWANCE = 0.01


class LagMeter:
    def __init__(self) -> None:
        self._on_time: float | None = None  # smallest (arrival - timestamp) seen
        self._last_arrival = 0.0

    def reset(self) -> None:
        """Forget the reference (at the live edge again, or the timestamps jumped)."""
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


class Verdict(enum.Enum):
    DECODE = "decode"      # as usual
    SKIP = "skip"          # do not decode this packet
    GIVE_BACK = "give_back"  # decode the kept packets (discarding their pictures), then this one
    RESUME = "resume"      # decode from this packet on (a keyframe, or skipping lasted too long)


class BacklogGuard:
    """One per source, used by its worker thread only: packet by packet, decode or not."""

    def __init__(self) -> None:
        self.meter = LagMeter()
        self.skips = 0  # backlogs drained by skipping (the CPU was short)
        self._since: float | None = None  # skipping since
        self._start_lag = 0.0
        self._drained = False
        self._calm_until = 0.0
        self._kept: list[av.Packet] | None = []
        self._kept_bytes = 0

    @property
    def skipping(self) -> bool:
        return self._since is not None

    def stop(self) -> None:
        """Nobody watches any more: nothing is decoded in full, nothing to guard."""
        self._since, self._kept, self._kept_bytes = None, [], 0

    def verdict(self, packet: av.Packet, lag: float, now: float) -> Verdict:
        if self._since is None:
            if lag > MAX_LAG and not packet.is_keyframe and now >= self._calm_until:
                self._since, self._start_lag, self._drained = now, lag, False
                self._kept, self._kept_bytes = [], 0
                self._keep(packet)
                return Verdict.SKIP
            return Verdict.DECODE
        if not self._drained:
            # Read faster than the camera films, the lag falls by more than the wall time
            # spent: reading without decoding runs many times faster than real time when
            # the backlog is in our buffers, about real time when a link catches up after
            # a big keyframe (whose lag melts too, only slowly).
            melted = self._start_lag - lag
            if lag <= CAUGHT_UP and melted >= DRAIN_SPEEDUP * (now - self._since):
                self._drained = True  # ours: drop what was kept, resume at a keyframe
                self.skips += 1
                self._kept, self._kept_bytes = [], 0
            elif lag <= CAUGHT_UP or (now - self._since > PROBE and lag > self._start_lag / 2):
                # Not melting, or only as the link catches up: not ours. Give the skipped
                # packets back (if all were kept).
                self._since, self._calm_until = None, now + CALM
                if self._kept is not None and not packet.is_keyframe:
                    return Verdict.GIVE_BACK
                self._drained = False
                return Verdict.RESUME if packet.is_keyframe else self._wait_keyframe(now)
        if (self._drained and packet.is_keyframe) or now - self._since > SKIP_LIMIT:
            self._since = None
            self.meter.reset()  # at the live edge: the next packet sets "on time" afresh
            return Verdict.RESUME
        if not self._drained:
            self._keep(packet)
        return Verdict.SKIP

    def _wait_keyframe(self, now: float) -> Verdict:
        """A probe that could not keep everything: wait for a keyframe like a drain."""
        self._since, self._drained = now, True
        return Verdict.SKIP

    def take_kept(self) -> list[av.Packet]:
        kept, self._kept, self._kept_bytes = self._kept or [], [], 0
        return kept

    def _keep(self, packet: av.Packet) -> None:
        if self._kept is None:
            return
        if self._kept_bytes + packet.size > KEEP_MAX_BYTES:
            self._kept, self._kept_bytes = None, 0  # too much to give back: a keyframe then
            return
        self._kept.append(packet)
        self._kept_bytes += packet.size
