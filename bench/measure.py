"""Measuring helpers for the benches: process CPU and memory from /proc, percentiles, tables.

Linux only (reads /proc). Standard library and numpy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of all threads of a process, in seconds (children not included)."""
    with open(f"/proc/{pid}/stat", "rb") as file:
        data = file.read()
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLOCK_TICKS


def process_started_wall(pid: int) -> float:
    """When a process started, as time.time(), from /proc/PID/stat (1/CLK_TCK resolution)."""
    with open(f"/proc/{pid}/stat", "rb") as file:
        data = file.read()
    ticks_since_boot = int(data[data.rindex(b")") + 2 :].split()[19])  # field 22: starttime
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks_since_boot / CLOCK_TICKS
    return time.time() - age


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as file:
        fields = [int(value) for value in file.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    busy = sum(fields[:3]) + sum(fields[5:8])
    return busy / CLOCK_TICKS


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM (peak RSS) and RssAnon (RSS less mapped files: heap, stacks) in MB
    (MiB). A process's RSS also grows as code paths first run and page their libraries
    in (an encoder, a decoder): RssAnon is where a leak shows."""
    values = {}
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon"):
                values[name] = int(rest.split()[0]) / 1024
    return values


@dataclass
class CpuWindow:
    """CPU seconds per second of wall-clock time for several processes over one window.

    Also "machine": every core's busy time, so "others" = machine - the processes named.
    """

    pids: dict[str, int]
    started: float = 0.0
    wall_started: float = 0.0
    seconds: float = 0.0
    _start_cpu: dict[str, float] | None = None
    cpu_per_second: dict[str, float] | None = None

    def start(self) -> "CpuWindow":
        self._start_cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._start_cpu["machine"] = machine_busy_seconds()
        self.started = time.monotonic()
        self.wall_started = time.time()
        return self

    def stop(self) -> dict[str, float]:
        end_cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        end_cpu["machine"] = machine_busy_seconds()
        self.seconds = time.monotonic() - self.started
        self.cpu_per_second = {name: (end_cpu[name] - self._start_cpu[name]) / self.seconds
                               for name in end_cpu}
        self.cpu_per_second["others"] = max(0.0, self.cpu_per_second["machine"] - sum(
            self.cpu_per_second[name] for name in self.pids))
        return self.cpu_per_second

    @property
    def wall_ended(self) -> float:
        return self.wall_started + self.seconds


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def rate(times: Sequence[float]) -> float:
    """Events per second between the first and the last of sorted arrival times."""
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def table(rows: Iterable[tuple[str, str]]) -> str:
    """Aligned `metric | value` plain text; a row ("", "") is a blank separator line."""
    rows = list(rows)
    width = max(len(name) for name, _ in rows)
    lines = [f"{'metric'.ljust(width)} | value", f"{'-' * width}-+-{'-' * 24}"]
    for name, value in rows:
        lines.append(f"{name.ljust(width)} | {value}" if name or value else "")
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{(' ' + unit) if unit else ''}"
