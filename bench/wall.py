"""Wall bench: Vigie's CPU per second of wall output against the PyAV decode floor.

    python -m bench.wall [--cameras N] [--seconds S] [--quick] [--json PATH]

One run, on this machine, prints one table:
  1. Vigie's CPU seconds per second (all threads, /proc/PID/stat) over a steady window while
     ONE MJPEG viewer reads the wall;
  2. the decode floor: PyAV decoding the same RTSP streams alone (`bench.decode_floor`, a
     separate process, measured before Vigie so the two never share the cores), and the ratio;
  3. glass-to-glass latency read from the stamps the simulator draws on every frame;
  4. the time from Vigie's process start to a full wall (every cell showing its camera).
Alongside: the simulator's own CPU (it shares the machine), fps delivered, Vigie's RSS.

Everything runs on 127.0.0.1; everything started here is stopped on exit, error or Ctrl+C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import queue
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from bench.measure import (CpuWindow, fmt, memory_mb, percentile, process_started_wall, rate,
                           table)
from bench.profile import ThreadBreakdown, find_py_spy, record, top_functions
from ingest.layout import CellSpec
from tests.camsim import CameraSimulator, Mount, require_gstreamer
from tests.conftest import REPO, VigieProcess, start_vigie
from tests.mjpeg import MjpegReader, ReceivedFrame, cell_stamp, get_json

SOURCE = (640, 360)
FPS = 15
GOP = 15
WALL_ID = "w"
FIRST_TAG = 11            # camera i (0-based) draws tag FIRST_TAG + i
FULL_WALL_TIMEOUT = 40.0  # seconds from Vigie's start to a full wall before giving up
FLOOR_READY_TIMEOUT = 20.0
SIMULATOR_ATTEMPTS = 3


class StuckStream(RuntimeError):
    """A simulator mount that never delivered a frame to the decode floor."""


# -- scenario ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    cameras: int
    seconds: float
    warmup: float

    @property
    def grid(self) -> int:
        return max(1, math.ceil(math.sqrt(self.cameras)))

    @property
    def wall_size(self) -> tuple[int, int]:
        return (1920, 1080) if self.cameras > 4 else (1280, 720)

    def cells(self) -> list[CellSpec]:
        return [CellSpec(f"c{i + 1}", *divmod(i, self.grid)) for i in range(self.cameras)]

    def tags(self) -> list[int]:
        return [FIRST_TAG + i for i in range(self.cameras)]

    def mounts(self) -> list[Mount]:
        return [Mount(f"cam{i + 1}", codec="h264", width=SOURCE[0], height=SOURCE[1], fps=FPS,
                      gop=GOP, tag=FIRST_TAG + i) for i in range(self.cameras)]

    def describe(self) -> str:
        width, height = self.wall_size
        return (f"{self.cameras} x H.264 {SOURCE[0]}x{SOURCE[1]}@{FPS} (GOP {GOP}) -> "
                f"{self.grid}x{self.grid} wall {width}x{height}@{FPS}, 1 MJPEG viewer")

    def vigie_config(self, urls: list[str]) -> str:
        width, height = self.wall_size
        cameras = "".join(
            f'  - {{id: c{i + 1}, name: "Cam {i + 1}", commune: bourg, url: "{url}"}}\n'
            for i, url in enumerate(urls))
        ids = ", ".join(f"c{i + 1}" for i in range(self.cameras))
        return (
            'server: {listen: "127.0.0.1:{port}"}\n'
            "communes:\n  - {id: bourg, name: Le Bourg}\n"
            f"cameras:\n{cameras}"
            "walls:\n"
            f"  - {{id: {WALL_ID}, name: Bench, size: {width}x{height}, fps: {FPS}, "
            f"layout: {self.grid}x{self.grid}, cameras: [{ids}]}}\n"
        )


def read_cells(frame: ReceivedFrame, scenario: Scenario):
    """The stamps of the camera cells of one received wall JPEG (None where unreadable)."""
    gray = frame.gray()
    grid = (scenario.grid, scenario.grid)
    return [cell_stamp(gray, cell, grid, SOURCE) for cell in scenario.cells()]


def full_wall(stamps, tags: list[int]) -> bool:
    return all(stamp is not None and stamp.tag == tag for stamp, tag in zip(stamps, tags))


# -- signals: Ctrl+C and SIGTERM both unwind through the finally blocks ----------------------


def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def deferred_signals():
    """Hold SIGINT/SIGTERM while a child is being started, so its handle is never lost."""
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _f: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            raise KeyboardInterrupt(f"signal {received[0]}")


# -- the run -------------------------------------------------------------------------------


class WallBench:
    def __init__(self, scenario: Scenario, log=print, profile_seconds: float = 0.0) -> None:
        self.scenario = scenario
        self.profile_seconds = profile_seconds
        self.py_spy = find_py_spy()
        self.log = log
        self.results: dict = {}
        self.simulator: CameraSimulator | None = None
        self.vigie: VigieProcess | None = None
        self.reader: MjpegReader | None = None
        self.floor: subprocess.Popen | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="vigie-bench-")
        self.tmp_path = Path(self._tmp.name)

    # lifecycle

    def close(self) -> None:
        """Stop everything this bench started; safe to call at any point, more than once."""
        if self.reader is not None:
            with contextlib.suppress(Exception):
                self.reader.stop()
            self.reader = None
        self._stop_vigie()
        self._stop_floor()
        if self.simulator is not None:
            with contextlib.suppress(Exception):
                self.simulator.stop()
            self.simulator = None
        with contextlib.suppress(Exception):
            self._tmp.cleanup()

    def _stop_vigie(self) -> None:
        vigie, self.vigie = self.vigie, None
        if vigie is not None and vigie.process.poll() is None:
            with contextlib.suppress(Exception):
                vigie.terminate()

    def _stop_floor(self) -> None:
        floor, self.floor = self.floor, None
        if floor is None:
            return
        with contextlib.suppress(Exception):
            floor.stdin.close()  # the floor exits on stdin EOF
        try:
            floor.wait(3)
        except subprocess.TimeoutExpired:
            floor.kill()
            floor.wait(3)

    def run(self) -> dict:
        scenario, results = self.scenario, self.results
        require_gstreamer()
        # The floor goes first: it also proves every mount of the simulator sends frames.
        # (A freshly started simulator sometimes leaves a mount that never sends RTP to its
        # first client; the mount stays stuck. Then we start a new simulator.)
        results["simulator_restarts"] = 0
        for attempt in range(1, SIMULATOR_ATTEMPTS + 1):
            self.log(f"bench: starting the camera simulator ({scenario.cameras} mounts)")
            with deferred_signals():
                self.simulator = CameraSimulator(scenario.mounts()).start()
            urls = [self.simulator.url(mount.path) for mount in scenario.mounts()]
            try:
                self._measure_floor(urls)
                break
            except StuckStream as error:
                self._stop_floor()
                self.simulator.stop()
                self.simulator = None
                if attempt == SIMULATOR_ATTEMPTS:
                    raise
                results["simulator_restarts"] += 1
                self.log(f"bench: {error}; restarting the simulator")
        self._measure_vigie(urls)
        vigie_cpu, floor_cpu = results.get("vigie_cpu_s_per_s"), results.get("floor_cpu_s_per_s")
        results["ratio_vigie_over_floor"] = vigie_cpu / floor_cpu if floor_cpu else None
        return results

    # phase 2: Vigie (the floor has shown that every mount sends frames)

    def _measure_vigie(self, urls: list[str]) -> None:
        scenario, results = self.scenario, self.results
        tags = scenario.tags()
        self.log("bench: starting vigie")
        with deferred_signals():
            self.vigie = start_vigie(scenario.vigie_config(urls), self.tmp_path)
        # Times count from the process start (/proc), not from our call: start_vigie may do
        # work of its own before (config) and after (login) starting the process.
        started_wall = process_started_wall(self.vigie.process.pid)
        started = time.monotonic() - (time.time() - started_wall)
        results["vigie_ready_s"] = time.time() - started_wall
        self.reader = self._viewer(f"/walls/{WALL_ID}/mjpeg")

        # Time to a full wall: the first received frame whose every camera cell shows a
        # readable stamp with that camera's tag, from the moment the process was started.
        checked = 0
        full_at: float | None = None
        last_tags: list = []
        deadline = started + FULL_WALL_TIMEOUT
        while full_at is None:
            self._check_alive()
            frames = self.reader.frames
            while checked < len(frames):
                frame = frames[checked]
                checked += 1
                if results.get("first_frame_s") is None:
                    results["first_frame_s"] = frame.received_wall - started_wall
                stamps = read_cells(frame, scenario)
                last_tags = [stamp.tag if stamp else None for stamp in stamps]
                if full_wall(stamps, tags):
                    full_at = frame.received_wall
                    break
            if full_at is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no full wall {FULL_WALL_TIMEOUT:.0f} s after vigie "
                                       f"started; last cell tags {last_tags}, expected {tags}\n"
                                       f"{self._vigie_log_tail()}")
                time.sleep(0.02)
        results["full_wall_s"] = full_at - started_wall
        self.log(f"bench: full wall {results['full_wall_s']:.2f} s after start; "
                 f"warming up {scenario.warmup:.0f} s")

        time.sleep(max(0.0, full_at + scenario.warmup - time.time()))
        self._check_alive()
        pids = {"vigie": self.vigie.process.pid, "simulator": self.simulator.pid,
                "bench": os.getpid()}
        self.log(f"bench: measuring vigie for {scenario.seconds:.0f} s")
        threads = None
        if self.py_spy:
            try:
                threads = ThreadBreakdown(self.vigie.process.pid, self.py_spy)
            except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as error:
                self.log(f"bench: no per-thread breakdown: {error}")
        window = CpuWindow(pids).start()
        peak_rss = 0.0
        while time.monotonic() - window.started < scenario.seconds:
            time.sleep(min(1.0, max(0.0, scenario.seconds - (time.monotonic() - window.started))))
            self._check_alive()
            peak_rss = max(peak_rss, memory_mb(self.vigie.process.pid)["VmRSS"])
        cpu = window.stop()
        if threads is not None:
            results["vigie_threads_cpu_s_per_s"] = threads.stop(window.seconds)
        memory = memory_mb(self.vigie.process.pid)
        status = self._get_json("/api/status")
        results["vigie_cpu_s_per_s"] = cpu["vigie"]
        results["simulator_cpu_s_per_s_during_vigie"] = cpu["simulator"]
        results["bench_viewer_cpu_s_per_s"] = cpu["bench"]
        results["others_cpu_s_per_s_during_vigie"] = cpu["others"]
        results["window_s"] = window.seconds
        results["vigie_rss_mb"] = memory["VmRSS"]
        results["vigie_rss_peak_window_mb"] = peak_rss
        results["vigie_rss_hwm_mb"] = memory["VmHWM"]
        results["wall_status"] = next((w for w in status.get("walls", []) if w["id"] == WALL_ID), None)
        cameras = self._get_json("/api/cameras")
        results["camera_reconnects"] = sum(c["reconnects_last_hour"] for c in cameras)
        results["camera_input_fps"] = {c["id"]: c["input_fps"] for c in cameras}
        # What the workers said (connects, timeouts): explains a slow full wall.
        results["vigie_camera_log"] = [line for line in self.vigie.log().splitlines()
                                       if "ingest.worker" in line][-40:]

        if self.profile_seconds:
            self._profile()
        frames = self.reader.frames_between(window.wall_started, window.wall_ended)
        self.reader.stop()
        if self.reader.error:
            raise RuntimeError(f"MJPEG viewer failed: {self.reader.error!r}")
        self.reader = None
        self._stop_vigie()
        self.log(f"bench: vigie stopped; reading the stamps of {len(frames)} frames")
        self._latency(frames, window.seconds)

    def _latency(self, frames: list[ReceivedFrame], seconds: float) -> None:
        scenario, results = self.scenario, self.results
        tags = scenario.tags()
        ages: list[int] = []
        spreads: list[int] = []
        unreadable = 0
        fresh = [set() for _ in tags]  # distinct stamps seen per cell: the pictures that moved
        for frame in frames:
            now_ms = int(frame.received_wall * 1000) % 2**32
            frame_ages = []
            for index, (stamp, tag) in enumerate(zip(read_cells(frame, scenario), tags)):
                if stamp is None or stamp.tag != tag:
                    unreadable += 1
                    continue
                frame_ages.append(stamp.age_ms(now_ms))
                fresh[index].add(stamp.ms)
            ages.extend(frame_ages)
            if len(frame_ages) > 1:
                spreads.append(max(frame_ages) - min(frame_ages))
        results["frames_received"] = len(frames)
        results["fps_delivered"] = rate([frame.received_wall for frame in frames])
        results["mean_jpeg_kb"] = (sum(len(f.jpeg) for f in frames) / len(frames) / 1024
                                   if frames else None)
        results["cells_read"] = len(ages)
        results["cells_unreadable"] = unreadable
        results["latency_p50_ms"] = percentile(ages, 50)
        results["latency_p95_ms"] = percentile(ages, 95)
        results["latency_max_ms"] = float(max(ages)) if ages else None
        results["cell_age_spread_p95_ms"] = percentile(spreads, 95)
        cell_fps = [len(seen) / seconds for seen in fresh]
        results["cell_fresh_fps_min"] = min(cell_fps) if cell_fps else None
        results["cell_fresh_fps_mean"] = float(np.mean(cell_fps)) if cell_fps else None

    def _profile(self) -> None:
        """After the window (it perturbs the process): sample Vigie with py-spy."""
        if not self.py_spy:
            self.log("bench: --profile needs py-spy (.venv/bin/pip install py-spy); skipped")
            return
        output = Path(tempfile.gettempdir()) / f"vigie-bench-profile-{os.getpid()}.txt"
        self.log(f"bench: profiling vigie with py-spy for {self.profile_seconds:.0f} s")
        record(self.vigie.process.pid, self.py_spy, self.profile_seconds, output)
        self.results["profile"] = {"file": str(output), **top_functions(output)}

    # phase 1: the decode floor

    def _measure_floor(self, urls: list[str]) -> None:
        scenario, results = self.scenario, self.results
        self.log("bench: starting the decode floor")
        with deferred_signals():
            self.floor = subprocess.Popen(
                [sys.executable, "-m", "bench.decode_floor", *urls], cwd=REPO,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        lines: queue.Queue[str | None] = queue.Queue()

        def drain(stream):
            for line in stream:
                lines.put(line.strip())
            lines.put(None)

        threading.Thread(target=drain, args=(self.floor.stdout,), daemon=True).start()

        def next_line(timeout: float) -> str:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                raise RuntimeError(f"decode floor silent for {timeout:.0f} s") from None
            if line is None:
                raise RuntimeError(f"decode floor exited ({self.floor.poll()})")
            return line

        def counts() -> dict:
            self.floor.stdin.write("mark\n")
            self.floor.stdin.flush()
            return json.loads(next_line(5.0))

        started = time.monotonic()
        if next_line(FLOOR_READY_TIMEOUT) != "READY":
            raise RuntimeError("decode floor: unexpected output")
        results["floor_ready_s"] = time.monotonic() - started
        first = counts()
        if any(first["errors"]):
            stuck = [f"{url.rsplit('/', 1)[-1]}: {error}"
                     for url, error, frames in zip(urls, first["errors"], first["frames"]) if error]
            raise StuckStream(f"decode floor: no frames from {', '.join(stuck)}")
        time.sleep(scenario.warmup)
        self.log(f"bench: measuring the decode floor for {scenario.seconds:.0f} s")
        window = CpuWindow({"floor": self.floor.pid, "simulator": self.simulator.pid,
                            "bench": os.getpid()})
        before = counts()
        window.start()
        time.sleep(scenario.seconds)
        cpu = window.stop()
        after = counts()
        memory = memory_mb(self.floor.pid)
        self._stop_floor()
        if any(after["errors"]):
            raise RuntimeError(f"decode floor: {after['errors']}")
        per_stream = [(b - a) / window.seconds for a, b in zip(before["frames"], after["frames"])]
        results["floor_cpu_s_per_s"] = cpu["floor"]
        results["simulator_cpu_s_per_s_during_floor"] = cpu["simulator"]
        results["others_cpu_s_per_s_during_floor"] = cpu["others"]
        results["floor_fps_min"] = min(per_stream)
        results["floor_fps_mean"] = float(np.mean(per_stream))
        results["floor_rss_mb"] = memory["VmRSS"]
        results["floor_window_s"] = window.seconds

    # helpers

    def _headers(self) -> dict[str, str]:
        """The session start_vigie opened, if this version of the helpers logs in."""
        return dict(getattr(self.vigie, "headers", None) or {})

    def _viewer(self, path: str) -> MjpegReader:
        headers = self._headers()
        url = self.vigie.base_url + path
        return (MjpegReader(url, headers=headers) if headers else MjpegReader(url)).start()

    def _get_json(self, path: str):
        headers = self._headers()
        url = self.vigie.base_url + path
        return get_json(url, headers=headers) if headers else get_json(url)

    def _check_alive(self) -> None:
        if self.vigie is not None and self.vigie.process.poll() is not None:
            raise RuntimeError(f"vigie exited with {self.vigie.process.returncode}\n"
                               f"{self._vigie_log_tail()}")
        if self.simulator is not None and not self.simulator.running:
            raise RuntimeError(f"camera simulator died\n{self.simulator.stderr_tail()}")
        if self.reader is not None and self.reader.error is not None:
            raise RuntimeError(f"MJPEG viewer failed: {self.reader.error!r}")

    def _vigie_log_tail(self, lines: int = 30) -> str:
        if self.vigie is None:
            return ""
        return "vigie log tail:\n" + "\n".join(self.vigie.log().splitlines()[-lines:])


# -- report --------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def command_line(argv: list[str]) -> str:
    executable = sys.executable
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(executable)
        if not relative.startswith(".."):
            executable = relative
    return shlex.join([executable, "-m", "bench.wall", *argv])


def report(s: Scenario, r: dict, argv: list[str]) -> str:
    wall = r.get("wall_status") or {}
    threads = r.get("vigie_threads_cpu_s_per_s")
    thread_rows = ([(f"  Vigie: {group}", fmt(value, 3)) for group, value in threads.items()]
                   if threads else [("  Vigie per thread", "n/a (install py-spy in the venv)")])
    ratio = r.get("ratio_vigie_over_floor")
    rows = [
        ("scenario", s.describe()),
        ("steady window", f"{r['window_s']:.1f} s after {s.warmup:.0f} s warm-up, each phase "
                          "(floor first, then Vigie)"),
        ("machine", f"{os.cpu_count()} cores, {cpu_model()}; PyAV {av.__version__}"),
        ("", ""),
        ("Vigie CPU (s/s, all threads)", fmt(r["vigie_cpu_s_per_s"], 3)),
        ("decode floor CPU (s/s, PyAV alone)", fmt(r["floor_cpu_s_per_s"], 3)),
        ("ratio Vigie / floor", fmt(ratio, 1, "x")),
        *thread_rows,
        ("", ""),
        ("glass-to-glass p50", fmt(r["latency_p50_ms"], 0, "ms")),
        ("glass-to-glass p95", fmt(r["latency_p95_ms"], 0, "ms")),
        ("glass-to-glass max", fmt(r["latency_max_ms"], 0, "ms")),
        ("cell age spread in a frame p95", fmt(r["cell_age_spread_p95_ms"], 0, "ms")),
        ("cells read / unreadable", f"{r['cells_read']} / {r['cells_unreadable']}"),
        ("fps delivered to the viewer", f"{r['fps_delivered']:.2f} (wall {FPS}, "
                                        f"{r['frames_received']} frames, "
                                        f"{fmt(r['mean_jpeg_kb'], 0)} KB each)"),
        ("fresh pictures per cell (fps)", f"min {fmt(r['cell_fresh_fps_min'])}, "
                                          f"mean {fmt(r['cell_fresh_fps_mean'])}"),
        ("decode floor fps per stream", f"min {r['floor_fps_min']:.2f}, "
                                        f"mean {r['floor_fps_mean']:.2f}"),
        ("", ""),
        ("Vigie start -> ready (and logged in)", fmt(r["vigie_ready_s"], 2, "s")),
        ("Vigie start -> first wall frame", fmt(r.get("first_frame_s"), 2, "s")),
        ("Vigie start -> full wall", fmt(r["full_wall_s"], 2, "s")),
        ("Vigie RSS (end / peak in window)", f"{fmt(r['vigie_rss_mb'], 0)} MB / "
                                             f"{fmt(r['vigie_rss_peak_window_mb'], 0)} MB"),
        ("decode floor RSS", fmt(r["floor_rss_mb"], 0, "MB")),
        ("dropped frames (Vigie hub)", str(wall.get("dropped_frames", "n/a"))),
        ("camera reconnects (Vigie, whole run)", str(r.get("camera_reconnects", "n/a"))),
        ("simulator restarts (stuck mount)", str(r.get("simulator_restarts", 0))),
        ("", ""),
        ("simulator CPU (s/s), floor phase", fmt(r["simulator_cpu_s_per_s_during_floor"], 3)),
        ("simulator CPU (s/s), Vigie phase", fmt(r["simulator_cpu_s_per_s_during_vigie"], 3)),
        ("bench viewer CPU (s/s), Vigie phase", fmt(r["bench_viewer_cpu_s_per_s"], 3)),
        ("other processes CPU (s/s), floor phase", fmt(r["others_cpu_s_per_s_during_floor"], 3)),
        ("other processes CPU (s/s), Vigie phase", fmt(r["others_cpu_s_per_s_during_vigie"], 3)),
    ]
    text = table(rows)
    profile = r.get("profile")
    if profile and profile.get("samples"):
        text += (f"\n\nVigie profile after the window: py-spy, {profile['samples']} busy samples "
                 f"(stacks: {profile['file']})")
        for kind in ("self", "inclusive"):
            text += f"\n  top {kind}:"
            for share, name in profile[kind]:
                text += f"\n    {share:6.1%}  {name}"
    return text + f"\n\ncommand: {command_line(argv)}"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.wall", description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=4, help="number of cameras (default 4)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="steady window per phase, seconds (default 20)")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="warm-up before each window, seconds (default 5)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 4 cameras, 5 s window, 2 s warm-up")
    parser.add_argument("--profile", type=float, nargs="?", const=10.0, default=0.0,
                        metavar="SECONDS",
                        help="after Vigie's window, sample it with py-spy (default 10 s) and "
                             "print the top functions")
    parser.add_argument("--json", default="bench-results.json", metavar="PATH",
                        help="also write the results here (default bench-results.json; '' for none)")
    args = parser.parse_args(argv)
    if args.quick:
        args.cameras, args.seconds, args.warmup = 4, 5.0, 2.0
    if not 1 <= args.cameras <= 64:
        parser.error("--cameras must be between 1 and 64")
    if args.seconds <= 0 or args.warmup < 0:
        parser.error("--seconds must be positive and --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    scenario = Scenario(args.cameras, args.seconds, args.warmup)
    # Ctrl+C and SIGTERM unwind through the finally blocks, even when started with SIGINT
    # ignored (a background job of a non-interactive shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    bench = WallBench(scenario, log, profile_seconds=args.profile)
    try:
        results = bench.run()
    except KeyboardInterrupt:
        log("bench: interrupted; stopping everything")
        return 130
    except (RuntimeError, AssertionError) as error:
        log(f"bench: FAILED: {error}")
        return 1
    finally:
        bench.close()
    print(report(scenario, results, argv))
    if args.json:
        payload = {"command": command_line(argv), "scenario": {
            "cameras": scenario.cameras, "grid": f"{scenario.grid}x{scenario.grid}",
            "wall": "x".join(map(str, scenario.wall_size)), "fps": FPS,
            "source": f"h264 {SOURCE[0]}x{SOURCE[1]} gop {GOP}",
            "seconds": scenario.seconds, "warmup": scenario.warmup},
            "machine": {"cores": os.cpu_count(), "cpu": cpu_model(), "pyav": av.__version__},
            "results": results, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
