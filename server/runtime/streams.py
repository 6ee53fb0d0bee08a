"""Live streams: what outputs open views on. A `Stream` has one hub per output format it
offers; `LiveStream` is a compositor with a hub per registered format (ingest/encode),
started on the first viewer of any format and stopped after the last; a `TapStream` is a
camera's own stream without decoding: `RemuxStream` its H.264 in fMP4 for browsers,
`UnitStream` its H.264 or H.265 access units for RTSP.

Lives on the event loop. The compositor thread hands frames back through exactly one door:
`loop.call_soon_threadsafe` (STYLE.md). Stopping joins the thread in an executor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from ingest.camera.worker import CameraWorker, PacketTap
from ingest.encode import EncodedFrame, Format, formats
from ingest.encode.annexb import ACCESS_UNITS, UnitTap
from ingest.encode.fmp4 import FMP4
from ingest.encode.remux import Remuxer
from ingest.hub import DropPolicy, Hub
from ingest.wall.compositor import Compositor

logger = logging.getLogger(__name__)

DeliverFn = Callable[[str, EncodedFrame], None]
WantedFn = Callable[[], frozenset[str]]
RoomFn = Callable[[str], bool]
MakeCompositor = Callable[[DeliverFn, WantedFn, RoomFn], Compositor]

LINGER_SECONDS = 5.0  # keep composing this long after the last viewer (reloads, page hops)


class Stream(Protocol):
    """What the outputs and the view registry know of a stream."""

    name: str
    hubs: dict[str, Hub]  # by format name: the formats this stream offers

    @property
    def viewer_count(self) -> int: ...

    def invalidate(self) -> None:
        """What it shows changed: nothing made before reaches a viewer from now on."""
        ...

    def close_viewers(self, reason: str = "shutdown") -> None: ...

    async def async_close(self) -> None: ...


def make_hub(name: str, output: Format, stall_timeout: float, on_demand: Callable[[int], None],
             on_keyframe_wanted: Callable[[], None] | None = None) -> Hub:
    """A hub for one format: dependent frames skip to a keyframe, others drop the oldest."""
    return Hub(f"{name}/{output.name}", on_demand=on_demand, stall_timeout=stall_timeout,
               buffer_frames=output.buffer_frames,
               policy=DropPolicy.TO_KEYFRAME if output.dependent else DropPolicy.OLDEST,
               on_keyframe_wanted=on_keyframe_wanted if output.dependent else None)


class LiveStream:
    def __init__(self, name: str, make_compositor: MakeCompositor,
                 loop: asyncio.AbstractEventLoop, linger: float = LINGER_SECONDS,
                 stall_timeout: float = 10.0, on_stopped: Callable[[], object] | None = None) -> None:
        self.name = name
        self._loop = loop
        self._linger = linger
        self._on_stopped = on_stopped
        self._stop_handle: asyncio.TimerHandle | None = None
        self.hubs: dict[str, Hub] = {
            output.name: make_hub(name, output, stall_timeout, self._on_demand, self._keyframe_wanted)
            for output in formats().values()}
        self._wanted: frozenset[str] = frozenset()
        self._make_compositor = make_compositor
        # Frames reach the hubs only from the compositor of the current generation: once
        # what the stream shows has changed (a wall edit, a tour's page, a reload), a frame
        # the old compositor still had in hand is dropped, never shown to a viewer who may
        # not see the old composition any more.
        self._generation = 0
        self.compositor = self._build()

    def _build(self) -> Compositor:
        generation = self._generation

        def deliver_threadsafe(fmt: str, frame: EncodedFrame) -> None:
            # The compositor's thread hands frames over through the one door into the loop.
            try:
                self._loop.call_soon_threadsafe(self._publish, generation, fmt, frame)
            except RuntimeError:
                pass  # the loop is closing: the frame has nobody to go to
        return self._make_compositor(deliver_threadsafe, lambda: self._wanted,
                                     lambda fmt: self.hubs[fmt].room)

    def _publish(self, generation: int, fmt: str, frame: EncodedFrame) -> None:
        if generation == self._generation:
            self.hubs[fmt].publish(frame)

    def invalidate(self) -> None:
        """What the stream shows has changed: from now on nothing the running compositor
        made reaches a viewer, nor is served as the latest frame, until `async_rebuild`.
        Synchronous, so that callers do it before their next await."""
        self._generation += 1
        for hub in self.hubs.values():
            hub.latest = None

    def _keyframe_wanted(self) -> None:
        self.compositor.request_keyframe()

    @property
    def viewer_count(self) -> int:
        return sum(hub.viewer_count for hub in self.hubs.values())

    def dropped_frames(self) -> int:
        return sum(hub.dropped_now() for hub in self.hubs.values())

    def disconnected_slow(self) -> int:
        return sum(hub.disconnected_slow for hub in self.hubs.values())

    def fps_delivered(self) -> float:
        return self.compositor.output_rate.rates(time.monotonic())[0] if self.compositor.running else 0.0

    def _on_demand(self, _: int) -> None:
        # Read by the compositor thread each tick: encode only the formats someone watches.
        self._wanted = frozenset(fmt for fmt, hub in self.hubs.items() if hub.viewer_count)
        if self.viewer_count > 0:
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
        if self.viewer_count:
            return
        if self.compositor.running:
            logger.info("stream %s: no viewer, stopping", self.name)
            self._loop.run_in_executor(None, self.compositor.stop)
            for hub in self.hubs.values():
                hub.header = None  # the next encoder brings its own init segment
        if self._on_stopped is not None:
            self._on_stopped()

    async def async_rebuild(self) -> None:
        """Swap in a compositor built afresh (new wall layout, restarted cameras); the
        viewers stay connected to the hubs and only see the picture change."""
        self.invalidate()
        old = self.compositor
        self.compositor = self._build()
        for hub in self.hubs.values():
            hub.header = None  # the new encoder brings its own init segment
        await self._loop.run_in_executor(None, old.stop)
        if self.viewer_count > 0:
            self.compositor.start()

    def close_viewers(self, reason: str = "shutdown") -> None:
        for hub in self.hubs.values():
            hub.close_all(reason)

    async def async_close(self) -> None:
        if self._stop_handle is not None:
            self._stop_handle.cancel()
            self._stop_handle = None
        self.close_viewers("shutdown")
        await self._loop.run_in_executor(None, self.compositor.stop)


class TapStream:
    """A camera's own stream, no decoding: a packet tap on its worker while someone
    watches, offering one format (`output`)."""

    def __init__(self, name: str, worker: CameraWorker, loop: asyncio.AbstractEventLoop,
                 output: Format, make_tap: Callable[[Callable[[EncodedFrame], None]], PacketTap],
                 stall_timeout: float = 10.0) -> None:
        self.name = name
        self.worker = worker
        self._loop = loop
        self._make_tap = make_tap
        self._hub = make_hub(name, output, stall_timeout, self._on_demand)
        self.hubs: dict[str, Hub] = {output.name: self._hub}
        self._tap: PacketTap | None = None

    def _deliver_threadsafe(self, frame: EncodedFrame) -> None:
        try:
            self._loop.call_soon_threadsafe(self._hub.publish, frame)
        except RuntimeError:
            pass

    def _on_demand(self, viewers: int) -> None:
        if viewers and self._tap is None:
            self._hub.header = None  # a new tap sends its own
            self._tap = self._make_tap(self._deliver_threadsafe)
            self.worker.add_tap(self._tap)
        elif not viewers and self._tap is not None:
            self.worker.remove_tap(self._tap)
            # Not closed here: the worker's thread may be inside a call to it. What it holds
            # is released when it is collected.
            self._tap = None

    @property
    def viewer_count(self) -> int:
        return self._hub.viewer_count

    def invalidate(self) -> None:
        """Its camera changed (a reload): nothing more of the old one reaches a viewer."""
        if self._tap is not None:
            self.worker.remove_tap(self._tap)
            self._tap = None
        self._hub.latest = None
        self._hub.header = None

    def close_viewers(self, reason: str = "shutdown") -> None:
        self._hub.close_all(reason)

    async def async_close(self) -> None:
        self.close_viewers("shutdown")


class RemuxStream(TapStream):
    """A camera's own H.264 in fMP4 for browsers, without decoding."""

    def __init__(self, name: str, worker: CameraWorker, loop: asyncio.AbstractEventLoop,
                 stall_timeout: float = 10.0) -> None:
        super().__init__(name, worker, loop, formats()[FMP4], Remuxer, stall_timeout)


class UnitStream(TapStream):
    """A camera's own H.264 or H.265 access units, for RTSP clients, without decoding."""

    def __init__(self, name: str, worker: CameraWorker, loop: asyncio.AbstractEventLoop,
                 stall_timeout: float = 10.0) -> None:
        super().__init__(name, worker, loop, ACCESS_UNITS, UnitTap, stall_timeout)
