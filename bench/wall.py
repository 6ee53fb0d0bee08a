"""Issue 5's bench: Vigie against the floor and ffmpeg's xstack, scenarios A-D, one table.

    python -m bench.wall [--quick] [--seconds S] [--warmup W] [--only A,B,...]
                         [--profile S | --no-profile] [--nice N] [--json PATH]

Rows (full run; `--quick` runs every path once with small counts and short windows):
  A mjpeg   16 cameras H.264 640x360@15 -> one 4x4 wall 1920x1080@15, one MJPEG viewer
  A fmp4    the same, one WebSocket fMP4 viewer (H.264)
  B         64 cameras -> 4 walls of 4x4, 20 MJPEG viewers per wall; if even the floor
            cannot keep 14 fps with 64 cameras here, also "B 32" (or "B 16"): the largest
            count whose floor keeps up, run in full and labelled
  C mjpeg   one wall (A's), 1, then 50, then 200 MJPEG viewers: the cost of each added one
  C fmp4    the same with WebSocket fMP4 viewers
  D         64 cameras connected, walls configured, nobody watching (idle cost)

For each row, one after another, never two measured processes at once:
  1. the floor (`bench.decode_floor`): PyAV decoding the same inputs + one encode per wall
     (JPEG for MJPEG rows, H.264 for fMP4 rows; decode only for D) of the same picture: its
     cells are scaled as Vigie's, and that scaling's CPU is measured apart, not counted;
  2. Vigie (`vigie serve`, the admin session of tests/conftest.py), viewers in a separate
     process (`bench.viewers`): CPU s/s of all threads from /proc, RSS, fps per viewer,
     glass-to-glass latency from the stamps, start-to-full-wall;
  3. ffmpeg xstack (`bench.xstack`) reading the same inputs, making the same walls in the
     same output format: CPU, fps, latency, spread of the tiles' clocks in one frame.
C reuses A's floor and xstack (same inputs, same wall, same output: one encode whatever
the number of viewers).

Cameras: a few live-stamped ones (tests/support/camsim, encoded per frame) give the latency;
the others are looped pre-encoded clips (bench/feeder.py). Both report their CPU apart.
Everything runs on 127.0.0.1; everything started here is stopped on exit, error or Ctrl+C.
Targets of the issue are printed as PASS/FAIL beside the numbers, never asserted.
`--nice -10` runs all of it (not only Vigie) at a higher priority on a shared machine.

Modules: scenarios (rows, targets), cameras + clips + feeder (inputs), decode_floor, viewers,
xstack, analyse (stamps), profile (py-spy, perf), report (the table), measure (/proc).
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import pickle
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import av

from bench import analyse
from bench.cameras import FPS, CameraRig
from bench.children import LineChild, StuckStream, _raise_interrupt, deferred_signals
from bench.measure import CpuWindow, memory_mb, process_started_wall
from bench.profile import (ThreadBreakdown, cpu_weighted, find_perf, find_py_spy, perf_record,
                           perf_top, record_threads, thread_cpu, thread_names, top_functions)
from bench.report import command_line, cpu_model, report
from bench.scenarios import KEEPS_UP_FPS, Row, diagonal, plan
from bench.xstack import Xstack
from server.access.secrets import hash_token
from tests.conftest import REPO, VigieProcess, start_vigie

CAMERAS_LIVE_TIMEOUT = 40.0
FLOOR_READY_TIMEOUT = 40.0
XSTACK_FIRST_TIMEOUT = 90.0
VIEWERS_FIRST_TIMEOUT = 30.0
STUCK_ATTEMPTS = 3


# -- the bench -------------------------------------------------------------------------------


def smaller_rows(row: Row) -> list[Row]:
    """The rows B falls back to when even its floor cannot keep up: half the walls each."""
    rows = []
    walls = row.walls // 2
    while walls >= 1:
        rows.append(replace(row, name=f"B {walls * row.cells}", cameras=walls * row.cells,
                            walls=walls, live=diagonal(row.grid, walls), fallback=False))
        walls //= 2
    return rows


class Bench:
    def __init__(self, rows: list[Row], seconds: float, warmup: float, profile: float,
                 log=print, quick: bool = False) -> None:
        self.rows = rows
        self._kiosk_token = secrets.token_urlsafe(24)
        self.quick = quick
        self.seconds = seconds
        self.warmup = warmup
        self.profile_seconds = profile
        self.log = log
        self.py_spy = find_py_spy()
        self.perf = find_perf()
        self.results: dict[str, dict] = {}
        self.rig: CameraRig | None = None
        self.keep_profile: Path | None = None  # where to copy the raw profiles, if anywhere
        self._children: list = []  # whatever runs now: stopped in close()
        self._tmp = tempfile.TemporaryDirectory(prefix="vigie-bench-")
        self.tmp = Path(self._tmp.name)

    # lifecycle

    def close(self) -> None:
        for child in reversed(self._children):
            with contextlib.suppress(Exception):
                self._stop_child(child)
        self._children.clear()
        if self.rig is not None:
            with contextlib.suppress(Exception):
                self.rig.stop()
            self.rig = None
        with contextlib.suppress(Exception):
            self._tmp.cleanup()

    @staticmethod
    def _stop_child(child) -> None:
        if isinstance(child, VigieProcess):
            if child.process.poll() is None:
                child.terminate()
        elif isinstance(child, subprocess.Popen):  # py-spy, perf
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(5)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(5)
        else:
            child.stop()

    def _release(self, child) -> None:
        if child in self._children:
            self._children.remove(child)
        self._stop_child(child)

    def run(self) -> dict[str, dict]:
        total = max(row.cameras for row in self.rows)
        # Live-stamped mounts for every row, and for the smaller rows B may fall back to.
        live = {i for row in self.rows
                for candidate in (row, *(smaller_rows(row) if row.fallback else ()))
                for i in candidate.live}
        self.log(f"bench: starting the cameras: {total} looped (feeder), "
                 f"{len(live)} live-stamped mounts (camsim)")
        with deferred_signals():
            self.rig = CameraRig(total, live, self.log)
            self.rig.start()
        for row in self.rows:
            self._run_row(row)
            floor = self.results[row.name].get("floor")
            if row.fallback and floor and (self.quick or not self._keeps_up(floor)):
                self._fallback(row)
        return self.results

    def _run_row(self, row: Row, floor: dict | None = None) -> None:
        self.log(f"\nbench: row {row.name}: {row.describe()}")
        started = time.monotonic()
        result = self.results[row.name] = {"describe": row.describe(), "row": asdict(row)}
        try:
            urls = [self.rig.url(i, i in row.live) for i in range(row.cameras)]
            if floor is not None:
                result["floor"] = floor
            elif row.floor is not None:
                result["floor"] = self._floor_with_retries(row, urls)
            if row.scenario == "D":
                # Idle costs at least what receiving the packets costs: measure that too.
                result["receive"] = self._floor_with_retries(replace(row, floor="receive"), urls)
            result["vigie"] = self._vigie(row, urls)
            if row.xstack:
                result["xstack"] = self._xstack(row, urls)
        except (RuntimeError, AssertionError, OSError) as error:
            self.log(f"bench: row {row.name} FAILED: {error}")
            result["error"] = str(error)
            for child in list(self._children):
                self._release(child)
        result["seconds"] = time.monotonic() - started

    @staticmethod
    def _keeps_up(floor: dict) -> bool:
        """Could the floor itself (decode + one encode per wall) keep the cameras' rate?"""
        rates = [floor["decode_fps_min"], *floor["encode_fps"]]
        return min(rates) >= KEEPS_UP_FPS

    def _fallback(self, row: Row) -> None:
        """B at full size is beyond this machine (even the floor falls behind): find the
        largest number of walls whose floor keeps up, and run the whole row with it."""
        candidates = smaller_rows(row)
        for smaller in candidates:
            self.log(f"\nbench: {row.name}: the floor fell behind; trying the floor with "
                     f"{smaller.cameras} cameras")
            urls = [self.rig.url(i, i in smaller.live) for i in range(smaller.cameras)]
            try:
                floor = self._floor_with_retries(smaller, urls)
            except (RuntimeError, AssertionError, OSError) as error:
                self.log(f"bench: floor with {smaller.cameras} cameras FAILED: {error}")
                return
            if self._keeps_up(floor) or smaller is candidates[-1] or self.quick:
                label = (f"the largest count whose floor keeps >= {KEEPS_UP_FPS:g} fps here"
                         if self._keeps_up(floor) else "even this floor falls behind here")
                if self.quick:
                    label = "quick run: this path is always exercised"
                smaller = replace(smaller, note=label)
                self._run_row(smaller, floor)
                return

    def _pids(self, **named: int) -> dict[str, int]:
        return {**named, **self.rig.pids(), "bench": os.getpid()}

    @staticmethod
    def _feed_cpu(cpu: dict[str, float]) -> dict[str, float]:
        return {name: cpu[name] for name in ("feeder", "camsim", "viewers", "bench", "others",
                                             "machine") if name in cpu}

    # phase 1: the floor

    def _floor_with_retries(self, row: Row, urls: list[str]) -> dict:
        for attempt in range(1, STUCK_ATTEMPTS + 1):
            try:
                return self._floor(row, urls)
            except StuckStream as stuck:
                if attempt == STUCK_ATTEMPTS:
                    raise
                self.log(f"bench: {stuck}")
                self.rig.restart(stuck.live)
        raise AssertionError("unreachable")

    def _floor(self, row: Row, urls: list[str]) -> dict:
        args = [sys.executable, "-m", "bench.decode_floor", "--encode", row.floor,
                "--walls", str(row.walls), "--grid", str(row.grid),
                "--size", "x".join(map(str, row.size)), "--fps", str(FPS), *urls]
        what = {"none": "decode", "receive": "receive (demux, no decode)"}.get(
            row.floor, f"decode + {row.walls} {row.floor.upper()} encode(s) of")
        self.log(f"bench: floor: {what} {len(urls)} streams")
        floor = LineChild(args, "decode floor")
        self._children.append(floor)
        try:
            started = time.monotonic()
            if floor.read(FLOOR_READY_TIMEOUT) != "READY":
                raise RuntimeError("decode floor: unexpected output")
            ready_s = time.monotonic() - started
            first = floor.ask("mark")
            failed = [i for i, error in enumerate(first["errors"]) if error]
            if failed:
                raise StuckStream(
                    "floor: no frames from " + ", ".join(
                        f"camera {i} ({'live' if i in row.live else 'looped'}): "
                        f"{first['errors'][i]}" for i in failed[:4]),
                    live=any(i in row.live for i in failed))
            time.sleep(self.warmup)
            self.rig.check()
            window = CpuWindow(self._pids(floor=floor.pid))
            before = floor.ask("mark")
            window.start()
            time.sleep(self.seconds)
            cpu = window.stop()
            after = floor.ask("mark")
            memory = memory_mb(floor.pid)
        finally:
            self._release(floor)
        if any(after["errors"]) or any(after["encode_errors"]):
            raise RuntimeError(f"decode floor: {after['errors']} {after['encode_errors']}")
        per_stream = [(b - a) / window.seconds for a, b in zip(before["frames"], after["frames"])]
        encoded = [(b - a) / window.seconds for a, b in zip(before["encoded"], after["encoded"])]
        sizes = [(b - a) / max(1, n2 - n1) / 1024 for a, b, n1, n2 in zip(
            before["encoded_bytes"], after["encoded_bytes"], before["encoded"], after["encoded"])]
        # The floor scales its cells (so it encodes the wall Vigie shows) but that scaling is
        # Vigie's work, not the floor's: its own CPU time, measured per thread, comes off.
        scale = (sum(after["scale_cpu"]) - sum(before["scale_cpu"])) / window.seconds
        result = {"cpu_s_per_s": cpu["floor"] - scale, "scale_cpu_s_per_s": scale,
                  "rss_mb": memory["VmRSS"], "ready_s": ready_s,
                  "decode_fps_min": min(per_stream), "decode_fps_mean": statistics.mean(per_stream),
                  "encode_fps": encoded, "encoded_kb": sizes, "window_s": window.seconds,
                  "cpu": self._feed_cpu(cpu)}
        self.log(f"bench: floor {result['cpu_s_per_s']:.3f} s/s (+ {scale:.3f} s/s scaling its "
                 "cells, not counted)")
        return result

    # phase 2: Vigie

    def _config(self, row: Row, urls: list[str]) -> str:
        cameras = "".join(f'  - {{id: c{i + 1}, name: "Cam {i + 1}", commune: bourg, '
                          f'url: "{url}"}}\n' for i, url in enumerate(urls))
        walls = ""
        for wall in range(row.walls):
            ids = ", ".join(f"c{i + 1}" for i in row.wall_cameras(wall))
            walls += (f"  - {{id: w{wall + 1}, name: Bench {wall + 1}, "
                      f"size: {row.size[0]}x{row.size[1]}, fps: {FPS}, "
                      f"layout: {row.grid}x{row.grid}, cameras: [{ids}]}}\n")
        # The wall screen of a full-wall row is a kiosk (a token, no password to hash): what
        # reconnects to a restarted server in a centre are its screens and sessions.
        kiosks = (f'kiosks:\n  - {{id: screen, wall: w1, token_hash: "{hash_token(self._kiosk_token)}"}}\n'
                  if row.full_wall else "")
        return ('server: {listen: "127.0.0.1:{port}"}\n'
                "communes:\n  - {id: bourg, name: Le Bourg}\n"
                f"cameras:\n{cameras}walls:\n{walls}{kiosks}"
                # The bench's viewers all come from one user and one address.
                "limits: {viewers_per_user: 10000, viewers_per_address: 10000}\n")

    def _vigie(self, row: Row, urls: list[str]) -> dict:
        result: dict = {}
        viewers = None
        if row.fmt is not None:
            viewers = LineChild([sys.executable, "-m", "bench.viewers"], "bench viewers")
            self._children.append(viewers)
        self.log("bench: starting vigie")
        with deferred_signals():
            vigie = start_vigie(self._config(row, urls), self.tmp, login=not row.full_wall)
        self._children.append(vigie)
        try:
            started_wall = process_started_wall(vigie.process.pid)
            result["ready_s"] = time.time() - started_wall
            capture_ids: list[int] = []
            all_ids: list[int] = []
            if viewers is not None:
                # First the capturing viewer(s), one per wall, at once: the time to a full wall.
                specs = [{"path": row.viewer_path(w), "kind": self._kind(row), "capture": True}
                         for w in range(row.walls)]
                headers = ({"Authorization": f"Bearer {self._kiosk_token}"} if row.full_wall
                           else vigie.headers)
                answer = viewers.ask({"cmd": "open", "base_url": vigie.base_url,
                                      "headers": headers, "viewers": specs}, 30)
                capture_ids = answer["opened"]
            if row.full_wall:
                vigie.login()  # the bench's own API calls
            if viewers is not None:
                others = [{"path": row.viewer_path(w), "kind": self._kind(row)}
                          for w in range(row.walls) for _ in range(row.viewers_per_wall - 1)]
                if others:
                    answer = viewers.ask({"cmd": "open", "headers": vigie.headers,
                                          "viewers": others}, 60)
                all_ids = capture_ids + answer["opened"] if others else capture_ids
                if answer.get("errors"):
                    raise RuntimeError(f"viewers: {answer['errors'][:3]}")
            self._wait_cameras_live(vigie, row)
            if viewers is not None:
                self._wait_frames(viewers, all_ids)
            time.sleep(self.warmup)
            if viewers is not None and not row.full_wall and row.fmt == "jpeg":
                # Memory (B's 4 captures); fMP4 keeps all: it decodes from the init segment.
                viewers.ask({"cmd": "trim", "before": time.time()})
            windows = [self._vigie_window(row, vigie, viewers, len(all_ids), "window")]
            for total in (row.fanout if viewers is not None else ()):
                more = [{"path": row.viewer_path(0), "kind": self._kind(row)}
                        for _ in range(total - len(all_ids))]
                self.log(f"bench: opening {len(more)} more viewers")
                answer = viewers.ask({"cmd": "open", "viewers": more}, 120)
                if answer.get("errors"):
                    raise RuntimeError(f"viewers: {answer['errors'][:3]}")
                fanout_ids = answer["opened"]
                all_ids = all_ids + fanout_ids
                self._wait_frames(viewers, fanout_ids)
                time.sleep(self.warmup)
                windows.append(self._vigie_window(row, vigie, viewers, len(all_ids),
                                                  f"{total} viewers"))
            result["windows"] = windows
            result["status"] = vigie.get_json("/api/status")
            if row.profile and self.profile_seconds and self.py_spy:
                result["profile"] = self._profile(vigie, row)
            cameras = vigie.get_json("/api/cameras")
            result["camera_reconnects"] = sum(c["reconnects_last_hour"] for c in cameras)
            result["decoding"] = {mode: sum(1 for c in cameras if c.get("decoding") == mode)
                                  for mode in ("full", "reduced", "keyframes")}
            log_text = vigie.log()
            log_lines = log_text.splitlines()
            if self.keep_profile is not None:  # the server's whole log goes with the profiles
                self.keep_profile.mkdir(parents=True, exist_ok=True)
                (self.keep_profile / f"vigie-{row.name.replace(' ', '-')}.log").write_text(log_text)
            result["vigie_log_head"] = log_lines[:15]
            result["camera_log"] = [line for line in log_lines
                                    if "WARNING" in line or "ERROR" in line][-20:]
            dumped = None
            if viewers is not None:
                path = self.tmp / f"viewers-{row.name.replace(' ', '-')}.pickle"
                viewers.ask({"cmd": "dump", "path": str(path)}, 60)
                dumped = pickle.loads(path.read_bytes())
                path.unlink()
        finally:
            if viewers is not None:
                self._release(viewers)
            self._release(vigie)
        if dumped is not None:
            self.log("bench: reading the stamps of the received frames")
            self._viewer_results(row, result, dumped, capture_ids, started_wall)
        return result

    @staticmethod
    def _kind(row: Row) -> str:
        return "ws" if row.fmt == "fmp4" else "mjpeg"

    def _wait_cameras_live(self, vigie: VigieProcess, row: Row) -> None:
        deadline = time.monotonic() + CAMERAS_LIVE_TIMEOUT
        states: dict = {}
        while time.monotonic() < deadline:
            self._check(vigie)
            cameras = vigie.get_json("/api/cameras")
            states = {}
            for camera in cameras:
                states[camera["state"]] = states.get(camera["state"], 0) + 1
            if states.get("live", 0) == row.cameras:
                return
            time.sleep(0.25)
        raise RuntimeError(f"cameras not all live after {CAMERAS_LIVE_TIMEOUT:.0f} s: {states}")

    def _wait_frames(self, viewers: LineChild, ids: list[int]) -> None:
        answer = viewers.ask({"cmd": "wait_frames", "ids": ids,
                              "timeout": VIEWERS_FIRST_TIMEOUT}, VIEWERS_FIRST_TIMEOUT + 10)
        if answer["missing"]:
            raise RuntimeError(f"{len(answer['missing'])} viewers got no frame in "
                               f"{VIEWERS_FIRST_TIMEOUT:.0f} s: {answer.get('errors')}")

    def _check(self, vigie: VigieProcess) -> None:
        if vigie.process.poll() is not None:
            tail = "\n".join(vigie.log().splitlines()[-30:])
            raise RuntimeError(f"vigie exited with {vigie.process.returncode}\n{tail}")
        self.rig.check()

    def _vigie_window(self, row: Row, vigie: VigieProcess, viewers: LineChild | None,
                      count: int, label: str) -> dict:
        self.log(f"bench: measuring vigie with {count} viewer(s) for {self.seconds:.0f} s")
        pids = self._pids(vigie=vigie.process.pid)
        if viewers is not None:
            pids["viewers"] = viewers.pid
        threads = None
        if self.py_spy and row.profile and label == "window":
            try:
                threads = ThreadBreakdown(vigie.process.pid, self.py_spy)
            except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as error:
                self.log(f"bench: no per-thread breakdown: {error}")
        window = CpuWindow(pids).start()
        peak = 0.0
        while time.monotonic() - window.started < self.seconds:
            time.sleep(min(1.0, max(0.0, self.seconds - (time.monotonic() - window.started))))
            self._check(vigie)
            peak = max(peak, memory_mb(vigie.process.pid)["VmRSS"])
        cpu = window.stop()
        wall_fps = None
        with contextlib.suppress(Exception):
            walls = vigie.get_json("/api/status").get("walls", [])
            rates = [w.get("fps_delivered") for w in walls if w.get("viewers")]
            wall_fps = min(rates) if rates else None
        result = {"label": label, "viewers": count, "cpu_s_per_s": cpu["vigie"],
                  "wall_fps": wall_fps,
                  "rss_mb": memory_mb(vigie.process.pid)["VmRSS"], "rss_peak_mb": peak,
                  "t0": window.wall_started, "t1": window.wall_ended, "seconds": window.seconds,
                  "cpu": self._feed_cpu(cpu)}
        if threads is not None:
            result["threads"] = threads.stop(window.seconds)
        self.log(f"bench: vigie {cpu['vigie']:.3f} s/s, feeder {cpu.get('feeder', 0):.3f}, "
                 f"camsim {cpu.get('camsim', 0):.3f}, viewers {cpu.get('viewers', 0):.3f}, "
                 f"others {cpu['others']:.3f}")
        return result

    def _viewer_results(self, row: Row, result: dict, dumped: list[dict],
                        capture_ids: list[int], started_wall: float) -> None:
        for window in result["windows"]:
            span = (window["t0"], window["t1"])
            present = [v for v in dumped if v["opened_at"] is not None
                       and v["opened_at"] < span[0]]
            fps = sorted(analyse.viewer_fps(v["times"], span) for v in present)
            window["viewer_fps_min"] = fps[0] if fps else None
            window["viewer_fps_median"] = statistics.median(fps) if fps else None
            window["viewers_counted"] = len(fps)
            window["viewer_errors"] = sorted({v["error"] for v in present if v["error"]})[:5]
            per_wall = {}
            for wall in range(row.walls):
                path = row.viewer_path(wall)
                wall_fps = [analyse.viewer_fps(v["times"], span) for v in present
                            if v["path"] == path]
                per_wall[f"w{wall + 1}"] = {"min": min(wall_fps) if wall_fps else None,
                                            "median": statistics.median(wall_fps) if wall_fps else None}
            window["per_wall_fps"] = per_wall
            parts = []
            for wall, index in enumerate(capture_ids):
                viewer = dumped[index]
                messages = viewer["frames"]
                if row.fmt == "jpeg":
                    sizes = [len(d) for t, d in messages if span[0] <= t < span[1]]
                    window["mean_frame_kb"] = sum(sizes) / len(sizes) / 1024 if sizes else None
                else:
                    sizes = [len(d) for t, d in messages[1:] if span[0] <= t < span[1]]
                    window["mean_frame_kb"] = sum(sizes) / len(sizes) / 1024 if sizes else None
                first = row.full_wall and window is result["windows"][0]
                parts.append(analyse.analyse(messages, row.fmt, row.geometry(wall), span,
                                             started_wall if first else None))
            window.update(analyse.summarise(parts))

    def _profile(self, vigie: VigieProcess, row: Row) -> dict:
        """After the windows (it perturbs a little): where Vigie's CPU goes. py-spy for the
        Python stacks, weighted by each thread's measured CPU; perf, if there, for native
        code by library and symbol. Both at once, for `profile_seconds`."""
        pid = vigie.process.pid
        name = row.name.replace(" ", "-")
        stacks, perf_data = self.tmp / f"profile-{name}.txt", self.tmp / f"perf-{name}.data"
        self.log(f"bench: profiling vigie for {self.profile_seconds:.0f} s (py-spy"
                 f"{', perf' if self.perf else ''})")
        result: dict = {}
        try:
            names = thread_names(pid, self.py_spy)
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired):
            names = {}
        before, started = thread_cpu(pid), time.monotonic()
        spy = record_threads(pid, self.py_spy, self.profile_seconds, stacks)
        perf = perf_record(pid, self.perf, self.profile_seconds, perf_data) if self.perf else None
        self._children.extend(p for p in (spy, perf) if p is not None)
        try:
            for process in (spy, perf):
                if process is None:
                    continue
                try:
                    process.wait(self.profile_seconds + 60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            for process in (spy, perf):
                if process in self._children:
                    self._children.remove(process)
        seconds = time.monotonic() - started
        after = thread_cpu(pid)
        if self.keep_profile is not None:
            self.keep_profile.mkdir(parents=True, exist_ok=True)
            for kept in (stacks, perf_data):
                if kept.exists():
                    shutil.copy2(kept, self.keep_profile / kept.name)
        cpu_by_tid = {tid: (cpu - before.get(tid, 0.0)) / seconds for tid, cpu in after.items()}
        result["cpu_s_per_s"] = sum(cpu_by_tid.values())
        if spy.returncode == 0 and stacks.exists():
            result["python"] = cpu_weighted(stacks, cpu_by_tid, names)
            result["python"]["samples"] = top_functions(stacks)["samples"]
        else:
            result["python_error"] = (spy.stderr.read() if spy.stderr else "")[-300:]
        if perf is not None:
            if perf.returncode == 0 and perf_data.exists():
                try:
                    result["native"] = perf_top(perf_data, self.perf)
                except (OSError, subprocess.TimeoutExpired) as error:
                    result["native_error"] = str(error)
            else:
                result["native_error"] = (perf.stderr.read() if perf.stderr else "")[-300:]
        return result

    # phase 3: ffmpeg xstack

    def _xstack(self, row: Row, urls: list[str]) -> dict:
        output = "jpeg" if row.fmt == "jpeg" else "h264"
        self.log(f"bench: ffmpeg xstack: {len(urls)} inputs -> {row.walls} wall(s), "
                 f"{'MJPEG' if output == 'jpeg' else 'H.264 fMP4'}")
        xstack = Xstack(urls, row.walls, row.grid, row.size, FPS, output,
                        self.tmp / f"xstack-{row.name.replace(' ', '-')}.log")
        with deferred_signals():
            xstack.start()
        self._children.append(xstack)
        try:
            started_wall = process_started_wall(xstack.pid)
            deadline = time.monotonic() + XSTACK_FIRST_TIMEOUT
            while not all(xstack.frame_count(w) for w in range(row.walls)):
                if not xstack.alive():
                    raise RuntimeError(f"ffmpeg exited:\n{xstack.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ffmpeg: no output after {XSTACK_FIRST_TIMEOUT:.0f} s\n"
                                       f"{xstack.log_tail()}")
                self.rig.check()
                time.sleep(0.05)
            first_output_s = time.time() - started_wall
            time.sleep(self.warmup)
            window = CpuWindow(self._pids(ffmpeg=xstack.pid)).start()
            peak = 0.0
            while time.monotonic() - window.started < self.seconds:
                time.sleep(min(1.0, max(0.0, self.seconds - (time.monotonic() - window.started))))
                if not xstack.alive():
                    raise RuntimeError(f"ffmpeg exited:\n{xstack.log_tail()}")
                peak = max(peak, memory_mb(xstack.pid)["VmRSS"])
            cpu = window.stop()
            rss = memory_mb(xstack.pid)["VmRSS"]
        finally:
            self._release(xstack)
        span = (window.wall_started, window.wall_ended)
        fps = [analyse.viewer_fps([t for t, _ in (xstack.frames[w][1:] if output == "h264"
                                                   else xstack.frames[w])], span)
               for w in range(row.walls)]
        self.log(f"bench: xstack {cpu['ffmpeg']:.3f} s/s; reading the stamps")
        kind = "jpeg" if output == "jpeg" else "fmp4"
        parts = [analyse.analyse(xstack.frames[w], kind, row.geometry(w), span,
                                 started_wall if row.full_wall else None)
                 for w in range(row.walls)]
        sizes = [len(d) for w in range(row.walls) for t, d in xstack.frames[w]
                 if span[0] <= t < span[1]]
        return {"cpu_s_per_s": cpu["ffmpeg"], "rss_mb": rss, "rss_peak_mb": peak,
                "first_output_s": first_output_s, "fps_min": min(fps),
                "fps_median": statistics.median(fps), "window_s": window.seconds,
                "mean_frame_kb": sum(sizes) / len(sizes) / 1024 if sizes else None,
                "cpu": self._feed_cpu(cpu), **analyse.summarise(parts)}


AUTOGROUP = Path("/proc/self/autogroup")


def set_priority(nice: int, log):
    """Run the bench and its children at `nice`. With the kernel's autogroups (sessions share
    the CPU fairly, whatever their processes' nice values) the nice of the bench's autogroup
    is set too, and put back by the returned function."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)  # children inherit it
    except OSError as error:
        log(f"bench: cannot set niceness {nice}: {error}")
        return None
    try:
        previous = int(AUTOGROUP.read_text().split("nice")[-1])
        AUTOGROUP.write_text(str(nice))
    except (OSError, ValueError):
        return None  # no autogroups here: the niceness alone does it

    def restore() -> None:
        with contextlib.suppress(OSError):
            AUTOGROUP.write_text(str(previous))

    return restore


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.wall",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: small counts (4 cameras per wall, 8 for B and D, 5 "
                             "viewers for C), 3 s windows; checks the harness, asserts nothing")
    parser.add_argument("--seconds", type=float, help="measured window (default 15; quick 3)")
    parser.add_argument("--warmup", type=float, help="warm-up before each window (default 5; quick 1)")
    parser.add_argument("--only", default="",
                        help="comma-separated rows or scenarios, e.g. 'A' or 'A mjpeg,D'")
    parser.add_argument("--profile", type=float, default=None, metavar="SECONDS",
                        help="py-spy (+ perf) sampling of Vigie after A's windows "
                             "(default 10; quick 2)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--keep-profile", default="", metavar="DIR",
                        help="copy the raw profiles (py-spy stacks, perf.data) and the server's log here for a "
                             "closer look, e.g. `perf report -i DIR/perf-A-mjpeg.data`")
    parser.add_argument("--nice", type=int, default=0, metavar="N",
                        help="run the bench and everything it starts (cameras, floor, Vigie, "
                             "viewers, ffmpeg) at this niceness, e.g. -10 on a machine shared "
                             "with other work (negative needs root; the autogroup of the "
                             "calling session too, restored at exit); default 0")
    parser.add_argument("--json", default="bench-results.json", metavar="PATH",
                        help="also write the results here ('' for none)")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 3.0 if args.quick else 15.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 5.0
    if args.profile is None:
        args.profile = 2.0 if args.quick else 10.0
    if args.no_profile:
        args.profile = 0.0
    if args.seconds <= 0 or args.warmup < 0:
        parser.error("--seconds must be positive and --warmup not negative")
    return args


def compile_vigie(log) -> None:
    """Compile Vigie's modules to bytecode first, as installing it does (pip, the Docker
    image): with PYTHONDONTWRITEBYTECODE set (CI images set it), every `vigie serve` of
    the bench would otherwise compile them again: 0.1-0.2 s more to ready, measured here."""
    started = time.monotonic()
    for package in ("ingest", "server"):
        compileall.compile_dir(REPO / package, quiet=1)
    log(f"bench: Vigie's bytecode compiled in {time.monotonic() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    rows = plan(args.quick)
    if args.only:
        wanted = {part.strip() for part in args.only.split(",") if part.strip()}
        rows = [row for row in rows if row.name in wanted or row.scenario in wanted]
        # C reuses A's floor and xstack: run A's row too if C is asked for alone.
        needed = {row.reuse for row in rows if row.reuse}
        rows = [row for row in plan(args.quick) if row in rows or row.name in needed]
        if not rows:
            print(f"no row matches {args.only!r}", file=sys.stderr)
            return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    restore_priority = set_priority(args.nice, log) if args.nice else None
    compile_vigie(log)
    bench = Bench(rows, args.seconds, args.warmup, args.profile, log, args.quick)
    bench.keep_profile = Path(args.keep_profile) if args.keep_profile else None
    started = time.monotonic()
    try:
        results = bench.run()
    except KeyboardInterrupt:
        log("bench: interrupted; stopping everything")
        return 130
    except (RuntimeError, AssertionError, OSError) as error:
        log(f"bench: FAILED: {error}")
        return 1
    finally:
        rig = bench.rig
        feeder_note = None
        if rig is not None:
            feeder_note = {"clips_seconds": rig.clips_seconds}
        bench.close()
        if restore_priority is not None:
            restore_priority()
    elapsed = time.monotonic() - started
    settings = {"mode": "quick" if args.quick else "full", "seconds": args.seconds,
                "warmup": args.warmup, "profile": args.profile,
                "nice": os.getpriority(os.PRIO_PROCESS, 0)}
    print(report(results, settings, argv, elapsed))
    if args.json:
        payload = {"command": command_line(argv), "settings": settings,
                   "machine": {"cores": os.cpu_count(), "cpu": cpu_model(),
                               "pyav": av.__version__},
                   "feeder": feeder_note, "elapsed_s": elapsed, "rows": results,
                   "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str) + "\n")
    failed = [name for name, r in results.items() if r.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
