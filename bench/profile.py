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


def record_threads(pid: int, py_spy: str, seconds: float, output: Path) -> subprocess.Popen:
    """Start `py-spy record --threads` (stacks rooted at `thread (TID): name`); wait on it."""
    command = [py_spy, "record", "--format", "raw", "--nonblocking", "--threads", "--rate", "100",
               "--duration", str(max(1, round(seconds))), "--output", str(output),
               "--pid", str(pid)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


_THREAD = re.compile(r"^thread \((?:0x)?([0-9A-Fa-f]+)\)")


def cpu_weighted(collapsed: Path, cpu_by_tid: dict[int, float], names: dict[int, str],
                 count: int = 12) -> dict:
    """Vigie's CPU (s/s) by Python function: each thread's measured CPU (from /proc) split
    over that thread's busy py-spy samples. A thread's samples say where it was runnable;
    its CPU says how much it ran. Threads with CPU but no Python stack (FFmpeg's decode
    slice threads, x264's) are one line of their own."""
    per_thread: dict[int, list[tuple[list[str], int]]] = collections.defaultdict(list)
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        frames = stack.split(";")
        match = _THREAD.match(frames[0])
        if not match:
            continue
        tid = int(match.group(1))
        per_thread[tid].append(([_short(frame) for frame in frames[1:]], int(samples)))
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    unsampled = 0.0
    for tid, cpu in cpu_by_tid.items():
        stacks = per_thread.get(tid)
        total = sum(n for _, n in stacks) if stacks else 0
        if not total:
            unsampled += cpu
            continue
        for frames, n in stacks:
            share = cpu * n / total
            own[frames[-1] if frames else "?"] += share
            for function in {frame.rpartition(":")[0] + ")" if ":" in frame else frame
                             for frame in frames}:
                inclusive[function] += share
    skip = ("Thread.", "_run_module", "_run_code", "<module>")
    return {
        "self": [(value, name) for name, value in own.most_common(count)],
        "inclusive": [(value, name) for name, value in inclusive.most_common(count * 2)
                      if not name.startswith(skip)][:count],
        "threads_without_python_stack": unsampled,
    }


def find_perf() -> str | None:
    return shutil.which("perf")


def perf_record(pid: int, perf: str, seconds: float, output: Path) -> subprocess.Popen:
    """Start `perf record` (CPU samples, every thread, native code included) on a process."""
    command = [perf, "record", "-F", "499", "-q", "-o", str(output), "-p", str(pid), "--",
               "sleep", str(max(1, round(seconds)))]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def perf_top(data: Path, perf: str, count: int = 12) -> dict:
    """Shares of CPU samples by library (dso) and by symbol, from `perf report`."""
    result = {}
    for key, sort in (("dso", "dso"), ("symbols", "dso,sym")):
        report = subprocess.run([perf, "report", "-i", str(data), "--stdio", "--sort", sort,
                                 "--percent-limit", "0.5"], capture_output=True, text=True,
                                timeout=120)
        rows = []
        for line in report.stdout.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "%" not in line:
                continue
            share, _, rest = line.partition("%")
            try:
                value = float(share) / 100
            except ValueError:
                continue
            rows.append((value, " ".join(rest.split())))
        result[key] = rows[:count]
    return result


def _short(frame: str) -> str:
    """`func (path/to/file.py:12)` -> `func (file.py:12)`."""
    match = _LOCATION.search(frame)
    if not match:
        return frame
    return f"{frame[: match.start()]} ({os.path.basename(match.group(1))}{match.group(2) or ''})"
