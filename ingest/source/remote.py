"""A camera pulled by another node of a cluster, read from what that node relays (URL
`relay://CAMERA_ID`): its access units, as the owner received them, decoded here like an
RTSP camera's (ingest/source/rtsp/source.py, with this reader in place of its client), so
workers, compositors and outputs do not change. Privacy masks apply as the tiles are made.

The cluster (server/cluster/) feeds the units in from its event loop through `RelayFeeds`;
a worker's thread takes them out. Each camera's queue is bounded: a worker that falls
behind loses units (and its decoder restarts at the next keyframe), never memory.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from ingest.source.base import Packet, Source, SourceError, SourceSpec, register_scheme
from ingest.source.decoding import Decoding
from ingest.source.rtsp.rtp import AccessUnit
from ingest.source.rtsp.source import RtspSource

QUEUE_UNITS = 120  # about 8 s of a 15 fps camera
CLOCK_RATE = 90_000


@dataclass(frozen=True)
class RelayedUnit:
    codec: str          # FFmpeg's decoder name: h264 | hevc
    unit: AccessUnit    # timestamp in 90 kHz ticks
    number: int = 0     # the owner's count: a gap means a unit was lost


class RelayFeeds:
    """Where relayed units wait for the worker that reads them; and what each camera's
    reader needs (all of its units, or keyframes only), for the cluster to ask its owner."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, queue.Queue[RelayedUnit]] = {}
        self._full: dict[str, bool] = {}
        self.received: dict[str, int] = {}  # units relayed to this node, per camera
        self._cancelled: set[str] = set()
        # Called (from a worker's thread) when a camera's reader starts or stops: the
        # cluster subscribes to it then.
        self.on_change: Callable[[str, bool], None] | None = None

    def open(self, camera_id: str) -> queue.Queue[RelayedUnit]:
        with self._lock:
            feed: queue.Queue[RelayedUnit] = queue.Queue(QUEUE_UNITS)
            self._queues[camera_id] = feed
            self._cancelled.discard(camera_id)
        if self.on_change is not None:
            self.on_change(camera_id, True)
        return feed

    def close(self, camera_id: str, feed: queue.Queue[RelayedUnit]) -> None:
        with self._lock:
            if self._queues.get(camera_id) is not feed:
                return
            del self._queues[camera_id]
            self._full.pop(camera_id, None)
        if self.on_change is not None:
            self.on_change(camera_id, False)

    def put(self, camera_id: str, relayed: RelayedUnit) -> bool:
        """A unit from the owner (the cluster's loop); False if nobody reads it or it
        had no room."""
        self.received[camera_id] = self.received.get(camera_id, 0) + 1
        feed = self._queues.get(camera_id)
        if feed is None:
            return False
        try:
            feed.put_nowait(relayed)
            return True
        except queue.Full:
            return False

    def cancel(self, camera_id: str) -> None:
        """The camera's relay worker is being stopped: its reader stops waiting now."""
        with self._lock:
            self._cancelled.add(camera_id)

    def cancelled(self, camera_id: str) -> bool:
        return camera_id in self._cancelled

    def set_full(self, camera_id: str, full: bool) -> None:
        self._full[camera_id] = full

    def wanted_in_full(self) -> list[str]:
        """Cameras whose reader here needs every unit (someone watches them)."""
        return [camera_id for camera_id, full in list(self._full.items()) if full]

    def cameras(self) -> list[str]:
        return list(self._queues)


FEEDS = RelayFeeds()  # one per process: the cluster feeds it, relay sources read it


class _Track:
    clock_rate = CLOCK_RATE


class _Codec:
    def __init__(self, codec: str) -> None:
        self.codec = codec


class RelayReader:
    """Stands in for the RTSP client of RtspSource: units from the owner's relay."""

    def __init__(self, camera_id: str, feeds: RelayFeeds, open_timeout: float) -> None:
        self.camera_id = camera_id
        self._feeds = feeds
        self._open_timeout = open_timeout
        self._queue = feeds.open(camera_id)
        self._first: RelayedUnit | None = None
        self.track = _Track()
        self.depacketiser: _Codec | None = None
        self.drained = True
        self._last_number: int | None = None
        self._waiting_keyframe = True  # a reader starts at a keyframe
        self.lost = 0  # gaps seen in the owner's numbering

    def open(self) -> None:
        """Wait for the first unit (a keyframe): the codec is known from it. Cancelled at
        once when the worker stops (a relay is silent while its camera changes owner)."""
        deadline = time.monotonic() + self._open_timeout
        while self._first is None or not self._first.unit.keyframe:
            if self._feeds.cancelled(self.camera_id):
                raise SourceError("stopped")
            if time.monotonic() > deadline:
                raise SourceError("nothing relayed by the camera's node")
            try:
                self._first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
        self._last_number = self._first.number
        self._waiting_keyframe = False
        self.depacketiser = _Codec(self._first.codec)

    def read(self) -> list[AccessUnit] | None:
        if self._feeds.cancelled(self.camera_id):
            return None  # the worker stops
        relayed: list[RelayedUnit] = []
        if self._first is not None:
            relayed.append(self._first)
            self._first = None
            self._last_number = None  # the first unit is its own start
        try:
            if not relayed:
                relayed.append(self._queue.get(timeout=0.2))
            while True:
                relayed.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        self.drained = True
        return [item.unit for item in relayed if self._follows(item)]

    def _follows(self, item: RelayedUnit) -> bool:
        """Whether a unit can be decoded: after a lost one, only from the next keyframe."""
        lost = self._last_number is not None and item.number != self._last_number + 1
        self._last_number = item.number
        if lost:
            self.lost += 1
            self._waiting_keyframe = True
        if self._waiting_keyframe and not item.unit.keyframe:
            return False
        self._waiting_keyframe = False
        return True

    def waiting(self) -> int:
        return 0  # nothing waits in a socket of ours: the relay's queue is bounded apart

    def close(self) -> None:
        self._feeds.close(self.camera_id, self._queue)


class RelaySource(RtspSource):
    """A relayed camera, decoded as an RTSP camera is."""

    # Units arrive whole, and a new owner starts with a keyframe: a silence (the owner
    # died, another takes over) leaves nothing corrupt to start afresh from.
    whole_units = True

    def __init__(self, spec: SourceSpec, feeds: RelayFeeds = FEEDS) -> None:
        camera_id = urlsplit(spec.url).netloc
        self._camera_id = camera_id
        self._feeds = feeds
        reader = RelayReader(camera_id, feeds, spec.open_timeout)
        try:
            super().__init__(spec, client=reader)  # type: ignore[arg-type]
        except BaseException:
            reader.close()
            raise

    def packets(self, decoding: Callable[[], Decoding],
                live: threading.Event | None = None) -> Iterator[Packet]:
        live = live or threading.Event()

        def watching() -> Decoding:
            mode = decoding()
            self._feeds.set_full(self._camera_id, mode is Decoding.FULL or live.is_set())
            return mode
        return super().packets(watching, live)


def open_relay(spec: SourceSpec) -> Source:
    return RelaySource(spec)


register_scheme("relay", open_relay)
