"""One thread per camera: connect, read, decode, normalise, publish; reconnect forever.

The thread runs a plain synchronous loop and knows nothing of asyncio (STYLE.md, after
Home Assistant's stream worker). It talks to the rest of Vigie through the TileStore
(tiles out), `CameraHealth` (status out) and `attach`/`detach` (demand in).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import av

from ingest.camera.backoff import STABLE_RESET_AFTER, backoff_delay, probe_address, wait_for_return
from ingest.source.decoding import Decoding
from ingest.source.lag import MAX_LAG
from ingest.picture.layout import letterbox
from ingest.picture.normalise import Label, Normaliser, Polygon
from ingest.picture.overlay import TextRenderer
from ingest.redact import Redactor
from ingest.source import Packet, Source, SourceError, SourceSpec, open_source
from ingest.camera.health import CameraHealth, CameraState, CameraStatus
from ingest.camera.picture_health import ALL_CHECKS, Condition, PictureJudge
from ingest.camera.picture_watch import PictureWatch
from ingest.camera.references import ReferenceStore
from ingest.camera.sight import SightMaker
from ingest.picture.tiles import Size, Tile, TileStore

logger = logging.getLogger(__name__)

STILL_BOX: Size = (960, 540)     # stills are kept at most this big (memory per camera)
STILL_INTERVAL = 1.0             # seconds between stills while decoding in full
SKIP_LOG_INTERVAL = 60.0         # seconds between "fell behind" warnings, per camera


@dataclass(frozen=True)
class CameraInfo:
    id: str
    name: str
    commune_id: str
    commune_name: str
    stale_after: float = 5.0
    masks: tuple[Polygon, ...] = ()
    # Short of CPU, cameras of a lower priority are reduced first (ingest/wall/governor.py).
    priority: int = 0
    # Picture health (ingest/camera/picture_health.py): what this camera is judged on (a
    # PTZ dome that moves on purpose: frozen, black, covered only), and how keenly.
    health_checks: frozenset[Condition] = field(default=ALL_CHECKS)
    health_sensitivity: float = 1.0


class StalledError(Exception):
    pass


PacketTap = Callable[[av.Packet, "av.video.stream.VideoStream"], None]


class TileRequest:
    """A consumer's wish for tiles of one size at one rate; handed back to `detach`.
    `rank`: the cell's place on its wall (0 first), for ingest/wall/governor.py."""

    def __init__(self, normaliser: Normaliser, rank: int = 0) -> None:
        self.normaliser = normaliser
        self.rank = rank

    @property
    def size(self) -> Size:
        return self.normaliser.size


