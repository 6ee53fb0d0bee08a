"""Density of one node (scenario E): how many cameras nobody watches one Vigie carries.

    python -m bench.density [--counts 100,250,500] [--window-seconds S] [--keep]

Cameras at camera-like rates: looped pre-encoded 640x360 substreams at 12 fps (the legal
minimum for close framing), GOP 1 s, 512 kbit/s, served by bench/feeder.py (nothing encoded to feed
them; a few distinct clips shared by all mounts). For each count, one Vigie (alone, no
wall) pulls them all, nobody watching, `ulimit -n` raised first. Once every camera is live,
with its health known and a keyframe still at most 2 s old (`/api/cameras`: state live,
frame_age), one window measures Vigie's CPU from /proc and its RSS; the feeder's CPU is
reported apart, and whether it keeps real time (every camera's input at least 11 fps).
Reported: CPU and RSS per camera at each count (targets <= 0.1 % of a core and <= 2 MB),
the slopes between counts, and the largest count at which the feeder kept real time here.
Printed with PASS/FAIL, never asserted. Everything on 127.0.0.1, stopped on exit.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.cameras import CLIP_CACHE, Feeder
from bench.children import deferred_signals, run_bench
from bench.clips import make_clips
from bench.cluster_support import print_table, verdict, wait_for
from bench.measure import CpuWindow, memory_mb
from tests.conftest import VigieProcess, start_vigie

FPS, GOP, SIZE = 12, 12, (640, 360)
KBPS = 512                 # a substream's bitrate (a main stream is 2 to 8 Mbit/s)
CLIPS = 8                  # distinct clips, shared by the mounts round-robin
REAL_TIME_FPS = 11.0       # a camera's input at least this: the feeder keeps up
MAX_KEYFRAME_AGE = 2.0     # seconds: target for an idle camera's last decoded keyframe
READY_AGE = 3.0            # seconds: a camera counts as up once its keyframe is this fresh
TARGET_CPU = 0.1           # % of a core per camera
TARGET_RSS = 2.0           # MB per camera


class Bench:
    def __init__(self, args: argparse.Namespace, log) -> None:
        self.args, self.log = args, log
        self.tmp = Path(tempfile.mkdtemp(prefix="vigie-bench-density-"))
        self.feeder: Feeder | None = None
        self.node: VigieProcess | None = None
        self.rows = [("measure", "value", "target", "")]
        self.problems: list[str] = []
        self.measured: list[tuple[int, float, float]] = []  # (cameras, CPU % of a core, RSS MB)
        self.real_time: list[int] = []

    def run(self) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the children
        clips = make_clips(CLIP_CACHE, list(range(60, 60 + CLIPS)), width=SIZE[0], height=SIZE[1], fps=FPS,
                           gop=GOP, frames=4 * GOP, kbps=KBPS)
        try:
            for count in self.args.counts:
                try:
                    self.measure(count, clips)
                finally:
                    self.stop()
        finally:
            self.report()  # what the counts that came up measured

    def measure(self, count: int, clips: list[Path]) -> None:
        with deferred_signals():
            self.feeder = Feeder([clips[i % CLIPS] for i in range(count)], fps=FPS, size=SIZE).start(timeout=120)
        cameras = "".join(f'  - {{id: c{i}, name: C{i}, commune: a, url: "rtsp://127.0.0.1:{self.feeder.port}/loop{i}"}}\n'
                          for i in range(count))
        with deferred_signals():
            self.node = start_vigie(f'server: {{listen: "127.0.0.1:{{port}}"}}\ncommunes: [{{id: a, name: A}}]\n'
                                    f"cameras:\n{cameras}rtsp: {{listen: null}}\n", self.tmp, ready_timeout=120)

        def live() -> list[dict]:
            return [c for c in self.node.get_json("/api/cameras") if c["state"] == "live"
                    and c.get("frame_age") is not None and c["frame_age"] <= READY_AGE]
        started = time.monotonic()
        wait_for(lambda: len(live()) == count, max(60.0, count * 0.4), f"{count} cameras live")
        self.log(f"bench: {count} cameras live in {time.monotonic() - started:.0f} s")
        time.sleep(self.args.settle)
        window = CpuWindow({"vigie": self.node.process.pid, "feeder": self.feeder.pid}).start()
        oldest, down = 0.0, set()
        for _ in range(4):  # the keyframes' age, sampled through the window
            time.sleep(self.args.window_seconds / 4)
            cameras_now = self.node.get_json("/api/cameras")
            oldest = max([oldest, *((c.get("frame_age") or 99.0) for c in cameras_now)])
            down |= {c["id"] for c in cameras_now if c["state"] != "live"}
        cpu = window.stop()
        rss = memory_mb(self.node.process.pid)["VmRSS"]
        slowest = min((c.get("input_fps") or 0.0) for c in cameras_now)
        keeps_up = slowest >= REAL_TIME_FPS
        if keeps_up:
            self.real_time.append(count)
        self.measured.append((count, cpu["vigie"] * 100, rss))
        self.log(f"bench: {count} cameras: vigie {cpu['vigie'] * 100:.1f} %, feeder {cpu['feeder'] * 100:.1f} %, "
                 f"RSS {rss:.0f} MB, slowest input {slowest:.1f} fps")
        per_cpu, per_rss = cpu["vigie"] * 100 / count, rss / count
        self.rows += [
            (f"{count} cameras: Vigie CPU", f"{cpu['vigie'] * 100:.1f} % of a core, {per_cpu:.3f} % per camera",
             f"<= {TARGET_CPU}", verdict(per_cpu <= TARGET_CPU)),
            (f"{count} cameras: Vigie RSS", f"{rss:.0f} MB, {per_rss:.2f} MB per camera",
             f"<= {TARGET_RSS}", verdict(per_rss <= TARGET_RSS)),
            (f"{count} cameras: live throughout", f"{count - len(down)} of {count}", "all", verdict(not down)),
            (f"{count} cameras: oldest keyframe shown", f"{oldest:.2f} s", f"<= {MAX_KEYFRAME_AGE:g} s",
             verdict(oldest <= MAX_KEYFRAME_AGE)),
            (f"{count} cameras: feeder", f"{cpu['feeder'] * 100:.0f} % of a core, slowest camera "
             f"{slowest:.1f} fps", f">= {REAL_TIME_FPS:g} fps", verdict(keeps_up)),
        ]

    def report(self) -> None:
        for (n1, c1, r1), (n2, c2, r2) in zip(self.measured, self.measured[1:]):
            self.rows.append((f"slope {n1} -> {n2} cameras", f"{(c2 - c1) / (n2 - n1):.3f} % of a core and "
                              f"{(r2 - r1) / (n2 - n1):.2f} MB per added camera", "", ""))
        self.rows.append(("largest count with the feeder in real time",
                          str(max(self.real_time)) if self.real_time else "none", "", ""))

    def stop(self) -> None:
        if self.node is not None:
            if self.node.process.poll() is None:
                self.node.terminate(timeout=30)
            self.node = None
        if self.feeder is not None:
            self.feeder.stop()
            self.feeder = None

    def close(self) -> None:
        self.stop()
        if self.args.keep:
            self.log(f"bench: Vigie's folders kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.density", description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="100,250,500", help="camera counts, in order (default 100,250,500)")
    parser.add_argument("--window-seconds", type=float, default=20.0, help="each measured window")
    parser.add_argument("--settle", type=float, default=5.0, help="wait once every camera is live")
    parser.add_argument("--keep", action="store_true", help="keep Vigie's folders (config, log)")
    args = parser.parse_args(argv)
    try:
        args.counts = [int(n) for n in args.counts.split(",")]
    except ValueError:
        parser.error("--counts: numbers separated by commas")
    if not all(1 <= n <= 2000 for n in args.counts):
        parser.error("--counts: each between 1 and 2000")
    return run_bench(lambda log: Bench(args, log), lambda bench, seconds: (
        f"Density of one node, nobody watching ({seconds:.0f} s; 640x360@{FPS} {KBPS} kbit/s looped, windows of "
        f"{args.window_seconds:g} s; targets printed, not asserted)"), print_table)


if __name__ == "__main__":
    sys.exit(main())
