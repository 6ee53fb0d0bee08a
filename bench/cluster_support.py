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
from pathlib import Path

from bench.children import deferred_signals
from ingest.picture.layout import CellSpec
from tests.conftest import VigieProcess, free_port
from tests.support.camsim import CameraSimulator
from tests.support.mjpeg import ReceivedFrame, cell_stamp

SIZE = (320, 180)       # each camera's picture (camsim), as in tests/server/test_cluster.py
LEASE, RENEW = 3.0, 1.0  # the cluster's lease_seconds and renew_seconds
LOG_MARKS = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback")


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
                wall_size: str, pinned_to: str | None = None) -> str:
    """A node's config (start_vigie adds users and RTSP ports): `cameras` (camsim mounts of
    the same names, tags i + 1 for c{i}), one wall `w` of them all, the cluster section.
    `pinned_to`: every camera restricted to that node (cameras[].nodes)."""
    nodes = f", nodes: [{pinned_to}]" if pinned_to else ""
    lines = "".join(f'  - {{id: {c}, name: {c.upper()}, commune: a, url: "{sim.url(c)}"{nodes}}}\n'
                    for c in cameras)
    return (f'server: {{listen: "127.0.0.1:{{port}}"}}\ncommunes: [{{id: a, name: A}}]\n'
            f"cameras:\n{lines}"
            f"walls:\n  - {{id: w, name: W, size: {wall_size}, fps: 10, layout: {layout}, "
            f"cameras: [{', '.join(cameras)}]}}\n"
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


def stop_nodes(nodes: list[VigieProcess], problems: list[str], timeout: float = 15.0) -> None:
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
        if code != 0:
            problems.append(f"{node.log_path.parent.name} exited with {code} after SIGTERM")


def log_problems(logs: list[tuple[str, Path]], limit: int = 25) -> list[str]:
    """The warnings, errors and tracebacks of the nodes' logs, alike lines counted once
    (timestamps and numbers blanked), most frequent first."""
    counts: collections.Counter[str] = collections.Counter()
    example: dict[str, str] = {}
    for label, path in logs:
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                if any(mark in line for mark in LOG_MARKS):
                    text = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", "", line.strip())
                    key = re.sub(r"\d+(\.\d+)?", "N", text)
                    counts[key] += 1
                    example.setdefault(key, f"{label}: {text[:260]}")
    return [f"vigie log ({n}x): {example[key]}" for key, n in counts.most_common(limit)]
