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


class RelayFeeds:
    """Where relayed units wait for the worker that reads them; and what each camera's
    reader needs (all of its units, or keyframes only), for the cluster to ask its owner."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, queue.Queue[RelayedUnit]] = {}
        self._full: dict[str, bool] = {}
        # Called (from a worker's thread) when a camera's reader starts or stops: the
        # cluster subscribes to it then.
        self.on_change: Callable[[str, bool], None] | None = None

    def open(self, camera_id: str) -> queue.Queue[RelayedUnit]:
        with self._lock:
            feed: queue.Queue[RelayedUnit] = queue.Queue(QUEUE_UNITS)
            self._queues[camera_id] = feed
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
        feed = self._queues.get(camera_id)
        if feed is None:
            return False
        try:
            feed.put_nowait(relayed)
            return True
        except queue.Full:
            return False

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

    def open(self) -> None:
        try:
            self._first = self._queue.get(timeout=self._open_timeout)
        except queue.Empty:
            raise SourceError("nothing relayed by the camera's node") from None
        self.depacketiser = _Codec(self._first.codec)

    def read(self) -> list[AccessUnit] | None:
        units: list[AccessUnit] = []
        if self._first is not None:
            units.append(self._first.unit)
            self._first = None
        try:
            if not units:
                units.append(self._queue.get(timeout=0.2).unit)
            while True:
                units.append(self._queue.get_nowait().unit)
        except queue.Empty:
            pass
        self.drained = True
        return units

    def waiting(self) -> int:
        return 0  # nothing waits in a socket of ours: the relay's queue is bounded apart

    def close(self) -> None:
        self._feeds.close(self.camera_id, self._queue)


class RelaySource(RtspSource):
    """A relayed camera, decoded as an RTSP camera is."""

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
