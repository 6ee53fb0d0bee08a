"""How late the event loop runs what is due: the server's own measure of being short of CPU
where it serves viewers (ingest/wall/governor.py asks it once a second)."""

from __future__ import annotations

import asyncio

INTERVAL = 0.1  # seconds between probes


class LoopLag:
    def __init__(self) -> None:
        self._worst = 0.0
        self._probed = False

    async def run(self) -> None:
        """Probe forever (a task on the loop measured)."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + INTERVAL
            await asyncio.sleep(INTERVAL)
            self._worst = max(self._worst, loop.time() - due)
            self._probed = True

    def take(self) -> float | None:
        """The worst lateness (seconds) since the last call, from any thread; None before
        the first probe."""
        if not self._probed:
            return None
        worst, self._worst = self._worst, 0.0
        return worst
