"""Where a Python process spends its CPU: per-thread CPU from /proc, named by py-spy.

Optional: py-spy is not a dependency of Vigie (`pip install py-spy` into the venv). Without
it the bench still runs; it only loses the per-thread breakdown and `--profile`.

- Thread names: `py-spy dump --json` maps OS thread ids to Python thread names
  (Python 3.11 does not name OS threads, so /proc/PID/task/*/comm says "python" for all).
  Threads unknown to Python are native ones (FFmpeg's decoder threads, libraries' pools).
- CPU per thread: utime + stime of /proc/PID/task/TID/stat, like the process total.
- Top functions: `py-spy record --format raw` (collapsed stacks) aggregated by self time
  and inclusive time, as a share of the samples where a thread was busy.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.measure import CLOCK_TICKS


def find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def thread_names(pid: int, py_spy: str) -> dict[int, str]:
    """OS thread id -> Python thread name, for the threads Python knows."""
    result = subprocess.run([py_spy, "dump", "--json", "--nonblocking", "--pid", str(pid)],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"py-spy dump failed: {result.stderr.strip()[-300:]}")
    names = {}
    for trace in json.loads(result.stdout):
        tid = trace.get("os_thread_id")
        if tid is not None:
            names[int(tid)] = trace.get("thread_name") or f"python-{tid}"
    return names


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per OS thread id of a process."""
    totals = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as file:
                data = file.read()
        except OSError:
            continue  # the thread ended meanwhile
        fields = data[data.rindex(b")") + 2 :].split()
        totals[int(tid)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return totals


def group_of(name: str | None) -> str:
    """The part of Vigie a thread belongs to, from its Python thread name."""
    if name is None:
        return "native threads (FFmpeg decode slices, ...)"
    if name.startswith("camera-"):
        return "camera workers (demux, decode, normalise)"
    if name.startswith("wall-"):
        return "wall compositors (compose, JPEG encode)"
    if name == "MainThread":
        return "event loop (HTTP, MJPEG out)"
    return "other Python threads"


class ThreadBreakdown:
    """CPU seconds per second by thread group over a window (threads named at start)."""

    def __init__(self, pid: int, py_spy: str) -> None:
        self.pid = pid
        self.names = thread_names(pid, py_spy)
        self._start = thread_cpu(pid)

    def stop(self, seconds: float) -> dict[str, float]:
        end = thread_cpu(self.pid)
        groups: dict[str, float] = collections.defaultdict(float)
        for tid, cpu in end.items():
            groups[group_of(self.names.get(tid))] += (cpu - self._start.get(tid, 0.0)) / seconds
        return dict(sorted(groups.items(), key=lambda item: -item[1]))


_LOCATION = re.compile(r" \((.*?)(:\d+)?\)$")


def record(pid: int, py_spy: str, seconds: float, output: Path) -> None:
    """Sample a process's Python stacks with py-spy into a collapsed-stacks file.

    Python frames only: a thread running C code without the GIL (decode, scale, JPEG)
    shows as the Python line that called it. Idle threads (sleeping in the kernel) are left
    out. --native is not used: its samples count threads waiting in poll() or on a
    condition variable as busy, which drowns the picture here.
    """
    command = [py_spy, "record", "--format", "raw", "--nonblocking", "--rate", "200",
               "--duration", str(max(1, round(seconds))), "--output", str(output),
               "--pid", str(pid)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise RuntimeError(f"py-spy record failed: {result.stderr.strip()[-300:]}")


def top_functions(collapsed: Path, count: int = 12) -> dict[str, list[tuple[float, str]]]:
    """Shares of busy samples by function: `self` (the leaf) and `inclusive` (on the stack)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        weight = int(samples)
        total += weight
        frames = [_short(frame) for frame in stack.split(";")]
        own[frames[-1]] += weight
        for function in {frame.rpartition(":")[0] + ")" if ":" in frame else frame
                         for frame in frames}:
            inclusive[function] += weight  # by function: all its lines together
    if not total:
        return {"self": [], "inclusive": [], "samples": 0}
    return {
        "samples": total,
        "self": [(n / total, name) for name, n in own.most_common(count)],
        "inclusive": [(n / total, name) for name, n in inclusive.most_common(count * 2)
                      if not name.startswith(("Thread.", "_run_module", "_run_code", "<module>"))
                      ][:count],
    }


def _short(frame: str) -> str:
    """`func (path/to/file.py:12)` -> `func (file.py:12)`."""
    match = _LOCATION.search(frame)
    if not match:
        return frame
    return f"{frame[: match.start()]} ({os.path.basename(match.group(1))}{match.group(2) or ''})"
