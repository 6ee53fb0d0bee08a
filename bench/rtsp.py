"""The RTSP output's bench: fan-out cost, added latency, one encode; one run, one table.

    python -m bench.rtsp [--clients N] [--seconds S] [--warmup W] [--latency-seconds L]
                         [--wall-seconds S] [--keep]

Measures, as ratios, with PASS/FAIL beside the targets (printed, never asserted):
  1. fan-out: one camera (the simulator's live H.264 640x360@15, tests/support/camsim) read
     through Vigie at rtsp://.../cameras/{id} (its own access units, no decoding) by 1, then
     by N (50) RTSP-over-TCP clients: Vigie's CPU per added client,
     (CPU_N - CPU_1) / (N - 1), in % of one core (target <= 0.1 %); what each client received.
  2. added latency: that camera read directly and through Vigie side by side in one
     process; each picture's arrival through Vigie less its direct arrival (pictures
     matched by a hash of their slices: Vigie keeps the bytes, not the RTP times); p50 and
     p95 (target p95 <= 10 ms).
  3. one encode: a 2x2 wall 1280x720@15 of four looped clips (bench/feeder.py, 640x360@15:
     little decoding, so the encode weighs much in Vigie's CPU) with one WebSocket fMP4
     viewer (A), and with the same viewer and one RTSP client of /walls/{id} (B), in
     alternate windows A B A B A B A (a drift of the machine falls on both): Vigie's CPU,
     mean(B) / mean(A) (target <= 1.05: the RTSP client takes the viewers' H.264, it does
     not encode again), and the wall's viewers by format, read from /api/status.

CPU is utime + stime of all of Vigie's threads from /proc (bench/measure.py) over a window
after a warm-up. The RTSP clients (bench/rtsp_clients.py) and the WebSocket viewer
(bench/viewers.py) run in processes of their own, counted apart, as are the cameras. Two
Vigie processes, one after the other: the camera alone (1, 2), then the wall (3). Their
logs' warnings and errors are printed after the table. Everything runs on 127.0.0.1;
everything started here is stopped on exit, error or Ctrl+C. About 2.5 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.cameras import FPS, CameraRig
from bench.children import LineChild, deferred_signals, run_bench
from bench.measure import CpuWindow, percentile
from server.cli import free_tcp_port, free_udp_pair
from tests.conftest import VigieProcess, start_vigie, users_yaml

TARGET_PER_CLIENT = 0.1   # % of one core per added RTSP client
TARGET_P95_MS = 10.0      # added latency through Vigie, 95th percentile
TARGET_RATIO = 1.05       # Vigie's CPU, wall with fMP4 + RTSP over fMP4 alone
STREAM_ENV = "VIGIE_BENCH_STREAM"
HOST = "127.0.0.1"
LIVE_TIMEOUT = 30.0
WALL = "w"
CAMERA = "cam"
WALL_PAIRS = 3            # A B A B A B A
SETTLE = 2.0              # seconds after the wall's RTSP client opens or closes (1 s GOP)

Row = tuple[str, str, str, str]  # measure, value, target, verdict


@dataclass
class Window:
    cpu: dict[str, float]        # CPU seconds per second, by process (CpuWindow's names)
    seconds: float
    rates: list[list[float]]     # per RTSP client: packets/s, bytes/s, pictures/s, playing
    viewer_fps: list[float]      # per WebSocket viewer: messages/s
    dropped: int                 # frames Vigie's RTSP sessions dropped during the window


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def received(rates: list[list[float]]) -> str:
    """What the RTSP clients received, per client."""
    if not rates:
        return "no client"
    fps = [r[2] for r in rates]
    return (f"{min(fps):.1f}..{max(fps):.1f} fps (median {statistics.median(fps):.1f}), "
            f"{statistics.median(r[0] for r in rates):.0f} packets/s, "
            f"{statistics.median(r[1] for r in rates) * 8 / 1000:.0f} kbit/s, "
            f"{sum(1 for r in rates if r[3])}/{len(rates)} playing")


def all_received(rates: list[list[float]], count: int) -> bool:
    return len(rates) == count and all(r[3] and r[2] >= FPS * 0.9 for r in rates)


def print_table(rows: list[Row]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


class Bench:
    def __init__(self, args: argparse.Namespace, log: Callable[[str], None]) -> None:
        self.args = args
        self.log = log
        self.tmp = Path(tempfile.mkdtemp(prefix="vigie-bench-rtsp-"))
        self.password = secrets.token_urlsafe(12)
        self.rig: CameraRig | None = None
        self.vigie: VigieProcess | None = None
        self.rtsp_port = 0
        self.clients: LineChild | None = None
        self.viewers: LineChild | None = None
        self.rows: list[Row] = [("measure", "value", "target", "")]
        self.problems: list[str] = []  # what went wrong on Vigie's side (its log, missing frames)

    # -- the pieces --------------------------------------------------------------------------

    def config(self, cameras: str, walls: str = "") -> str:
        """Vigie's config: the cameras, walls, its own RTSP and UDP ports, a stream password
        for the admin (RTSP Digest), and room for many views from one user and address."""
        self.rtsp_port = free_tcp_port(HOST)
        udp = free_udp_pair(HOST)
        users = users_yaml().replace("role: admin,", f"role: admin, stream_password_env: {STREAM_ENV},")
        return (f'server: {{listen: "{HOST}:{{port}}"}}\n'
                f'rtsp: {{listen: "{HOST}:{self.rtsp_port}", udp_ports: "{udp}-{udp + 1}"}}\n'
                f"communes: [{{id: bench, name: Bench}}]\n"
                f"limits: {{viewers_per_user: 1000, viewers_per_address: 1000}}\n"
                f"cameras:\n{cameras}{walls}{users}")

    def start_vigie(self, config: str) -> VigieProcess:
        with deferred_signals():
            self.vigie = start_vigie(config, self.tmp, env={STREAM_ENV: self.password})
        deadline = time.monotonic() + LIVE_TIMEOUT
        while time.monotonic() < deadline:
            cameras = self.vigie.get_json("/api/cameras")
            if cameras and all(c["state"] == "live" for c in cameras):
                return self.vigie
            time.sleep(0.3)
        raise RuntimeError(f"cameras not live after {LIVE_TIMEOUT:.0f} s: {cameras}")

    def stop_vigie(self) -> None:
        """SIGTERM; a bad exit and the log's warnings and errors become problems."""
        vigie, self.vigie = self.vigie, None
        if vigie is None:
            return
        code, seconds = vigie.terminate()
        if code != 0:
            self.problems.append(f"vigie exited with {code} after SIGTERM ({seconds:.1f} s)")
        for line in vigie.log().splitlines():
            if any(mark in line for mark in (" WARNING ", " ERROR ", " CRITICAL ", "Traceback")):
                self.problems.append(f"vigie log: {line.strip()[:300]}")

    def rtsp_url(self, path: str) -> str:
        return f"rtsp://admin:{self.password}@{HOST}:{self.rtsp_port}{path}"

    def rtsp_status(self) -> list[dict]:
        """Vigie's RTSP sessions (/api/status): frames sent and dropped by each."""
        return (self.vigie.get_json("/api/status").get("rtsp") or {}).get("sessions", [])

    def open_clients(self, path: str, count: int) -> None:
        opened = self.clients.ask({"cmd": "open", "url": self.rtsp_url(path), "count": count}, 60)
        if opened["opened"] != count:
            self.problems.append(f"RTSP {path}: {opened['opened']} of {count} sessions opened: "
                                 f"{opened['errors']}")

    def pids(self) -> dict[str, int]:
        pids = {"vigie": self.vigie.process.pid, **self.rig.pids()}
        for name, child in (("clients", self.clients), ("viewers", self.viewers)):
            if child is not None:
                pids[name] = child.pid
        return pids

    def window(self, seconds: float) -> Window:
        """One measuring window: CPU s/s per process, each RTSP client's rates, each
        WebSocket viewer's messages, the frames Vigie's RTSP sessions dropped meanwhile."""
        before = self.clients.ask({"cmd": "counts"})["clients"]
        viewed = self.viewers.ask({"cmd": "counts"})["counts"] if self.viewers else []
        dropped = {s["session"]: s["dropped_frames"] for s in self.rtsp_status()}
        window = CpuWindow(self.pids()).start()
        time.sleep(seconds)
        cpu = window.stop()
        after = self.clients.ask({"cmd": "counts"})["clients"]
        viewed_after = self.viewers.ask({"cmd": "counts"})["counts"] if self.viewers else []
        dropped_after = {s["session"]: s["dropped_frames"] for s in self.rtsp_status()}
        rates = [[(a[i] - b[i]) / window.seconds for i in range(3)] + [float(a[3])]
                 for a, b in zip(after, before)]
        self.log(f"bench: window {window.seconds:.1f} s: " + ", ".join(
            f"{name} {value * 100:.1f} %" for name, value in cpu.items()))
        return Window(cpu, window.seconds, rates,
                      [(a - b) / window.seconds for a, b in zip(viewed_after, viewed)],
                      sum(n - dropped.get(key, n) for key, n in dropped_after.items()))

    # -- the three measures ------------------------------------------------------------------

    def run(self) -> None:
        # Camera 0: the simulator's live mount (fan-out, latency); 1-4: looped clips (wall).
        self.rig = CameraRig(total=5, live={0}, log=self.log).start()
        self.clients = LineChild([sys.executable, "-m", "bench.rtsp_clients"], "rtsp clients")
        camera = f'  - {{id: {CAMERA}, name: Cam, commune: bench, url: "{self.rig.url(0, True)}"}}\n'
        self.start_vigie(self.config(camera))
        self.fan_out()
        self.latency()
        self.stop_vigie()
        cameras = "".join(f'  - {{id: w{i}, name: W{i}, commune: bench, url: "{self.rig.url(i, False)}"}}\n'
                          for i in range(1, 5))
        walls = (f"walls:\n  - {{id: {WALL}, name: Wall, size: 1280x720, fps: {FPS}, layout: 2x2, "
                 f"cameras: [w1, w2, w3, w4]}}\n")
        self.start_vigie(self.config(cameras, walls))
        self.one_encode()
        self.stop_vigie()

    def fan_out(self) -> None:
        path, count = f"/cameras/{CAMERA}", self.args.clients
        self.log(f"bench: fan-out, 1 RTSP client of {path}")
        self.open_clients(path, 1)
        time.sleep(self.args.warmup)
        one = self.window(self.args.seconds)
        self.log(f"bench: fan-out, {count} RTSP clients")
        self.open_clients(path, count - 1)
        time.sleep(self.args.warmup)
        many = self.window(self.args.seconds)
        decoding = self.vigie.get_json(f"/api/cameras/{CAMERA}").get("decoding")
        self.clients.ask({"cmd": "close"})
        per_client = (many.cpu["vigie"] - one.cpu["vigie"]) / (count - 1) * 100
        self.rows += [
            ("fan-out: Vigie CPU, 1 client", f"{one.cpu['vigie'] * 100:.2f} % of a core", "", ""),
            (f"fan-out: Vigie CPU, {count} clients", f"{many.cpu['vigie'] * 100:.2f} % of a core", "", ""),
            ("fan-out: Vigie CPU per added client", f"{per_client:.3f} % of a core",
             f"<= {TARGET_PER_CLIENT} %", verdict(per_client <= TARGET_PER_CLIENT)),
            ("fan-out: received, 1 client", received(one.rates), "", ""),
            (f"fan-out: received per client, {count}", received(many.rates),
             f"all >= {FPS * 0.9:.1f} fps", verdict(all_received(many.rates, count))),
            (f"fan-out: frames Vigie dropped, {count}", f"{many.dropped} in the window", "0",
             verdict(many.dropped == 0)),
            (f"fan-out: clients' process CPU, {count}", f"{many.cpu['clients'] * 100:.1f} % of a core", "", ""),
            ("fan-out: camera's decoding in Vigie", str(decoding), "keyframes",
             verdict(decoding == "keyframes")),
        ]

    def latency(self) -> None:
        seconds = self.args.latency_seconds
        self.log(f"bench: latency, the camera directly and through Vigie for {seconds:.0f} s")
        result = self.clients.ask({"cmd": "latency", "direct": self.rig.url(0, True),
                                   "via": self.rtsp_url(f"/cameras/{CAMERA}"), "seconds": seconds},
                                  seconds + 60)
        if "error" in result:
            raise RuntimeError(f"latency: {result['error']}")
        deltas = result["deltas_ms"]
        p50, p95 = percentile(deltas, 50), percentile(deltas, 95)
        if result["matched"] < result["via"]:
            self.problems.append(f"latency: {result['via'] - result['matched']} of {result['via']} "
                                 f"pictures through Vigie not found on the direct stream")
        for error in result["errors"]:
            self.problems.append(f"latency client: {error}")
        ms = lambda v: "n/a" if v is None else f"{v:.2f} ms"  # noqa: E731
        self.rows += [
            ("latency: added by Vigie, p50", ms(p50), "", ""),
            ("latency: added by Vigie, p95", ms(p95), f"<= {TARGET_P95_MS:g} ms",
             verdict(p95 is not None and p95 <= TARGET_P95_MS)),
            ("latency: added by Vigie, max", ms(max(deltas) if deltas else None), "", ""),
            ("latency: pictures matched", f"{result['matched']} of {result['via']} "
             f"(direct {result['direct']})", "", ""),
        ]

    def one_encode(self) -> None:
        """Windows alternate, the fMP4 viewer alone (A) and with one RTSP client (B):
        A B A B A B A; ratio = mean(B) / mean(A)."""
        self.viewers = LineChild([sys.executable, "-m", "bench.viewers"], "viewers")
        opened = self.viewers.ask({"cmd": "open", "base_url": self.vigie.base_url,
                                   "headers": self.vigie.headers,
                                   "viewers": [{"path": f"/walls/{WALL}/ws?format=fmp4", "kind": "ws"}]})
        ready = self.viewers.ask({"cmd": "wait_frames", "ids": opened["opened"], "timeout": 20}, 40)
        if ready["missing"]:
            raise RuntimeError(f"the fMP4 viewer got no frame: {ready}")
        self.log("bench: one encode, the wall's fMP4 viewer alone (A) and with an RTSP client (B)")
        time.sleep(self.args.warmup)
        alone: list[Window] = []
        both: list[Window] = []
        formats: dict[str, int] = {}
        for index in range(2 * WALL_PAIRS + 1):
            with_rtsp = index % 2 == 1
            if with_rtsp:
                self.open_clients(f"/walls/{WALL}", 1)
            time.sleep(SETTLE)
            (both if with_rtsp else alone).append(self.window(self.args.wall_seconds))
            if with_rtsp:
                walls = self.vigie.get_json("/api/status")["walls"]
                formats = next((w["viewers_by_format"] for w in walls if w["id"] == WALL), {})
                self.clients.ask({"cmd": "close"})
        mean_a = statistics.mean(w.cpu["vigie"] for w in alone)
        mean_b = statistics.mean(w.cpu["vigie"] for w in both)
        ratio = mean_b / mean_a if mean_a else float("inf")
        spread = (max(w.cpu["vigie"] for w in alone) - min(w.cpu["vigie"] for w in alone)) / mean_a
        cpus = lambda ws: " ".join(f"{w.cpu['vigie'] * 100:.1f}" for w in ws)  # noqa: E731
        fps = [f for w in alone + both for f in w.viewer_fps]
        shared = {k for k, v in formats.items() if v} == {"fmp4"} and formats.get("fmp4") == 2
        dropped = sum(w.dropped for w in both)
        self.rows += [
            ("one encode: Vigie CPU, fMP4 viewer (A)", f"{mean_a * 100:.1f} % of a core "
             f"({cpus(alone)}; spread {spread * 100:.0f} %)", "", ""),
            ("one encode: Vigie CPU, fMP4 + RTSP (B)", f"{mean_b * 100:.1f} % of a core "
             f"({cpus(both)})", "", ""),
            ("one encode: ratio B / A", f"{ratio:.3f}", f"<= {TARGET_RATIO}", verdict(ratio <= TARGET_RATIO)),
            ("one encode: wall's viewers by format (B)", json.dumps(formats, sort_keys=True),
             "fmp4 2, others 0", verdict(shared)),
            ("one encode: fMP4 viewer fps", f"{min(fps):.1f}..{max(fps):.1f}" if fps else "n/a", "", ""),
            ("one encode: RTSP client received", received([r for w in both for r in w.rates]), "", ""),
            ("one encode: frames Vigie dropped (B)", f"{dropped} in the windows", "0", verdict(dropped == 0)),
        ]

    def close(self) -> None:
        """Stop everything this bench started: the clients, Vigie (reading its log), cameras."""
        for child in (self.clients, self.viewers):
            if child is not None:
                with contextlib.suppress(Exception):
                    child.stop()
        self.clients = self.viewers = None
        with contextlib.suppress(Exception):
            self.stop_vigie()
        if self.rig is not None:
            with contextlib.suppress(Exception):
                self.rig.stop()
            self.rig = None
        if self.args.keep:
            self.log(f"bench: Vigie's folders (config, log) kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rtsp", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="RTSP clients of the fan-out (>= 2)")
    parser.add_argument("--seconds", type=float, default=15.0, help="each fan-out window")
    parser.add_argument("--warmup", type=float, default=5.0, help="wait before measuring")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--wall-seconds", type=float, default=8.0,
                        help="each wall window (a multiple of the clips' 4 s loop)")
    parser.add_argument("--keep", action="store_true", help="keep Vigie's folders (config, log)")
    args = parser.parse_args(argv)
    if args.clients < 2:
        parser.error("--clients must be 2 or more")
    return run_bench(lambda log: Bench(args, log), lambda bench, seconds: (
        f"RTSP output bench ({seconds:.0f} s; fan-out windows of {args.seconds:g} s, wall windows of "
        f"{args.wall_seconds:g} s; targets printed, not asserted)"), print_table)


if __name__ == "__main__":
    sys.exit(main())
