"""Load shedding: which watched cameras are decoded in full when the server cannot decode
them all.

Two cores cannot decode 64 cameras of 640x360 at 15 fps and compose four walls (bench B:
even the floor, decoding and encoding alone, falls behind). Left to itself the machine
shares the CPU fairly among some seventy threads: every camera falls behind, their lag
guards skip to keyframes one after another, and the walls starve (about 1 fps, pictures
seconds old, the API timing out). The governor makes the choice instead. While the walls
miss their ticks (or their viewers cannot take the frames: ingest/compositor.py), or
cameras fall behind for want of CPU, with the machine busy, it reduces
the least prominent watched cameras to their keyframes (ingest/decoding.py): their tiles
change once per GOP, live and with their clock, and every other camera and every wall
keeps its rate. When the walls are on time with CPU to spare, it gives cameras back one at
a time (a quarter of them with half the machine idle), and waits twice as long after a
give-back that brought the overload back.

Least prominent: the smallest tile, then the furthest down its wall, then the latest in
the configuration. A camera someone opened on its own (a large tile) is reduced last.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ingest.compositor import Compositor
from ingest.worker import CameraWorker

logger = logging.getLogger(__name__)

SAMPLE_INTERVAL = 1.0  # seconds between load samples
LATE_OVERLOAD = 0.2  # share of the walls' ticks late within a sample: overloaded
LATE_SEVERE = 0.5  # ... badly: shed faster
LATE_CALM = 0.02  # at most this share late: on time
# The machine idle this much or more: lateness is not for want of CPU (a wall too big for
# its encoder, a stall elsewhere), and reducing cameras would not help.
BUSY_BELOW_IDLE = 0.25
RESTORE_IDLE = 0.1  # machine idle at least this to give a camera back
# ... this much: a quarter of the reduced cameras at a time (walls closed, load gone).
RESTORE_MANY_IDLE = 0.5
OVERLOAD_SAMPLES = 2  # overloaded samples in a row before shedding (not a camera's catch-up)
SETTLE = 2.0  # seconds after a change before the next shedding step (its effect shows)
STEP = 0.1  # share of the cameras still in full reduced per step
STEP_SEVERE = 0.25
MAX_REDUCED_SHARE = 0.9  # a tenth of the watched cameras always keeps its full rate
HOLD_MIN = 10.0  # seconds on time before a give-back; doubles when one overloads again
HOLD_MAX = 300.0
CALM_RESET = 300.0  # on time this long: the hold is back to HOLD_MIN


@dataclass(frozen=True)
class Load:
    """One sample of what the governor watches."""

    late: float  # share of the walls' ticks that came late (0 without walls)
    lag_skips: int  # skips to a keyframe for want of CPU, by cameras decoded in full
    idle: float | None  # share of the machine's CPU left idle (None: unknown)


class SheddingPolicy:
    """How many watched cameras to reduce, from one load sample to the next (no clock or
    threads of its own: the governor feeds it)."""

    def __init__(self) -> None:
        self.reduced = 0
        self.hold = HOLD_MIN
        self._overloaded_for = 0  # samples in a row
        self._last_change = -math.inf
        self._last_restore: float | None = None
        self._calm_since: float | None = None

    def update(self, load: Load, watched: int, now: float) -> int:
        """The number of the `watched` cameras (tiles wanted) to reduce after this sample."""
        # Fewer cameras watched (walls closed): their load went with them.
        self.reduced = min(self.reduced, math.floor(watched * MAX_REDUCED_SHARE))
        busy = load.idle is None or load.idle < BUSY_BELOW_IDLE
        if busy and (load.late >= LATE_OVERLOAD or load.lag_skips > 0):
            self._overloaded_for += 1
            self._calm_since = None
            if self._last_restore is not None and now - self._last_restore < self.hold:
                self.hold = min(2 * self.hold, HOLD_MAX)  # that give-back was one too many
                self._last_restore = None
            if self._overloaded_for >= OVERLOAD_SAMPLES and now - self._last_change >= SETTLE:
                full = watched - self.reduced
                share = STEP_SEVERE if load.late >= LATE_SEVERE else STEP
                most = math.floor(watched * MAX_REDUCED_SHARE)
                more = min(max(1, math.ceil(full * share)), most - self.reduced)
                if more > 0:
                    self.reduced += more
                    self._last_change = now
            return self.reduced
        self._overloaded_for = 0
        if load.late > LATE_CALM or load.lag_skips:
            self._calm_since = None
            return self.reduced
        if self._calm_since is None:
            self._calm_since = now
        calm_for = now - self._calm_since
        if calm_for >= CALM_RESET:
            self.hold = HOLD_MIN
        if (self.reduced and calm_for >= self.hold and now - self._last_change >= self.hold
                and (load.idle is None or load.idle >= RESTORE_IDLE)):
            many = load.idle is not None and load.idle >= RESTORE_MANY_IDLE
            self.reduced -= max(1, math.floor(self.reduced * STEP_SEVERE)) if many else 1
            self._last_change = self._last_restore = now
        return self.reduced


class MachineIdle:
    """The share of the machine's CPU time left idle since the last call (/proc/stat)."""

    def __init__(self, path: str = "/proc/stat") -> None:
        self._path = path
        self._last: tuple[int, int] | None = None

    def sample(self) -> float | None:
        try:
            with open(self._path, "rb") as file:
                fields = [int(value) for value in file.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        total, idle = sum(fields[:8]), sum(fields[3:5])  # idle + iowait; guests are in user
        last, self._last = self._last, (total, idle)
        if last is None or total <= last[0]:
            return None
        return (idle - last[1]) / (total - last[0])


def least_prominent_first(workers: Iterable[CameraWorker]) -> list[CameraWorker]:
    """Watched workers (tiles wanted), in the order the governor reduces them. `workers` is
    in configuration order."""
    ranked = []
    for index, worker in enumerate(workers):
        prominence = worker.prominence()
        if prominence is not None:
            ranked.append((prominence, -index, worker))
    ranked.sort(key=lambda item: item[:2])
    return [worker for _, _, worker in ranked]


class Governor:
    """A thread sampling the load once a second and reducing or restoring cameras.
    `workers` and `compositors` are asked at every sample (they change with reloads and
    viewers); `workers` in configuration order."""

    def __init__(self, workers: Callable[[], Iterable[CameraWorker]],
                 compositors: Callable[[], Iterable[Compositor]],
                 idle: Callable[[], float | None] | None = None) -> None:
        self._workers = workers
        self._compositors = compositors
        self._idle = idle or MachineIdle().sample
        self.policy = SheddingPolicy()
        self.last_load: Load | None = None
        self.watched = 0
        self._ticks: weakref.WeakKeyDictionary[Compositor, tuple[int, int]] = weakref.WeakKeyDictionary()
        self._skips: weakref.WeakKeyDictionary[CameraWorker, int] = weakref.WeakKeyDictionary()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="governor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (blocking: from an executor, not the event loop) and give every
        camera its full rate back."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for worker in self._workers():
            worker.set_reduced(False)

    def _run(self) -> None:
        self._idle()  # the first reading only sets the reference
        while not self._stop.wait(SAMPLE_INTERVAL):
            try:
                self.step(time.monotonic())
            except Exception:  # noqa: BLE001 - shedding is an optimisation: never die of it
                logger.exception("governor: sample failed")

    def step(self, now: float, load: Load | None = None) -> None:
        """Sample the load (unless given), decide, and reduce or restore cameras."""
        workers = list(self._workers())
        sampled = Load(self._late_share(), self._new_lag_skips(workers), self._idle())
        load = load or sampled
        ranked = least_prominent_first(workers)
        before = self.policy.reduced
        count = self.policy.update(load, len(ranked), now)
        self.last_load, self.watched = load, len(ranked)
        chosen = set(map(id, ranked[:count]))
        for worker in workers:
            worker.set_reduced(id(worker) in chosen)
        if count > before:
            logger.warning("short of CPU (walls %.0f %% late, %d lag skips, machine %s idle): "
                           "%d of %d watched cameras reduced to their keyframes",
                           100 * load.late, load.lag_skips, _percent(load.idle), count, len(ranked))
        elif count < before:
            logger.info("CPU to spare: %d of %d watched cameras still reduced (next give-back "
                        "after %.0f s on time)", count, len(ranked), self.policy.hold)

    def _late_share(self) -> float:
        """Of the walls' ticks since the last sample, those late: ended after the next was
        due, or not encoded because no viewer could take the frame."""
        ticks = late = 0
        for compositor in self._compositors():
            if not compositor.running:
                continue
            now_ticks, now_late = compositor.ticks, compositor.late_ticks + compositor.starved_ticks
            last_ticks, last_late = self._ticks.get(compositor, (now_ticks, now_late))
            self._ticks[compositor] = (now_ticks, now_late)
            ticks += now_ticks - last_ticks
            late += now_late - last_late
        return min(1.0, late / ticks) if ticks else 0.0  # a tick may be late and starved

    def _new_lag_skips(self, workers: list[CameraWorker]) -> int:
        new = 0
        for worker in workers:
            skips = worker.status().lag_skips
            last = self._skips.get(worker, skips)
            self._skips[worker] = skips
            if not worker.reduced:
                new += max(0, skips - last)
        return new

    def status(self) -> dict:
        load = self.last_load
        return {"watched_cameras": self.watched, "reduced_cameras": self.policy.reduced,
                "walls_late_share": None if load is None else round(load.late, 3),
                "machine_idle_share": None if load is None or load.idle is None
                else round(load.idle, 3),
                "next_give_back_after_s": self.policy.hold}


def _percent(share: float | None) -> str:
    return "?" if share is None else f"{100 * share:.0f} %"
