"""Load shedding: which watched cameras are decoded in full when the server cannot decode
them all.

Two cores cannot decode 64 cameras of 640x360 at 15 fps and compose four walls (bench B:
even the floor, decoding and encoding alone, falls behind). Left to itself the machine
shares the CPU fairly among some seventy threads: every camera falls behind, their lag
guards skip to keyframes one after another, and the walls starve (about 1 fps, pictures
seconds old, the API timing out). The governor makes the choice instead. While the walls
miss their ticks (or their viewers cannot take the frames: ingest/wall/compositor.py), or
cameras fall behind for want of CPU, with the machine busy, it reduces
the least prominent watched cameras to their keyframes (ingest/source/decoding.py): their tiles
change once per GOP, live and with their clock, and every other camera and every wall
keeps its rate. When the walls are on time with CPU to spare, it gives cameras back one at
a time (a quarter of them with half the machine idle), and waits twice as long after a
give-back that brought the overload back.

Least prominent: the lowest configured priority, then the smallest tile, then the
furthest down its wall, then the latest in the configuration. A camera someone opened on
its own (a large tile) is reduced after those of its priority on walls.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ingest.wall.compositor import Compositor
from ingest.camera.worker import CameraWorker

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
# The event loop this late (seconds, worst over a sample) is short of CPU to send frames.
LOOP_LAG_STARVED = 0.05
HOLD_MIN = 10.0  # seconds on time before a give-back; doubles when one overloads again
HOLD_MAX = 300.0
CALM_RESET = 300.0  # on time this long: the hold is back to HOLD_MIN
WATCHED_LOW_SAMPLES = 5  # samples with fewer cameras watched before the count follows


@dataclass(frozen=True)
class Load:
    """One sample of what the governor watches."""

    late: float  # share of the walls' ticks that came late (0 without walls)
    lag_skips: int  # skips to a keyframe for want of CPU, by cameras decoded in full
    idle: float | None  # share of the machine's CPU left idle (None: unknown)
    loop_lag: float | None = None  # the event loop's worst lateness (None: not measured)


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
        self._low_for = 0  # samples in a row with fewer cameras watched than reduced

    def update(self, load: Load, watched: int, now: float) -> int:
        """The number of the `watched` cameras (tiles wanted) to reduce after this sample."""
        most = math.floor(watched * MAX_REDUCED_SHARE)
        # Fewer cameras watched for a while (walls closed): their load went with them. A
        # moment's dip (a wall rebuilt, a tour turning its page) keeps the count, or every
        # reduced camera would come back at once, catch-up decoding included.
        self._low_for = self._low_for + 1 if most < self.reduced else 0
        if self._low_for >= WATCHED_LOW_SAMPLES:
            self.reduced = most
        current = min(self.reduced, most)
        busy = load.idle is None or load.idle < BUSY_BELOW_IDLE
        if busy and (load.late >= LATE_OVERLOAD or load.lag_skips > 0):
            self._overloaded_for += 1
            self._calm_since = None
            if self._overloaded_for < OVERLOAD_SAMPLES:
                return current  # a camera's catch-up, a give-back's own catch-up
            if self._last_restore is not None and now - self._last_restore < self.hold:
                self.hold = min(2 * self.hold, HOLD_MAX)  # that give-back was one too many
                self._last_restore = None
            if now - self._last_change >= SETTLE:
                share = STEP_SEVERE if load.late >= LATE_SEVERE else STEP
                more = min(max(1, math.ceil((watched - current) * share)), most - current)
                if more > 0:
                    self.reduced = current = current + more
                    self._last_change = now
            return current
        self._overloaded_for = 0
        if load.late > LATE_CALM or load.lag_skips:
            self._calm_since = None
            return current
        if self._calm_since is None:
            self._calm_since = now
        calm_for = now - self._calm_since
        if calm_for >= CALM_RESET:
            self.hold = HOLD_MIN
        if (current and calm_for >= self.hold and now - self._last_change >= self.hold
                and (load.idle is None or load.idle >= RESTORE_IDLE)):
            many = load.idle is not None and load.idle >= RESTORE_MANY_IDLE
            current -= max(1, math.floor(current * STEP_SEVERE)) if many else 1
            self.reduced = current
            self._last_change = self._last_restore = now
        return current


class MachineIdle:
    """The share of the CPU this server may use that was left idle since the last call.

    On a machine of its own: the machine's idle time (/proc/stat). In a container with a
    CPU quota (`--cpus`, compose's `cpus:`; cgroup v2), /proc/stat still shows the whole
    host, so the quota's unused part counts instead, and no more than the host has idle."""

    def __init__(self, proc_stat: str = "/proc/stat", cgroup: str = "/sys/fs/cgroup",
                 cores: int | None = None) -> None:
        self._proc_stat = proc_stat
        self._cgroup = Path(cgroup)
        self._cores = cores or os.cpu_count() or 1
        self._last: tuple[int, int] | None = None  # /proc/stat (total, idle) ticks
        self._last_usage: tuple[float, int] | None = None  # (monotonic, cgroup usage in us)

    def sample(self) -> float | None:
        host = self._host_idle()
        quota = self._quota()
        if quota is None:
            return host
        usage = self._usage_us()
        now = time.monotonic()
        last, self._last_usage = self._last_usage, (now, usage) if usage is not None else None
        if usage is None or last is None or now <= last[0]:
            return None
        left = quota - (usage - last[1]) / 1e6 / (now - last[0])  # cores of the quota unused
        if host is not None:
            left = min(left, host * self._cores)
        return max(0.0, min(1.0, left / quota))

    def _host_idle(self) -> float | None:
        try:
            with open(self._proc_stat, "rb") as file:
                fields = [int(value) for value in file.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        total, idle = sum(fields[:8]), sum(fields[3:5])  # idle + iowait; guests are in user
        last, self._last = self._last, (total, idle)
        if last is None or total <= last[0]:
            return None
        return (idle - last[1]) / (total - last[0])

    def _quota(self) -> float | None:
        """Cores the cgroup may use, if limited below the machine's."""
        try:
            limit, period = (self._cgroup / "cpu.max").read_text().split()[:2]
            cores = int(limit) / int(period)
        except (OSError, ValueError):
            return None  # no cgroup v2 file, or "max": no quota
        return cores if 0 < cores < self._cores else None

    def _usage_us(self) -> int | None:
        try:
            for line in (self._cgroup / "cpu.stat").read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == "usage_usec":
                    return int(value)
        except (OSError, ValueError):
            pass
        return None


def least_prominent_first(workers: Iterable[CameraWorker]) -> list[CameraWorker]:
    """Watched workers (tiles wanted), in the order the governor reduces them: by their
    configured priority, then as least prominent first. `workers` is in configuration
    order."""
    ranked = []
    for index, worker in enumerate(workers):
        prominence = worker.prominence()
        if prominence is not None:
            ranked.append(((worker.camera.priority, *prominence, -index), worker))
    ranked.sort(key=lambda item: item[0])
    return [worker for _, worker in ranked]


class Governor:
    """A thread sampling the load once a second and reducing or restoring cameras.
    `workers` and `compositors` are asked at every sample (they change with reloads and
    viewers); `workers` in configuration order."""

    def __init__(self, workers: Callable[[], Iterable[CameraWorker]],
                 compositors: Callable[[], Iterable[Compositor]],
                 idle: Callable[[], float | None] | None = None,
                 loop_lag: Callable[[], float | None] = lambda: None) -> None:
        self._workers = workers
        self._compositors = compositors
        self._idle = idle or MachineIdle().sample
        self._loop_lag = loop_lag
        self.policy = SheddingPolicy()
        self.last_load: Load | None = None
        self.watched = 0
        self.reduced = 0  # applied at the last sample
        self._ticks: weakref.WeakKeyDictionary[Compositor, tuple[int, int, int]] = weakref.WeakKeyDictionary()
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
        loop_lag = self._loop_lag()
        sampled = Load(self._late_share(loop_lag), self._new_lag_skips(workers), self._idle(),
                       loop_lag)
        load = load or sampled
        ranked = least_prominent_first(workers)
        before = self.reduced
        count = self.policy.update(load, len(ranked), now)
        self.last_load, self.watched, self.reduced = load, len(ranked), count
        chosen = set(map(id, ranked[:count]))
        for worker in workers:
            worker.set_reduced(id(worker) in chosen)
        if count > before:
            logger.warning("short of CPU (walls %.0f %% late, %d lag skips, machine %s idle, "
                           "event loop %s late): %d of %d watched cameras reduced to their "
                           "keyframes", 100 * load.late, load.lag_skips, _percent(load.idle),
                           _milliseconds(load.loop_lag), count, len(ranked))
        elif count < before:
            logger.info("CPU to spare: %d of %d watched cameras still reduced (next give-back "
                        "after %.0f s on time)", count, len(ranked), self.policy.hold)

    def _late_share(self, loop_lag: float | None) -> float:
        """Of the walls' ticks since the last sample, those late: ended after the next was
        due, or not encoded because no viewer could take the frame while the event loop
        (which sends the frames) ran late. Viewers starved by their own link, with the loop
        on time, are not the server's overload: reducing cameras would not help them."""
        ticks = late = starved = 0
        for compositor in self._compositors():
            if not compositor.running:
                continue
            now = (compositor.ticks, compositor.late_ticks, compositor.starved_ticks)
            last = self._ticks.get(compositor, now)
            self._ticks[compositor] = now
            ticks += now[0] - last[0]
            late += now[1] - last[1]
            starved += now[2] - last[2]
        if loop_lag is None or loop_lag >= LOOP_LAG_STARVED:
            late += starved
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
        return {"watched_cameras": self.watched, "reduced_cameras": self.reduced,
                "walls_late_share": None if load is None else round(load.late, 3),
                "machine_idle_share": None if load is None or load.idle is None
                else round(load.idle, 3),
                "event_loop_lag_s": None if load is None or load.loop_lag is None
                else round(load.loop_lag, 3),
                "next_give_back_after_s": self.policy.hold}


def _percent(share: float | None) -> str:
    return "?" if share is None else f"{100 * share:.0f} %"


def _milliseconds(seconds: float | None) -> str:
    return "?" if seconds is None else f"{1000 * seconds:.0f} ms"
