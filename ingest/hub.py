"""Fan-out of one encoded stream to many viewers, on the event loop.

Each viewer has its own small buffer. When it is full the oldest frame is dropped for
that viewer only, and counted (go2rtc's rule: one slow viewer never slows another). A
viewer that has had frames waiting, untaken, for `stall_timeout` seconds is disconnected.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from ingest.encoders import EncodedFrame
from ingest.stats import RateMeter


class Viewer:
    def __init__(self, hub: "Hub", buffer_frames: int) -> None:
        self._hub = hub
        self._pending: deque[EncodedFrame] = deque(maxlen=buffer_frames)
        self._ready = asyncio.Event()
        self.closed = False
        self.close_reason: str | None = None
        self.delivered = 0
        self.dropped = 0
        self.pending_since: float | None = None  # untaken frames waiting since (monotonic)
        self.task: asyncio.Task | None = None  # the handler task, cancelled if stalled

    def offer(self, frame: EncodedFrame, now: float) -> None:
        if not self._pending:
            self.pending_since = now
        elif len(self._pending) == self._pending.maxlen:
            self.dropped += 1  # deque(maxlen) discards the oldest
        self._pending.append(frame)
        self._ready.set()

    async def next_frame(self) -> EncodedFrame | None:
        """The oldest pending frame; None once the viewer is closed."""
        while not self._pending:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        self.delivered += 1
        frame = self._pending.popleft()
        self.pending_since = time.monotonic() if self._pending else None
        return frame

    def stalled_for(self, now: float) -> float:
        """Seconds this viewer has had frames waiting without taking any."""
        return 0.0 if self.pending_since is None else now - self.pending_since

    def close(self, reason: str = "closed") -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._pending.clear()
        self._ready.set()
        self._hub.remove(self)


class Hub:
    """Viewers of one stream. `on_demand(count)` is told whenever the viewer count changes."""

    def __init__(self, name: str, on_demand: Callable[[int], None] | None = None,
                 buffer_frames: int = 2, stall_timeout: float = 10.0) -> None:
        self.name = name
        self._viewers: set[Viewer] = set()
        self._on_demand = on_demand
        self._buffer_frames = buffer_frames
        self._stall_timeout = stall_timeout
        self.latest: EncodedFrame | None = None
        self._latest_event = asyncio.Event()
        self.published = 0
        self.dropped_total = 0
        self.disconnected_slow = 0
        self.rate = RateMeter()

    @property
    def viewer_count(self) -> int:
        return len(self._viewers)

    def add(self) -> Viewer:
        viewer = Viewer(self, self._buffer_frames)
        self._viewers.add(viewer)
        if self._on_demand is not None:
            self._on_demand(len(self._viewers))
        return viewer

    def remove(self, viewer: Viewer) -> None:
        if viewer in self._viewers:
            self._viewers.discard(viewer)
            self.dropped_total += viewer.dropped
            if self._on_demand is not None:
                self._on_demand(len(self._viewers))

    def publish(self, frame: EncodedFrame) -> None:
        """Called on the event loop for every encoded frame; never waits for anyone."""
        now = time.monotonic()
        self.latest = frame
        self.published += 1
        self.rate.add(now)
        self._latest_event.set()
        self._latest_event = asyncio.Event()
        for viewer in list(self._viewers):
            viewer.offer(frame, now)
            if viewer.stalled_for(now) > self._stall_timeout:
                self.disconnected_slow += 1
                viewer.close("too slow")
                if viewer.task is not None:
                    viewer.task.cancel()

    async def wait_frame(self, newer_than: int = 0, timeout: float = 10.0) -> EncodedFrame | None:
        """The first frame with seq > newer_than (for snapshots)."""
        deadline = time.monotonic() + timeout
        while self.latest is None or self.latest.seq <= newer_than:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._latest_event.wait(), remaining)
            except TimeoutError:
                return None
        return self.latest

    def dropped_now(self) -> int:
        return self.dropped_total + sum(viewer.dropped for viewer in self._viewers)

    def close_all(self, reason: str = "shutdown") -> None:
        for viewer in list(self._viewers):
            viewer.close(reason)
