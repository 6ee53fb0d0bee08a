"""Live streams: a compositor and its hub, started on the first viewer, stopped after the last.

Lives on the event loop. The compositor thread hands frames back through exactly one door:
`loop.call_soon_threadsafe` (STYLE.md). Stopping joins the thread in an executor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ingest.compositor import Compositor
from ingest.encoders import EncodedFrame
from ingest.hub import Hub

logger = logging.getLogger(__name__)

DeliverFn = Callable[[EncodedFrame], None]

LINGER_SECONDS = 5.0  # keep composing this long after the last viewer (reloads, page hops)


class LiveStream:
    def __init__(self, name: str, make_compositor: Callable[[DeliverFn], Compositor],
                 loop: asyncio.AbstractEventLoop,
                 linger: float = LINGER_SECONDS, stall_timeout: float = 10.0,
                 on_stopped: Callable[[], object] | None = None) -> None:
        self.name = name
        self._on_stopped = on_stopped
        self._loop = loop
        self._linger = linger
        self._stop_handle: asyncio.TimerHandle | None = None
        self.hub = Hub(name, on_demand=self._on_demand, stall_timeout=stall_timeout)
        # The compositor's thread hands frames over through the one door into the loop.
        self._make_compositor = make_compositor
        self.compositor = make_compositor(self._deliver_threadsafe)

    def _deliver_threadsafe(self, frame: EncodedFrame) -> None:
        try:
            self._loop.call_soon_threadsafe(self.hub.publish, frame)
        except RuntimeError:
            pass  # the loop is closing: the frame has nobody to go to

    def _on_demand(self, viewers: int) -> None:
        if viewers > 0:
            if self._stop_handle is not None:
                self._stop_handle.cancel()
                self._stop_handle = None
            if not self.compositor.running:
                logger.info("stream %s: starting", self.name)
                self.compositor.start()
        elif self._stop_handle is None:
            self._stop_handle = self._loop.call_later(self._linger, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        self._stop_handle = None
        if self.hub.viewer_count == 0 and self.compositor.running:
            logger.info("stream %s: no viewer, stopping", self.name)
            self._loop.run_in_executor(None, self.compositor.stop)
            if self._on_stopped is not None:
                self._on_stopped()

    async def async_rebuild(self) -> None:
        """Swap in a compositor built afresh (new wall layout, restarted cameras); the
        viewers stay connected to the hub and only see the picture change."""
        old = self.compositor
        self.compositor = self._make_compositor(self._deliver_threadsafe)
        await self._loop.run_in_executor(None, old.stop)
        if self.hub.viewer_count > 0:
            self.compositor.start()

    async def async_close(self) -> None:
        if self._stop_handle is not None:
            self._stop_handle.cancel()
            self._stop_handle = None
        self.hub.close_all("shutdown")
        await self._loop.run_in_executor(None, self.compositor.stop)
