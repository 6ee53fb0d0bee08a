"""Child processes of the bench: signals held while starting one, line-protocol children."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any
import json
import queue
import signal
import subprocess
import threading

from tests.conftest import REPO

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


class StuckStream(RuntimeError):
    def __init__(self, message: str, live: bool) -> None:
        super().__init__(message)
        self.live = live


# -- child processes speaking JSON lines -------------------------------------------------------


class LineChild:
    """A child process driven by lines on stdin, answering lines on stdout."""

    def __init__(self, args: list[str], name: str) -> None:
        self.name = name
        with deferred_signals():
            self.process = subprocess.Popen(args, cwd=REPO, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            for line in self.process.stdout:
                self.lines.put(line.strip())
        except (OSError, ValueError):
            pass
        self.lines.put(None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def read(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.name} silent for {timeout:.0f} s") from None
        if line is None:
            raise RuntimeError(f"{self.name} exited ({self.process.poll()})")
        return line

    def ask(self, payload, timeout: float = 30.0) -> dict:
        self.process.stdin.write((payload if isinstance(payload, str) else json.dumps(payload))
                                 + "\n")
        self.process.stdin.flush()
        return json.loads(self.read(timeout))

    def stop(self) -> None:
        process = self.process
        with contextlib.suppress(OSError, ValueError):
            process.stdin.close()  # both children exit on stdin EOF
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def run_bench(make: Callable[[Callable[[str], None]], Any], heading: Callable[[Any, float], str],
              print_table: Callable[[list], None]) -> int:
    """Run a bench object made by `make(log)` (its run(), its idempotent close(), its rows
    and problems): Ctrl+C and SIGTERM stop everything it started; a phase that fails is
    reported with what was measured until then; then the table, `heading(bench, seconds)`
    above it, and the problems seen."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    bench = make(log)
    started = time.monotonic()
    try:
        bench.run()
    except KeyboardInterrupt:
        log("bench: interrupted; stopping everything")
        return 130
    except (RuntimeError, AssertionError, OSError, ValueError, KeyError) as error:
        log(f"bench: FAILED: {error}")
        bench.problems.append(f"bench stopped: {error}")
    finally:
        bench.close()
    print(f"\n{heading(bench, time.monotonic() - started)}\n")
    print_table(bench.rows)
    print("\nproblems seen:" if bench.problems else "\nproblems seen: none")
    for problem in bench.problems:
        print(f"  - {problem}")
    return 0
