"""Keep glibc's allocator from hoarding memory in a process that runs for years.

Vigie allocates and frees large buffers all day (tiles of 100 kB - 1 MB, canvases and JPEGs
of a few MB) from many threads. glibc gives each busy thread its own arena (up to 8 per
core) and raises its mmap threshold as big blocks are freed, so freed buffers end up as
holes in arenas that are rarely handed back: RSS climbs for hours although nothing leaks.
The 30-minute soak (bench/soak.py) showed it: 380 MB after a quiet period, 250 MB after one
malloc_trim(0).

Two remedies, both plain glibc calls (no-ops on another libc):
- cap the number of arenas before the worker threads start (MALLOC_ARENA_MAX, as
  container images of many Python servers do): fewer places for holes;
- trim periodically (malloc_trim(0), a few milliseconds, in an executor thread): free
  pages go back to the system.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

logger = logging.getLogger(__name__)

M_ARENA_MAX = -8  # from glibc's malloc.h
ARENAS = 2
TRIM_INTERVAL = 60.0  # seconds


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None  # not glibc (musl, macOS)
    return libc


_LIBC = _libc()


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas; call before threads start. The MALLOC_ARENA_MAX
    environment variable, when set, wins (an operator's choice)."""
    if _LIBC is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(_LIBC.mallopt(M_ARENA_MAX, arenas))


def install_snapshot_signal() -> bool:
    """Diagnostics: with VIGIE_TRACEMALLOC=PATH, Python's allocations are traced and each
    SIGUSR2 writes a tracemalloc snapshot to PATH.<unix time> (compare two with
    `tracemalloc.Snapshot.load(...).compare_to(...)`). Slows Vigie down: for leak hunts only."""
    path = os.environ.get("VIGIE_TRACEMALLOC")
    if not path:
        return False
    import signal
    import time
    import tracemalloc

    tracemalloc.start(12)
    signal.signal(signal.SIGUSR2,
                  lambda *_: tracemalloc.take_snapshot().dump(f"{path}.{int(time.time())}"))
    logger.warning("tracemalloc on: SIGUSR2 writes snapshots to %s.<time>", path)
    return True


def trim() -> bool:
    """Hand free heap pages back to the system (blocking for a few ms: not on the loop)."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))


async def trim_ctx(app: Any) -> AsyncIterator[None]:
    """Cleanup context: trim every TRIM_INTERVAL seconds while the server runs. (`app` is
    an aiohttp Application, not named here: this module loads before aiohttp, server/cli.py.)"""
    async def loop() -> None:
        running = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TRIM_INTERVAL)
            try:
                await running.run_in_executor(None, trim)
            except Exception:  # noqa: BLE001 - housekeeping must never take the server down
                logger.exception("malloc_trim failed")

    task = asyncio.create_task(loop(), name="malloc-trim") if _LIBC is not None else None
    yield
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
