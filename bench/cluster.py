"""The cluster's bench: failover time after SIGKILL, and what relaying a camera costs.

    python -m bench.cluster [--kills N] [--window-seconds S] [--pairs P] [--settle S]
                            [--relay-size WxH] [--keep]

Measures, with PASS/FAIL beside the targets (printed, never asserted), in one run:
  1. failover: 3 nodes on one nats-server (Debian's, JetStream on), 12 camsim cameras
     320x180@10 gop 10 (as tests/server/test_cluster.py), a 4x3 wall 960x540@10 read by
     MJPEG on node a, never killed. N rounds (10): SIGKILL b or c in turn; the failover
     time is from the kill to the first wall frame where every camera the node owned
     shows a picture made after the kill (the cells' stamps, ingest/picture/stamp.py);
     p50 and max (target <= 5 s each). Meanwhile every other cell must stay fresh
     (a picture at most 2.5 s old). Then the node starts again (same config) and the
     round ends once the spread is 4/4/4 and camsim sees each camera pulled once; how
     long that took, how many cameras moved and whether a cell went stale meanwhile are
     reported too (no target).
  2. relay cost: 2 nodes, 4 camsim cameras 1280x720@10 GOP 2 s (--relay-size; a camera's
     main stream, where decoding outweighs the per-message cost of relaying it) restricted
     to a (`cameras[].nodes: [a]`), a 2x2 wall 640x360@10 of
     the 4 read by MJPEG on a (local, A) or on b (relayed through NATS, B), in alternate
     windows A B A B A B (--pairs) after a settling time: the CPU of both nodes together from /proc
     (bench/measure.py), mean(B) / mean(A) (target <= 1.15); nats-server's and camsim's
     CPU apart, the wall's frame rate and its pictures' age at the reader (glass to wall).

The MJPEG reader runs in a thread of this process, counted apart. A phase that fails
(a timeout) is reported with what it measured until then. The nodes' logs' warnings and
errors are printed after the table, alike ones once with a count. Everything runs on
127.0.0.1; everything started here is stopped on exit, error or Ctrl+C. About 3 minutes
on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.children import deferred_signals, run_bench
from bench.cluster_support import (NatsServer, Staleness, cell_ages, log_problems, made_after,
                                   node_config, oldest, print_table, seconds, stop_nodes, tag,
                                   verdict, wait_for)
from bench.measure import CpuWindow, percentile
from tests.conftest import VigieProcess, start_vigie
from tests.support.camsim import CameraSimulator, Mount, require_gstreamer
from tests.support.mjpeg import MjpegReader, ReceivedFrame

CAMERAS = [f"c{i}" for i in range(12)]
RELAYED = CAMERAS[:4]          # the relay cost's cameras, all pulled by node a
NODES = ("a", "b", "c")
WATCHER = "a"                  # the node whose wall is read; never killed
TARGET_FAILOVER = 5.0          # seconds, p50 and max
STALE = 2.5                    # seconds: a cell showing an older picture is stale
TARGET_RATIO = 1.15            # CPU of both nodes, relayed / local
RECOVERY_TIMEOUT = 20.0        # a failover not seen by then counts as failed
SETTLE_TIMEOUT = 40.0          # a rejoin not settled by then stops the bench

GRID = (4, 3)                  # the failover wall's columns and rows

Row = tuple[str, str, str, str]  # measure, value, target, verdict


@dataclass
class Failovers:
    """What the failover rounds measured (seconds)."""
    during: Staleness                                   # the other cells, during failovers
    times: list[float] = field(default_factory=list)    # kill to the cameras live again
    failed: int = 0                                     # rounds whose cameras never came back
    rejoins: list[float] = field(default_factory=list)  # restart to 4/4/4, pulled once
    moved: list[int] = field(default_factory=list)      # cameras that moved at each rejoin
    rejoin_stale: list[float] = field(default_factory=list)  # the stalest cell meanwhile


class Bench:
    def __init__(self, args: argparse.Namespace, log: Callable[[str], None]) -> None:
        self.args = args
        self.log = log
        self.tmp = Path(tempfile.mkdtemp(prefix="vigie-bench-cluster-"))
        self.sim: CameraSimulator | None = None
        self.nats: NatsServer | None = None
        self.nodes: dict[str, VigieProcess] = {}
        self.reader: MjpegReader | None = None
        self.logs: list[tuple[str, Path]] = []  # (node, log) of every node started
        self.rows: list[Row] = [("measure", "value", "target", "")]
        self.problems: list[str] = []
        self.closed = False

    # -- the pieces ------------------------------------------------------------------------------

    def start_node(self, name: str, config: str, phase: str) -> VigieProcess:
        """A node in a folder of its own (a restart keeps the killed one's log)."""
        with deferred_signals():
            node = start_vigie(config, self.tmp, ready_timeout=30)
        self.nodes[name] = node
        self.logs.append((f"{phase} node {name}", node.log_path))
        return node

    def owners(self) -> dict[str, str | None]:
        return self.nodes[WATCHER].get_json("/api/cluster")["cameras"]

    def settled(self, cameras: list[str], nodes: tuple[str, ...]) -> bool:
        """`cameras` owned, spread evenly over `nodes`, each pulled once from camsim."""
        counts = {node: 0 for node in nodes}
        for camera, owner in self.owners().items():
            if camera not in cameras:
                continue
            counts[str(owner)] = counts.get(str(owner), 0) + 1
        even = sorted(counts) == sorted(nodes) and max(counts.values()) - min(counts.values()) <= 1
        playing = {camera: n for camera, n in self.sim.playing().items() if n}
        return even and playing == {camera: 1 for camera in cameras}

    def watch(self, node: VigieProcess) -> MjpegReader:
        self.stop_reader()
        self.reader = node.reader("/walls/w/mjpeg")
        return self.reader

    def stop_reader(self) -> None:
        if self.reader is not None:
            self.reader.stop()
            self.reader = None

    def last_ages(self, grid: tuple[int, int], count: int) -> tuple[ReceivedFrame, dict[int, int]] | None:
        if self.reader is None or not self.reader.frames:
            return None
        frame = self.reader.frames[-1]
        return frame, cell_ages(frame, grid, count)

    def wall_live(self, grid: tuple[int, int], tags: set[int]) -> bool:
        last = self.last_ages(grid, len(tags))
        return last is not None and oldest(last[1], tags) <= STALE

    def stop_all(self) -> None:
        self.stop_reader()
        stop_nodes(list(self.nodes.values()), self.problems)
        self.nodes = {}
        if self.nats is not None:
            self.nats.stop()
            self.nats = None

    # -- 1. failover -----------------------------------------------------------------------------

    def failover(self) -> None:
        self.nats = NatsServer(self.tmp / "jetstream-failover")
        config = {name: node_config(self.sim, self.nats.url, name, CAMERAS, "4x3", "960x540")
                  for name in NODES}
        results = Failovers(during=Staleness(GRID, len(CAMERAS), set()))
        try:
            for name in NODES:
                self.start_node(name, config[name], "failover")
            self.log("bench: failover, 3 nodes up; waiting for 4/4/4 and the wall")
            wait_for(lambda: self.settled(CAMERAS, NODES), SETTLE_TIMEOUT, "12 cameras spread 4/4/4")
            self.watch(self.nodes[WATCHER])
            for round_ in range(self.args.kills):
                self.kill_and_restart(round_, NODES[1 + round_ % 2], config, results)
        except (RuntimeError, AssertionError, OSError) as error:  # what was measured is reported
            self.problems.append(f"failover stopped after {len(results.rejoins)} round(s): {error}")
        finally:
            self.stop_all()
        times, during = results.times, results.during
        p50 = percentile(times, 50)
        worst = max(times) if times and not results.failed else None
        fmt = lambda v: "n/a" if v is None else f"{v:.2f} s"  # noqa: E731
        self.rows += [
            ("failover: rounds (SIGKILL of b, c in turn)", f"{len(times)} back, {results.failed} not, "
             f"of {self.args.kills}", "", ""),
            ("failover: p50", fmt(p50), f"<= {TARGET_FAILOVER:g} s",
             verdict(p50 is not None and p50 <= TARGET_FAILOVER)),
            ("failover: max", fmt(worst), f"<= {TARGET_FAILOVER:g} s",
             verdict(worst is not None and worst <= TARGET_FAILOVER)),
            ("failover: each round", seconds(times), "", ""),
            ("failover: other cells stale (> 2.5 s)", f"{during.stale_frames} of {during.frames} frames "
             f"(stalest other cell {during.worst:.2f} s)", "never",
             verdict(during.frames > 0 and during.stale_frames == 0)),
            ("rejoin: restart to 4/4/4, pulled once", f"p50 {fmt(percentile(results.rejoins, 50))}, "
             f"max {fmt(max(results.rejoins, default=None))}", "", ""),
            ("rejoin: cameras moved", " ".join(map(str, results.moved)) or "none", "", ""),
            ("rejoin: stalest cell while it came back", seconds(results.rejoin_stale) +
             f" ({sum(v > STALE for v in results.rejoin_stale)} rounds > {STALE:g} s)", "", ""),
        ]

    def kill_and_restart(self, round_: int, victim: str, config: dict[str, str], results: Failovers) -> None:
        """SIGKILL `victim`; time until its cameras are live again on a's wall, watching the
        other cells meanwhile; start it again and wait until the spread is even again."""
        reader, everyone = self.reader, {tag(c) for c in CAMERAS}
        assert reader is not None
        wait_for(lambda: self.wall_live(GRID, everyone), 30, "every cell of a's wall live")
        owned = {tag(c) for c, owner in self.owners().items() if owner == victim}
        del reader.frames[:-20]  # the reader keeps every frame: keep memory flat
        killed_at = time.time()
        self.nodes[victim].process.send_signal(signal.SIGKILL)
        self.nodes[victim].process.wait(10)
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        back = None
        while back is None and time.monotonic() < deadline:
            time.sleep(0.1)
            last = self.last_ages(GRID, len(everyone))
            if last is not None and owned <= made_after(last[0], last[1], killed_at):
                back = last[0].received_wall
        # The first frame showing them all again; the other cells until then.
        during = results.during
        during.tags, during.last_made = everyone - owned, {}
        first = None
        for frame in reader.frames_between(killed_at - 0.5, (back or time.time()) + 0.001):
            ages = during.feed(frame, STALE)
            if frame.received_wall >= killed_at and owned <= made_after(frame, ages, killed_at):
                first = frame.received_wall
                break
        if first is None:
            results.failed += 1
            self.problems.append(f"round {round_ + 1}: {victim}'s {len(owned)} cameras not "
                                 f"back on a's wall within {RECOVERY_TIMEOUT:.0f} s")
        else:
            results.times.append(first - killed_at)
        self.log(f"bench: round {round_ + 1}: killed {victim} ({len(owned)} cameras), "
                 + (f"back after {first - killed_at:.2f} s" if first else "NOT back"))
        # It comes back: wait until it holds its share and each camera is pulled once.
        before = self.owners()
        restarted = time.time()
        self.start_node(victim, config[victim], "failover")
        wait_for(lambda: self.settled(CAMERAS, NODES), SETTLE_TIMEOUT,
                 f"{victim} back, 4/4/4, each camera pulled once")
        results.rejoins.append(time.time() - restarted)
        results.moved.append(sum(1 for c, owner in self.owners().items() if owner != before[c]))
        time.sleep(1.5)  # a moved camera's first pictures on the wall
        rejoin = Staleness(GRID, len(everyone), everyone)
        for frame in reader.frames_between(restarted - 0.5, time.time()):
            rejoin.feed(frame, STALE)
        results.rejoin_stale.append(rejoin.worst)

    # -- 2. relay cost ---------------------------------------------------------------------------

    def relay(self) -> None:
        self.nats = NatsServer(self.tmp / "jetstream-relay")
        windows: dict[str, list[dict[str, float]]] = {"A": [], "B": []}  # CPU s/s by process
        views: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}  # (fps, median age)
        grid, tags = (2, 2), {tag(c) for c in RELAYED}
        pulled_by_a = lambda: {c: o for c, o in self.owners().items() if c in RELAYED} == {  # noqa: E731
            c: "a" for c in RELAYED}
        try:
            for name in ("a", "b"):
                self.start_node(name, node_config(self.sim, self.nats.url, name, RELAYED, "2x2", "640x360",
                                                  pinned={c: "a" for c in RELAYED}), "relay")
            wait_for(lambda: pulled_by_a() and self.settled(RELAYED, ("a",)), SETTLE_TIMEOUT,
                     "4 cameras pulled by a")
            pids = {"a": self.nodes["a"].process.pid, "b": self.nodes["b"].process.pid,
                    "nats": self.nats.pid, "camsim": self.sim.pid or 0, "bench": os.getpid()}
            for index in range(2 * self.args.pairs):
                mode = "AB"[index % 2]
                if not pulled_by_a():
                    raise RuntimeError(f"the 4 cameras left node a: {self.owners()}")
                reader = self.watch(self.nodes["a" if mode == "A" else "b"])
                wait_for(lambda: self.wall_live(grid, tags), 30, f"the wall live on {reader.url}")
                time.sleep(self.args.settle)  # the other wall lingers 5 s, its want 3 s
                window = CpuWindow(pids).start()
                time.sleep(self.args.window_seconds)
                cpu = window.stop()
                frames = reader.frames_between(window.wall_started, window.wall_ended)
                self.stop_reader()
                ages = [age for frame in frames[::2] for age in cell_ages(frame, grid, 4).values()]
                views[mode].append((len(frames) / window.seconds, statistics.median(ages) if ages else 0.0))
                windows[mode].append(cpu)
                self.log(f"bench: relay window {mode}: " + ", ".join(
                    f"{name} {value * 100:.1f} %" for name, value in cpu.items()))
        except (RuntimeError, AssertionError, OSError) as error:  # what was measured is reported
            self.problems.append(f"relay cost stopped: {error}")
        finally:
            self.stop_all()
        if not windows["A"] or not windows["B"]:
            self.rows.append(("relay: ratio relayed / local", "not measured", f"<= {TARGET_RATIO}", "FAIL"))
            return
        others = max(w["others"] for mode in "AB" for w in windows[mode]) * 100
        if others > 20:
            self.problems.append(f"processes not of this bench used up to {others:.0f} % of a core "
                                 "during the relay windows: the CPU figures are noisy")
        mean = lambda mode, key: statistics.mean(w[key] for w in windows[mode]) * 100  # noqa: E731
        both = {mode: [(w["a"] + w["b"]) * 100 for w in windows[mode]] for mode in "AB"}
        local, relayed = statistics.mean(both["A"]), statistics.mean(both["B"])
        ratio = relayed / local if local else float("inf")
        pct = lambda values: " ".join(f"{v:.1f}" for v in values)  # noqa: E731
        view = lambda mode: (f"{min(v[0] for v in views[mode]):.1f}..{max(v[0] for v in views[mode]):.1f} fps, "  # noqa: E731
                             f"median age {statistics.median(v[1] for v in views[mode]):.0f} ms")
        self.rows += [
            ("relay: CPU a+b, wall read on a (local)", f"{local:.1f} % of a core ({pct(both['A'])}; "
             f"a {mean('A', 'a'):.1f}, b {mean('A', 'b'):.1f})", "", ""),
            ("relay: CPU a+b, wall read on b (relayed)", f"{relayed:.1f} % of a core ({pct(both['B'])}; "
             f"a {mean('B', 'a'):.1f}, b {mean('B', 'b'):.1f})", "", ""),
            ("relay: ratio relayed / local", f"{ratio:.3f}", f"<= {TARGET_RATIO}", verdict(ratio <= TARGET_RATIO)),
            ("relay: nats-server CPU, local / relayed", f"{mean('A', 'nats'):.2f} / {mean('B', 'nats'):.2f} "
             "% of a core", "", ""),
            ("relay: camsim CPU, local / relayed", f"{mean('A', 'camsim'):.1f} / {mean('B', 'camsim'):.1f} "
             "% of a core", "", ""),
            ("relay: machine busy, local / relayed", f"{mean('A', 'machine'):.0f} / {mean('B', 'machine'):.0f} "
             f"% of a core (of {os.cpu_count() * 100}; others {mean('A', 'others'):.0f} / "
             f"{mean('B', 'others'):.0f})", "", ""),
            ("relay: wall at the reader, local", view("A"), "", ""),
            ("relay: wall at the reader, relayed", view("B"), "", ""),
        ]

    # -- the run -----------------------------------------------------------------------------------

    def run(self) -> None:
        require_gstreamer()
        if self.args.kills > 0:
            self.use_cameras([Mount(c, tag=tag(c), width=320, height=180, fps=10, gop=10) for c in CAMERAS])
            self.failover()
        width, height = self.args.relay_size
        self.use_cameras([Mount(c, tag=tag(c), width=width, height=height, fps=10, gop=20) for c in RELAYED])
        self.relay()

    def use_cameras(self, mounts: list[Mount]) -> None:
        """camsim with these mounts, in place of the last one."""
        with deferred_signals():
            if self.sim is not None:
                self.sim.stop()
            self.sim = CameraSimulator(mounts)
            self.sim.start()

    def close(self) -> None:
        """Stop everything this bench started; the nodes' logs' problems join the report.
        Idempotent."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.stop_all()
        for name, node in list(self.nodes.items()):  # stop_all failed half-way
            with contextlib.suppress(Exception):
                node.process.kill()
        if self.sim is not None:
            with contextlib.suppress(Exception):
                self.sim.stop()
            self.sim = None
        self.problems += log_problems(self.logs)
        if self.args.keep:
            self.log(f"bench: the nodes' folders (config, log) kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(n) for n in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WxH, as 1280x720") from None
    if not (64 <= width <= 3840 and 64 <= height <= 2160):
        raise argparse.ArgumentTypeError(f"{text!r}: out of 64x64..3840x2160")
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=10, help="failover rounds (0: relay cost only)")
    parser.add_argument("--window-seconds", type=float, default=8.0, help="each relay cost window")
    parser.add_argument("--pairs", type=int, default=3, help="relay cost windows: A B, this many times")
    parser.add_argument("--settle", type=float, default=5.5, help="wait before each relay window")
    parser.add_argument("--relay-size", type=_size, default=(1280, 720), metavar="WxH",
                        help="the relay cost's cameras (camsim, 10 fps, GOP 2 s); default 1280x720")
    parser.add_argument("--keep", action="store_true", help="keep the nodes' folders (config, log)")
    args = parser.parse_args(argv)
    if args.kills < 0 or args.pairs < 1:
        parser.error("--kills must be >= 0 and --pairs >= 1")
    return run_bench(lambda log: Bench(args, log), lambda bench, seconds: (
        f"Cluster bench ({seconds:.0f} s; {args.kills} kills, relay windows of {args.window_seconds:g} s, "
        f"relayed cameras {args.relay_size[0]}x{args.relay_size[1]}; targets printed, not asserted)"), print_table)


if __name__ == "__main__":
    sys.exit(main())
