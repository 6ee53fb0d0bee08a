"""Fan-out of one encoded stream to many viewers, on the event loop.

Each viewer has its own small buffer; nobody ever waits for anybody (go2rtc's rule). When a
viewer's buffer is full, what is dropped depends on the format:
- JPEG frames stand alone: the oldest is dropped, the viewer gets the latest. Frames made
  more than STALE_GAP before the newest one waiting are skipped when the viewer takes
  one: they were made before a gap (a wall that encoded once a second while nobody took
  its frames), and a viewer that resumes would show them, stale, before the live one.
- H.264 fragments depend on each other: the whole buffer is dropped and the viewer skips
  to the next keyframe (the hub asks the encoder for one, so the gap stays short).
Every drop is counted. A viewer that has had frames waiting, untaken, for `stall_timeout`
seconds is disconnected. For fMP4 the hub also keeps the init segment ("header"), which
every new viewer gets first.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Callable

from ingest.encode import EncodedFrame
from ingest.rates import RateMeter


STALE_GAP = 0.5  # seconds: a waiting JPEG frame this much older than the newest is skipped


class DropPolicy(enum.Enum):
    OLDEST = "oldest"             # independent frames (JPEG)
    TO_KEYFRAME = "to_keyframe"   # dependent frames (H.264)


class Viewer:
    def __init__(self, hub: "Hub", buffer_frames: int, policy: DropPolicy) -> None:
        self._hub = hub
        self._pending: deque[EncodedFrame] = deque()
        self._messages: deque[dict] = deque(maxlen=16)  # control messages (wall changed, ...)
        self._limit = buffer_frames
        self._policy = policy
        self._ready = asyncio.Event()
        self.needs_keyframe = policy is DropPolicy.TO_KEYFRAME
        self.started = not self.needs_keyframe  # has had a frame to start from
        self.closed = False
        self.close_reason: str | None = None
        self.delivered = 0
        self.dropped = 0
        self.pending_since: float | None = None  # untaken frames waiting since (monotonic)
        self.task: asyncio.Task | None = None  # the handler task, cancelled if stalled

    def offer(self, frame: EncodedFrame, now: float) -> None:
        if frame.header:  # a (new) init segment: everything before it is void
            self.dropped += len(self._pending)
            self._pending.clear()
            self.needs_keyframe = True
        elif self.needs_keyframe:
            if not frame.keyframe:
                # Before its first frame a viewer loses nothing: it starts at a keyframe.
                self.dropped += 1 if self.started else 0
                return
            self.needs_keyframe = False
            self.started = True
        elif len(self._pending) >= self._limit:
            if self._policy is DropPolicy.OLDEST:
                self._pending.popleft()
                self.dropped += 1
            else:
                kept_header = [f for f in self._pending if f.header]
                self.dropped += len(self._pending) - len(kept_header)
                self._pending = deque(kept_header)
                if not frame.keyframe:
                    self.dropped += 1
                    self.needs_keyframe = True
                    self._hub.keyframe_wanted()
                    return
        if self.pending_since is None:
            # Kept when a dependent buffer was flushed to wait for a keyframe: a viewer
            # stuck in a send never takes a frame, however often its buffer is emptied.
            self.pending_since = now
        self._pending.append(frame)
        self._ready.set()

    def post(self, message: dict) -> None:
        """A control message for this viewer, delivered before its next frame."""
        self._messages.append(message)
        self._ready.set()

    async def next_item(self) -> EncodedFrame | dict | None:
        """A control message if one waits, else the oldest frame; None once closed."""
        while not self._pending and not self._messages:
            if self.closed:
                return None
            self.pending_since = None  # asking for more: not stalled
            self._ready.clear()
            await self._ready.wait()
        if self._messages:
            return self._messages.popleft()
        return self._take()

    async def next_frame(self) -> EncodedFrame | None:
        """The oldest pending frame (control messages are skipped); None once closed."""
        while not self._pending:
            if self.closed:
                return None
            self._messages.clear()
            self.pending_since = None  # asking for more: not stalled
            self._ready.clear()
            await self._ready.wait()
        return self._take()

    def has_room(self) -> bool:
        return len(self._pending) < self._limit

    def _take(self) -> EncodedFrame:
        self._hub.room = True  # a frame encoded now would reach this viewer
        self.delivered += 1
        if self._policy is DropPolicy.OLDEST:
            # Skipped when taken, not when the new frame comes: until then the buffer stays
            # full, so a starved wall keeps encoding once a second only (Hub.room).
            newest = self._pending[-1].wall_time
            while len(self._pending) > 1 and newest - self._pending[0].wall_time > STALE_GAP:
                self._pending.popleft()
                self.dropped += 1
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
        self._messages.clear()
        self._ready.set()
        self._hub.remove(self)


class Hub:
    """Viewers of one encoded stream. `on_demand(count)` hears every change of viewer count;
    `on_keyframe_wanted()` is called when a viewer needs a keyframe to (re)start."""

    def __init__(self, name: str, on_demand: Callable[[int], None] | None = None,
                 buffer_frames: int = 2, stall_timeout: float = 10.0,
                 policy: DropPolicy = DropPolicy.OLDEST,
                 on_keyframe_wanted: Callable[[], None] | None = None) -> None:
        self.name = name
        self._viewers: set[Viewer] = set()
        self._on_demand = on_demand
        self._on_keyframe_wanted = on_keyframe_wanted
        self._buffer_frames = buffer_frames
        self._stall_timeout = stall_timeout
        self._policy = policy
        self.header: EncodedFrame | None = None  # fMP4 init segment of the running encoder
        self.latest: EncodedFrame | None = None
        self.published = 0
        # Some viewer would take a new frame without dropping one. Read by the compositor's
        # thread as a hint (a stale answer costs one encode or one tick of delay).
        self.room = True
        self.dropped_total = 0
        self.disconnected_slow = 0
        self.rate = RateMeter()

    @property
    def viewer_count(self) -> int:
        return len(self._viewers)

    def add(self) -> Viewer:
        viewer = Viewer(self, self._buffer_frames, self._policy)
        self._viewers.add(viewer)
        self.room = True
        if self.header is not None:
            viewer.offer(self.header, time.monotonic())
        if self._policy is DropPolicy.TO_KEYFRAME:
            self.keyframe_wanted()
        if self._on_demand is not None:
            self._on_demand(len(self._viewers))
        return viewer

    def remove(self, viewer: Viewer) -> None:
        if viewer in self._viewers:
            self._viewers.discard(viewer)
            self.dropped_total += viewer.dropped
            if self._on_demand is not None:
                self._on_demand(len(self._viewers))

    def keyframe_wanted(self) -> None:
        if self._on_keyframe_wanted is not None:
            self._on_keyframe_wanted()

    def publish(self, frame: EncodedFrame) -> None:
        """Called on the event loop for every encoded frame; never waits for anyone."""
        now = time.monotonic()
        if frame.header:
            self.header = frame
        else:
            self.latest = frame
            self.published += 1
            self.rate.add(now)
        room = False
        for viewer in list(self._viewers):
            viewer.offer(frame, now)
            if viewer.stalled_for(now) > self._stall_timeout:
                self.disconnected_slow += 1
                viewer.close("too slow")
                if viewer.task is not None:
                    viewer.task.cancel()
            room = room or viewer.has_room()
        self.room = room

    def dropped_now(self) -> int:
        return self.dropped_total + sum(viewer.dropped for viewer in self._viewers)

    def close_all(self, reason: str = "shutdown") -> None:
        for viewer in list(self._viewers):
            viewer.close(reason)