class CameraWorker:
    def __init__(self, camera: CameraInfo, spec: SourceSpec, store: TileStore,
                 redactor: Redactor, references: ReferenceStore | None = None,
                 judge_picture: bool = True) -> None:
        """`judge_picture`: False for a second worker of the same camera (its main stream
        for a single-camera view), whose picture the first one already judges."""
        self.camera = camera
        self._spec = spec
        self.store = store
        self._redactor = redactor
        self.health = CameraHealth(camera.stale_after)
        self._label = Label(camera.name, camera.commune_name)
        self._text = TextRenderer()
        self._requests: tuple[TileRequest, ...] = ()
        self._taps: tuple[PacketTap, ...] = ()
        self._requests_lock = threading.Lock()
        self._stop = threading.Event()
        # Set while someone needs this camera's packets as they come (a packet tap, or
        # tiles decoded in full): its source then reads the camera as data comes, not in
        # bursts (ingest/source/rtsp/source.py). See _update_live.
        self._live = threading.Event()
        # Set by ingest/wall/governor.py while the server is short of CPU: keyframes only.
        self._reduced = False
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.id}", daemon=True)
        self._still: Tile | None = None
        self._still_normaliser: Normaliser | None = None
        self._last_still = 0.0
        self._last_skip_log = -SKIP_LOG_INTERVAL
        self._picture = PictureWatch(camera.id, PictureJudge(camera.health_checks, camera.health_sensitivity,
                                                             SightMaker(camera.masks)),
                                     references, self.health.set_picture) if judge_picture else None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread (call from an executor, never on the event loop)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def status(self) -> CameraStatus:
        return self.health.status()

    def accept_reference(self) -> Future[float | None]:
        """The operator accepts the current view as the picture's reference (see
        PictureWatch.accept_reference); None at once for a camera not judged here."""
        if self._picture is None:
            done: Future[float | None] = Future()
            done.set_result(None)
            return done
        return self._picture.accept_reference()

    @property
    def still(self) -> Tile | None:
        """The latest full-frame still (no overlay), refreshed even when nobody watches."""
        return self._still

    # -- demand ------------------------------------------------------------------------------
    def attach(self, size: Size, fps: float, overlay: bool = True, rank: int = 0) -> TileRequest:
        """Ask for tiles of `size` at `fps`; until a fresh frame, a tile made from the still.
        `rank` is the cell's place on its wall (0 for the first, or a view of its own)."""
        normaliser = Normaliser(self.camera.id, size, fps, self._label, self.camera.masks,
                                overlay=overlay, text=TextRenderer())
        still = self._still
        if still is not None:
            frame = av.VideoFrame.from_ndarray(still.i420, format="yuvj420p")
            tile = normaliser.normalise(frame, still.captured_at, still.captured_wall)
            self.store.publish(tile)
        request = TileRequest(normaliser, rank)
        # Ownership of the normaliser passes to the worker thread from here on.
        with self._requests_lock:
            self._requests = (*self._requests, request)
            self._update_live()  # a source waiting between idle reads goes on at once
        return request

    def detach(self, request: TileRequest) -> None:
        with self._requests_lock:
            self._requests = tuple(r for r in self._requests if r is not request)
            if all(r.size != request.size for r in self._requests):
                self.store.discard(self.camera.id, request.size)
            self._update_live()

    def add_tap(self, tap: "PacketTap") -> None:
        """Have `tap(packet, stream)` called, in this worker's thread, for every compressed
        packet (remuxing to the browser without decoding)."""
        with self._requests_lock:
            self._taps = (*self._taps, tap)
            self._update_live()

    def remove_tap(self, tap: "PacketTap") -> None:
        with self._requests_lock:
            self._taps = tuple(t for t in self._taps if t is not tap)
            self._update_live()

    def _update_live(self) -> None:
        """(Under the requests lock.) Whether the source reads the camera as data comes:
        for a remux (a viewer of its own stream), or tiles decoded in full. Idle, or reduced
        with no remux, it reads in bulk (ingest/source/rtsp/source.py)."""
        if self._taps or (self._requests and not self._reduced):
            self._live.set()
        else:
            self._live.clear()

    def _decoding(self) -> Decoding:
        if not self._requests:
            return Decoding.IDLE
        return Decoding.REDUCED if self._reduced else Decoding.FULL

    # -- load shedding (ingest/wall/governor.py) ----------------------------------------------------
    @property
    def reduced(self) -> bool:
        return self._reduced

    def set_reduced(self, reduced: bool) -> None:
        """Keyframes only (True) or every frame (False) while watched; takes effect at the
        next packet. Back to every frame, the decoder catches up from the last keyframe."""
        with self._requests_lock:
            self._reduced = reduced
            self._update_live()

    def prominence(self) -> tuple[int, int] | None:
        """How prominently the camera is shown: (its largest tile's pixels, minus its best
        cell rank); None while nobody watches its tiles. The governor reduces the least
        prominent first."""
        requests = self._requests
        if not requests:
            return None
        return (max(r.size[0] * r.size[1] for r in requests), -min(r.rank for r in requests))

    # -- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        if self._picture is not None:
            try:
                self._picture.restore()
            except Exception:  # noqa: BLE001 - the camera runs without its kept reference
                logger.exception("camera %s: picture references not restored", self.camera.id)
        while not self._stop.is_set():
            live_since: float | None = None
            failure: SourceError | None = None
            try:
                source = open_source(self._spec)
            except SourceError as error:
                reason, failure = self._redactor.redact(error.reason), error
            except Exception as error:  # noqa: BLE001 - a bad camera never kills its thread
                reason = self._redactor.redact(f"{type(error).__name__}: {error}")
                logger.exception("camera %s: unexpected error while opening", self.camera.id)
            else:
                self.health.connected(source.codec)
                logger.info("camera %s: connected (%s)", self.camera.id, source.codec)
                try:
                    live_since = self._read(source)
                    reason = "stream ended"
                except SourceError as error:
                    reason, failure = self._redactor.redact(error.reason), error
                except StalledError as error:
                    reason, failure = str(error), SourceError(str(error), timed_out=True)
                except Exception as error:  # noqa: BLE001
                    reason = self._redactor.redact(f"{type(error).__name__}: {error}")
                    logger.exception("camera %s: unexpected error while reading", self.camera.id)
                finally:
                    try:
                        source.close()
                    except Exception:  # noqa: BLE001 - closing a broken stream may fail too
                        pass
            if self._stop.is_set():
                break
            if live_since is not None and time.monotonic() - live_since >= STABLE_RESET_AFTER:
                failures = 0
            failures += 1
            delay = backoff_delay(failures)
            # Silence from a camera that was live is a stall (hung camera, dead link); it
            # stays one while reconnects fail, until the camera answers with a refusal.
            previous = self.health.status().state
            stalled = failure is not None and (
                (previous == CameraState.LIVE and failure.timed_out)
                or (previous == CameraState.STALLED and not failure.definitive))
            self.health.set_state(CameraState.STALLED if stalled else CameraState.OFFLINE, reason)
            logger.warning("camera %s: %s; reconnecting in %.0f s", self.camera.id, reason, delay)
            self.health.reconnected(time.monotonic())
            if wait_for_return(self._stop, delay, probe_address(self._spec.url)):
                logger.info("camera %s: its port accepts again; reconnecting now", self.camera.id)
        logger.info("camera %s: worker stopped", self.camera.id)

    def _read(self, source: Source) -> float | None:
        """Read until the stream ends; returns when frames first arrived (monotonic)."""
        opened = time.monotonic()
        live_since: float | None = None
        last_frame = last_packet = opened
        stale_after = self.camera.stale_after
        decoding = False  # in full (tiles wanted, not reduced)
        skips = 0
        for packet in source.packets(self._decoding, self._live):
            now = time.monotonic()
            if self._stop.is_set():
                break
            if (self._decoding() is Decoding.FULL) != decoding:
                decoding = not decoding
                if decoding:
                    # Decoding in full starts now; while idle only keyframes were decoded,
                    # so the last frame's age says nothing about garbage.
                    last_frame = now
            if now - last_packet > stale_after and not getattr(source, "whole_units", False):
                # Data after a long silence: readers already see a stall, and what a
                # demuxer flushes after a timeout is often corrupt. Start afresh.
                raise StalledError(f"no data for {now - last_packet:.0f} s")
            last_packet = now
            self.health.packet(now, packet.size)
            if packet.raw is not None and self._taps:
                self._feed_taps(packet)
            if packet.frame is None:
                if packet.skipped:
                    # Behind the camera, skipping to a keyframe on purpose: not garbage.
                    last_frame = now
                    skips = self._count_lag_skips(source, skips, now)
                    continue
                if decoding and now - last_frame > stale_after:
                    # Packets but no pictures while decoding everything: garbage.
                    raise StalledError(f"no decodable frame for {now - last_frame:.0f} s")
                continue
            last_frame = now
            if live_since is None:
                live_since = now
            self._on_frame(packet, now, source.sample_aspect(), source.behind)
        return live_since

    def _count_lag_skips(self, source: Source, counted: int, now: float) -> int:
        """Record the source's new skips to a keyframe (decoding fell behind the camera: the
        machine is short of CPU); log at most once a minute per camera."""
        skips = source.lag_skips
        if skips > counted:
            self.health.lag_skipped(skips - counted)
            if now - self._last_skip_log >= SKIP_LOG_INTERVAL:
                self._last_skip_log = now
                logger.warning("camera %s: decoding fell over %.0f s behind the camera with "
                               "its data waiting unread (this server is short of CPU); "
                               "skipping to its next keyframe to stay live",
                               self.camera.id, MAX_LAG)
        return skips

    def _feed_taps(self, packet: Packet) -> None:
        for tap in self._taps:
            try:
                tap(packet.raw, packet.stream)
            except Exception:  # noqa: BLE001 - a broken remux must not stop the camera
                logger.exception("camera %s: packet tap failed; removing it", self.camera.id)
                self.remove_tap(tap)

    def _on_frame(self, packet: Packet, now: float, sample_aspect: float,
                  behind: float | None = None) -> None:
        frame = packet.frame
        wall = time.time()
        requests = self._requests
        self.health.frame(now, wall, frame.width, frame.height, self._decoding(), behind)
        # The tile's clock tells when the picture was taken, as near as we know: a picture
        # that came 3 s late (a slow link, a busy server) must not show the current time.
        taken = wall - (behind or 0.0)
        reduced = self._reduced
        for request in requests:
            if request.normaliser.gate.admit(now):
                self.store.publish(request.normaliser.normalise(frame, now, taken, sample_aspect,
                                                                reduced))
        if not requests or now - self._last_still >= STILL_INTERVAL:
            self._last_still = now
            self._still = self._make_still(frame, now, taken, sample_aspect)
        if self._picture is not None and self._picture.due(now):
            try:
                self._picture.check(frame, now, taken)
            except Exception:  # noqa: BLE001 - a judging failure never costs the camera its stream
                logger.exception("camera %s: picture check failed; picture health stops for this camera",
                                 self.camera.id)
                self._picture = None

    def _make_still(self, frame: av.VideoFrame, now: float, wall: float,
                    sample_aspect: float) -> Tile:
        """A still at square pixels: its tiles need no aspect correction afterwards."""
        fit = letterbox(frame.width, frame.height, *STILL_BOX, sample_aspect=sample_aspect)
        size = (min(fit.width, frame.width // 2 * 2 or 2), min(fit.height, frame.height // 2 * 2 or 2))
        if self._still_normaliser is None or self._still_normaliser.size != size:
            self._still_normaliser = Normaliser(self.camera.id, size, 0, self._label,
                                                self.camera.masks, overlay=False, text=self._text,
                                                reuse_buffers=False)
        return self._still_normaliser.normalise(frame, now, wall, sample_aspect)


def stop_workers(workers: Sequence[CameraWorker], timeout: float = 5.0) -> list[str]:
    """Stop and join workers (blocking: run in an executor). Returns ids still running."""
    for worker in workers:
        worker.request_stop()
    deadline = time.monotonic() + timeout
    stuck = []
    for worker in workers:
        if not worker.join(max(0.0, deadline - time.monotonic())):
            stuck.append(worker.camera.id)
    return stuck



