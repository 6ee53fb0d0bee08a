"""Pieces of the cluster bench (bench/cluster.py): Debian's nats-server, the nodes' config,
reading the cameras' stamps off a wall frame, stopping nodes, and their logs' problems.

Linux only; needs nats-server (Debian package) and camsim (tests/support/camsim).
"""

from __future__ import annotations

import collections
import contextlib
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench.children import deferred_signals
from ingest.picture.layout import CellSpec
from tests.conftest import VigieProcess, free_port
from tests.support.camsim import CameraSimulator
from tests.support.mjpeg import ReceivedFrame, cell_stamp

SIZE = (320, 180)       # each camera's picture (camsim), as in tests/server/test_cluster.py
LEASE, RENEW = 3.0, 1.0  # the cluster's lease_seconds and renew_seconds
LOG_MARKS = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def seconds(values: list[float]) -> str:
    return " ".join(f"{v:.1f}" for v in values) or "none"


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll `predicate` until it is true; RuntimeError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    """measure, value, target, verdict: aligned columns, a rule under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


class NatsServer:
    """`nats-server -js` on a free port of 127.0.0.1, its JetStream files in `folder`."""

    def __init__(self, folder: Path) -> None:
        if shutil.which("nats-server") is None:
            raise RuntimeError("nats-server is not installed (Debian package nats-server)")
        self.port = free_port()
        with deferred_signals():  # Ctrl+C never loses the handle of a started child
            self.process = subprocess.Popen(
                ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(folder)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _accepts(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("nats-server did not start listening")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def node_config(sim: CameraSimulator, nats: str, node: str, cameras: list[str], layout: str,
                wall_size: str, pinned: dict[str, str] | None = None) -> str:
    """A node's config (start_vigie adds users and RTSP ports): `cameras` (camsim mounts of
    the same names, tags i + 1 for c{i}), one wall `w` of the first layout's worth of them,
    the cluster section. `pinned`: cameras restricted to one node (cameras[].nodes)."""
    pinned = pinned or {}
    lines = "".join(f'  - {{id: {c}, name: {c.upper()}, commune: a, url: "{sim.url(c)}"'
                    + (f", nodes: [{pinned[c]}]" if c in pinned else "") + "}\n" for c in cameras)
    columns, rows = (int(n) for n in layout.split("x"))
    return (f'server: {{listen: "127.0.0.1:{{port}}"}}\ncommunes: [{{id: a, name: A}}]\n'
            f"cameras:\n{lines}"
            f"walls:\n  - {{id: w, name: W, size: {wall_size}, fps: 10, layout: {layout}, "
            f"cameras: [{', '.join(cameras[:columns * rows])}]}}\n"
            f'cluster: {{nats: ["{nats}"], node: {node}, lease_seconds: {LEASE}, '
            f"renew_seconds: {RENEW}}}\n")


def tag(camera: str) -> int:
    """camsim's tag of mount c{i}: i + 1."""
    return int(camera[1:]) + 1


def cell_ages(frame: ReceivedFrame, grid: tuple[int, int], count: int) -> dict[int, int]:
    """Each readable cell's camera (tag) and the age in ms of its picture when the frame
    arrived; a cell without a readable stamp (a card, garbage) is left out. The cells of a
    wall hold the cameras in config order, row by row."""
    gray = frame.gray()
    arrived = int(frame.received_wall * 1000) % 2**32
    ages: dict[int, int] = {}
    for index in range(count):
        stamp = cell_stamp(gray, CellSpec(None, index // grid[0], index % grid[0]), grid, SIZE)
        if stamp is not None:
            ages[stamp.tag] = stamp.age_ms(arrived)
    return ages


def made_after(frame: ReceivedFrame, ages: dict[int, int], moment: float) -> set[int]:
    """The tags whose picture in this frame was made at or after `moment` (time.time())."""
    limit = (frame.received_wall - moment) * 1000
    return {t for t, age in ages.items() if age <= limit}


def oldest(ages: dict[int, int], tags: set[int]) -> float:
    """The oldest picture among `tags` in seconds; a missing one counts as infinitely old."""
    return max((ages.get(t, float("inf")) / 1000 for t in tags), default=0.0)


class Staleness:
    """Over consecutive frames of a wall, how old each camera's cell got: the age of the
    picture it shows, and while it shows none readable (a card, a picture being replaced),
    the age of the last picture it showed (from the first frame fed, if none before)."""

    def __init__(self, grid: tuple[int, int], count: int, tags: set[int]) -> None:
        self.grid, self.count, self.tags = grid, count, tags
        self.last_made: dict[int, float] = {}  # tag: when its last readable picture was made
        self.worst = 0.0                       # seconds
        self.stale_frames = self.frames = 0

    def feed(self, frame: ReceivedFrame, stale: float) -> dict[int, int]:
        ages = cell_ages(frame, self.grid, self.count)
        oldest_here = 0.0
        for t in self.tags:
            if t in ages:
                self.last_made[t] = frame.received_wall - ages[t] / 1000
            made = self.last_made.setdefault(t, frame.received_wall)
            oldest_here = max(oldest_here, frame.received_wall - made)
        self.worst = max(self.worst, oldest_here)
        self.frames += 1
        self.stale_frames += oldest_here > stale
        return ages


def stop_nodes(nodes: list[VigieProcess], problems: list[str], timeout: float = 8.0) -> None:
    """SIGTERM to all at once (each hands its cameras over), then wait; a node that does
    not exit is killed; a bad exit becomes a problem."""
    running = [node for node in nodes if node.process.poll() is None]
    for node in running:
        node.process.terminate()
    deadline = time.monotonic() + timeout
    for node in running:
        try:
            code = node.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            node.process.kill()
            code = node.process.wait(5)
            problems.append(f"{node.log_path.parent.name}: still running {timeout:.0f} s after "
                            "SIGTERM, killed")
            continue
        if code != 0:
            problems.append(f"{node.log_path.parent.name} exited with {code} after SIGTERM")


def log_problems(logs: list[tuple[str, Path]], ignore: str | None = None, limit: int = 25) -> list[str]:
    """The warnings and errors of the nodes' logs, each with the exception ending the
    traceback under it if any; alike ones counted once (timestamps, numbers and addresses
    blanked), most frequent first. Entries matching the regular expression `ignore` are
    left out."""
    counts: collections.Counter[str] = collections.Counter()
    example: dict[str, str] = {}
    for label, path in logs:
        text = ""
        with contextlib.suppress(OSError):
            text = path.read_text(errors="replace")
        # One entry per log record: a dated line and the undated lines under it.
        for entry in re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ )", text):
            head, *rest = entry.strip().splitlines() or [""]
            if not any(mark in entry for mark in LOG_MARKS) or (ignore and re.search(ignore, entry)):
                continue
            head = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", "", head)
            if "Traceback" in entry:  # the exception: the last line of the traceback
                ending = [line for line in rest if line and not line.startswith((" ", "Traceback"))]
                head += " | " + (ending[-1] if ending else "Traceback")
            key = re.sub(r"0x[0-9a-f]+|\d+(\.\d+)?", "N", head)
            counts[key] += 1
            example.setdefault(key, f"{label}: {head[:300]}")
    return [f"vigie log ({n}x): {example[key]}" for key, n in counts.most_common(limit)]
