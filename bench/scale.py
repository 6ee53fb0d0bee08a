"""The cluster's scale: what two nodes carry of the same walls, against one node.

    python -m bench.scale [--walls N] [--window-seconds S] [--settle S] [--placement spread|walls] [--keep]

Cameras: 16 per wall, looped pre-encoded 640x360@15 clips (bench/feeder.py: nothing is
encoded to feed them), all on one nats-server (Debian's, JetStream on). Walls 4x4
1920x1080@15 (as the wall bench's row A), each read by one MJPEG reader in this process.
  1. one node: node a pulls every camera and serves every wall.
  2. two nodes: node b joins; the cluster spreads the cameras itself (no cameras[].nodes),
     wall i is read on node a for even i, on node b for odd i, so about half of each wall's
     cameras are relayed through NATS to the node that shows it. With --placement walls,
     each wall's cameras are pulled by the node that shows it (cameras[].nodes): nothing is
     relayed in full, only the keyframes idle tiles need.
In each window (after a settling time): the CPU of the Vigie nodes from /proc (bench/measure.py)
per camera, NATS's and the feeder's apart; every wall must reach 14.5 fps at its reader and
no camera may be 'reduced' (load shedding) on any node, or the window does not count.
Scaling factor = 2 x CPU per camera (one node) / CPU per camera (two nodes), target >= 1.8:
two nodes carry at least 1.8 times what one carries. Printed with PASS/FAIL, never asserted.
Everything runs on 127.0.0.1 and is stopped on exit, error or Ctrl+C. About 2 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.cameras import CameraRig
from bench.children import deferred_signals, run_bench
from bench.cluster_support import LEASE, RENEW, NatsServer, log_problems, print_table, stop_nodes, verdict, wait_for
from bench.measure import CpuWindow
from tests.conftest import VigieProcess, start_vigie
from tests.support.mjpeg import MjpegReader

PER_WALL = 16
MIN_FPS = 14.5
TARGET_FACTOR = 1.8


def node_config(rig: CameraRig, cameras: int, walls: int, nats: str, node: str, by_wall: bool = False) -> str:
    """`by_wall`: each wall's cameras may be pulled only by the node that shows it
    (cameras[].nodes), so nothing is relayed in full."""
    pin = (lambda i: f", nodes: [{'a' if (i // PER_WALL) % 2 == 0 else 'b'}]") if by_wall else (lambda i: "")
    lines = "".join(f'  - {{id: c{i}, name: C{i}, commune: a, url: "{rig.url(i, live=False)}"{pin(i)}}}\n'
                    for i in range(cameras))
    wall_lines = "".join(
        f"  - {{id: w{w}, name: W{w}, size: 1920x1080, fps: 15, layout: 4x4, "
        f"cameras: [{', '.join(f'c{i}' for i in range(w * PER_WALL, (w + 1) * PER_WALL))}]}}\n"
        for w in range(walls))
    return (f'server: {{listen: "127.0.0.1:{{port}}"}}\ncommunes: [{{id: a, name: A}}]\n'
            f"cameras:\n{lines}walls:\n{wall_lines}"
            f'cluster: {{nats: ["{nats}"], node: {node}, lease_seconds: {LEASE}, renew_seconds: {RENEW}}}\n')


class Bench:
    def __init__(self, args: argparse.Namespace, log) -> None:
        self.args = args
        self.log = log
        self.tmp = Path(tempfile.mkdtemp(prefix="vigie-bench-scale-"))
        self.cameras = PER_WALL * args.walls
        self.rig: CameraRig | None = None
        self.nats: NatsServer | None = None
        self.nodes: dict[str, VigieProcess] = {}
        self.readers: list[MjpegReader] = []
        self.rows = [("measure", "value", "target", "")]
        self.problems: list[str] = []
        self.per_camera: dict[int, float] = {}  # nodes: CPU (% of a core) per camera

    def start_node(self, name: str, by_wall: bool) -> None:
        with deferred_signals():
            self.nodes[name] = start_vigie(node_config(self.rig, self.cameras, self.args.walls, self.nats.url, name,
                                                       by_wall), self.tmp, ready_timeout=60)

    def owners(self) -> dict[str, str | None]:
        return self.nodes["a"].get_json("/api/cluster")["cameras"]

    def window(self, label: str, reading_on: list[str]) -> None:
        """Walls read on these nodes (wall i on reading_on[i]); one measured window."""
        self.readers = [self.nodes[name].reader(f"/walls/w{w}/mjpeg") for w, name in enumerate(reading_on)]
        try:
            wait_for(lambda: all(len(r.frames) > 15 for r in self.readers), 60, "every wall read")
            time.sleep(self.args.settle)
            pids = {**{name: node.process.pid for name, node in self.nodes.items()}, "nats": self.nats.pid,
                    **self.rig.pids()}
            window = CpuWindow(pids).start()
            time.sleep(self.args.window_seconds)
            cpu = window.stop()
            fps = [len(r.frames_between(window.wall_started, window.wall_ended)) / window.seconds for r in self.readers]
            reduced = sorted({c["id"] for node in self.nodes.values() for c in node.get_json("/api/cameras")
                              if c.get("decoding") == "reduced"})
        finally:
            for reader in self.readers:
                reader.stop()
            self.readers = []
        vigie = sum(cpu[name] for name in self.nodes) * 100
        counted = min(fps) >= MIN_FPS and not reduced
        if counted:
            self.per_camera[len(self.nodes)] = vigie / self.cameras
        else:
            self.problems.append(f"{label}: not counted (walls {min(fps):.1f} fps, reduced: {reduced or 'none'})")
        self.log(f"bench: {label}: " + ", ".join(f"{name} {value * 100:.1f} %" for name, value in cpu.items()))
        self.rows += [
            (f"{label}: Vigie CPU", f"{vigie:.1f} % of a core (" + ", ".join(
                f"{name} {cpu[name] * 100:.1f}" for name in self.nodes) + ")", "", ""),
            (f"{label}: per camera", f"{vigie / self.cameras:.2f} % of a core", "", ""),
            (f"{label}: walls at the readers", " ".join(f"{f:.1f}" for f in fps) + " fps",
             f">= {MIN_FPS}", verdict(min(fps) >= MIN_FPS)),
            (f"{label}: cameras reduced", ", ".join(reduced) or "none", "none", verdict(not reduced)),
            (f"{label}: nats-server, feeder", f"{cpu['nats'] * 100:.1f} / {cpu.get('feeder', 0) * 100:.1f} % of a core",
             "", ""),
        ]

    def run(self) -> None:
        self.rig = CameraRig(self.cameras, set(), log=self.log).start()
        self.nats = NatsServer(self.tmp / "jetstream")
        self.start_node("a", by_wall=False)
        wait_for(lambda: set(self.owners().values()) == {"a"}, 60, "node a pulls every camera")
        self.window("1 node", ["a"] * self.args.walls)
        if self.args.placement == "walls":  # a again, with each wall's cameras pinned to its node
            stop_nodes([self.nodes.pop("a")], self.problems)
            self.start_node("a", by_wall=True)
        self.start_node("b", by_wall=self.args.placement == "walls")
        wait_for(lambda: sorted(list(self.owners().values()).count(n) for n in "ab") == [self.cameras // 2] * 2,
                 60, "the cameras spread over a and b")
        time.sleep(2 * LEASE)  # the cameras that moved are live again on their new node
        self.window("2 nodes", ["a" if w % 2 == 0 else "b" for w in range(self.args.walls)])
        if 1 in self.per_camera and 2 in self.per_camera:
            factor = 2 * self.per_camera[1] / self.per_camera[2]
            self.rows.append(("scaling factor (2 x per camera, 1 node / 2 nodes)", f"{factor:.2f}",
                              f">= {TARGET_FACTOR}", verdict(factor >= TARGET_FACTOR)))
        else:
            self.rows.append(("scaling factor", "not measured", f">= {TARGET_FACTOR}", "FAIL"))

    def close(self) -> None:
        for reader in self.readers:
            with contextlib.suppress(Exception):
                reader.stop()
        stop_nodes(list(self.nodes.values()), self.problems)
        self.problems += log_problems([(name, node.log_path) for name, node in self.nodes.items()])
        if self.nats is not None:
            self.nats.stop()
        if self.rig is not None:
            self.rig.stop()
        if self.args.keep:
            self.log(f"bench: the nodes' folders kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--walls", type=int, default=2, help="4x4 walls of 16 cameras each (default 2)")
    parser.add_argument("--window-seconds", type=float, default=15.0, help="each measured window")
    parser.add_argument("--settle", type=float, default=6.0, help="wait before each window")
    parser.add_argument("--placement", choices=("spread", "walls"), default="spread",
                        help="two nodes: cameras spread by the cluster (default), or each wall's cameras "
                        "pulled by the node that shows it (cameras[].nodes)")
    parser.add_argument("--keep", action="store_true", help="keep the nodes' folders (config, log)")
    args = parser.parse_args(argv)
    if not 1 <= args.walls <= 16:
        parser.error("--walls must be 1..16")
    return run_bench(lambda log: Bench(args, log), lambda bench, seconds: (
        f"Cluster scale ({seconds:.0f} s; {bench.cameras} cameras, {args.walls} walls 4x4 "
        f"1920x1080@15, windows of {args.window_seconds:g} s; targets printed, not asserted)"), print_table)


if __name__ == "__main__":
    sys.exit(main())
