"""The running data plane built from a config: workers, tile store, walls, live streams."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ingest.wall.compositor import Compositor, WallSpec
from ingest.wall.governor import Governor
from ingest.picture.layout import CellSpec, grid_cells
from ingest.redact import Redactor
from ingest.source import SourceSpec
from ingest.source.remote import FEEDS as RELAYS
from ingest.picture.tiles import TileStore
from ingest.camera.references import ReferenceStore
from ingest.camera.worker import CameraWorker, stop_workers
from server.config import Camera, VigieConfig
from server.runtime.looplag import LoopLag
from server.runtime.specs import camera_info, source_spec
from server.runtime.walls import all_walls, wall_communes
from server.runtime.changes import CameraDiff, ReloadSummary, diff_cameras
from server.runtime.streams import LiveStream, RemuxStream, Stream, TapStream, UnitStream
from server.runtime.tours import Tour

logger = logging.getLogger(__name__)

CAMERA_VIEW_DEFAULT = (1280, 720)
CAMERA_VIEW_MAX = (1920, 1080)
CAMERA_VIEW_FPS = 25.0  # the most a single view sends; it follows the camera below that


@dataclass(frozen=True)
class MosaicKey:
    """An ad-hoc mosaic: identical requests share one compositor."""

    cameras: tuple[str, ...]
    columns: int
    rows: int
    size: tuple[int, int]
    fps: float


class TooManyMosaics(Exception):
    """A new ad-hoc mosaic would pass a limit (the user's, or the server's)."""


class Runtime:
    def __init__(self, config: VigieConfig, redactor: Redactor) -> None:
        self.config = config
        self.redactor = redactor
        self.store = TileStore()
        self.workers: dict[str, CameraWorker] = {}
        self._main_workers: dict[str, CameraWorker] = {}
        self.walls: dict[str, WallSpec] = all_walls(config)
        self.wall_communes: dict[str, frozenset[str]] = wall_communes(config)
        self.camera_communes: dict[str, str] = {camera.id: camera.commune for camera in config.cameras}
        self._wall_streams: dict[str, LiveStream] = {}
        self._camera_streams: dict[str, LiveStream] = {}
        self._mosaic_streams: dict[MosaicKey, LiveStream] = {}
        self._mosaic_users: dict[MosaicKey, Counter[str]] = {}  # views per user, per mosaic
        self.mosaics_elsewhere: Counter[str] = Counter()  # per user, on a cluster's other nodes
        self._tap_streams: dict[tuple[str, str, bool], TapStream] = {}  # (kind, camera, sub)
        self.tours: dict[str, Tour] = {}  # wall id -> running tour (server/api/walls.py runs it)
        # Reduces the least prominent cameras to their keyframes while the machine is short
        # of CPU (ingest/wall/governor.py). It reads the dicts from its thread: whole copies.
        self.loop_lag = LoopLag()  # probed by server/app.py while the app runs
        self.governor = Governor(self.all_workers, self.compositors, loop_lag=self.loop_lag.take)
        self.started = False
        redactor.add(config.secrets())
        # In a cluster, whether this node pulls a camera (set by server/cluster/).
        self.owns: Callable[[str], bool] = (lambda _: False) if config.cluster else (lambda _: True)
        self.worker_started: Callable[[str, CameraWorker], None] | None = None
        # Picture-health references, kept beside the journal (Vigie's state directory).
        self.references = ReferenceStore(config.audit.resolved_path().with_name("vigie-references"),
                                         config.audit.retention_days * 86400)

    def _start_worker(self, camera: Camera) -> None:
        if self.owns(camera.id):
            # Mosaics read the substream when there is one: smaller, cheaper to decode.
            spec = source_spec(camera, camera.substream_url or camera.url)
        else:  # another node of the cluster pulls it: read what it relays
            # Patient: a relay is silent while its camera changes owner (a reconnect would
            # only add its back-off to the wait).
            lease = self.config.cluster.lease_seconds if self.config.cluster else 0.0
            spec = SourceSpec(url=f"relay://{camera.id}", open_timeout=camera.open_timeout + 2 * lease,
                              read_timeout=camera.stale_after + 2 * lease)
        worker = CameraWorker(camera_info(self.config, camera), spec, self.store, self.redactor,
                              references=self.references)
        self.workers[camera.id] = worker
        worker.start()
        if self.worker_started is not None:
            self.worker_started(camera.id, worker)

    async def async_restart_cameras(self, camera_ids: list[str]) -> None:
        """New workers for these cameras, reading them another way (in a cluster: they
        changed owner). Walls and mosaics follow the new workers by themselves (their other
        cells never stop); a camera's own streams are rebuilt or closed."""
        restarted = [c for c in camera_ids if c in self.workers]
        if not restarted:
            return
        diff = CameraDiff(added=[], removed=[], restarted=restarted)
        closing: list[Stream] = [self._tap_streams.pop(key) for key in list(self._tap_streams)
                                 if key[1] in restarted]
        rebuilding = [stream for camera_id, stream in self._camera_streams.items() if camera_id in restarted]
        for stream in closing + rebuilding:
            stream.invalidate()
        await self._async_restart_workers(self.config, diff)
        await asyncio.gather(*(stream.async_close() for stream in closing),
                             *(stream.async_rebuild() for stream in rebuilding))

    def start(self) -> None:
        self.references.purge()
        for camera in self.config.cameras:
            self._start_worker(camera)
        self.governor.start()
        self.started = True
        logger.info("started %d camera workers, %d walls", len(self.workers), len(self.walls))

    def _main_worker(self, camera_id: str) -> CameraWorker:
        """The worker of the main stream, for single-camera views (started on first use)."""
        camera = self.config.camera(camera_id)
        if camera is None or not camera.substream_url or not self.owns(camera_id):
            return self.workers[camera_id]
        worker = self._main_workers.get(camera_id)
        if worker is None:
            # Its tiles go to their own store: same camera id, different stream.
            worker = CameraWorker(camera_info(self.config, camera), source_spec(camera, camera.url),
                                  TileStore(), self.redactor, judge_picture=False)
            self._main_workers[camera_id] = worker
            worker.start()
        return worker

    def wall_stream(self, wall_id: str) -> LiveStream | None:
        stream = self._wall_streams.get(wall_id)
        if stream is None and wall_id in self.walls:
            loop = asyncio.get_running_loop()
            # The spec and workers are looked up when a compositor is built, so that a
            # rebuild after a reload picks up the new layout and restarted cameras.
            stream = LiveStream(f"wall/{wall_id}", lambda deliver, wanted, room: Compositor(
                self.walls[wall_id], self.workers, self.store, deliver, wanted, room), loop)
            self._wall_streams[wall_id] = stream
        return stream

    def camera_stream(self, camera_id: str) -> LiveStream | None:
        stream = self._camera_streams.get(camera_id)
        if stream is None and camera_id in self.workers:
            worker = self._main_worker(camera_id)
            status = worker.status()
            width, height = CAMERA_VIEW_DEFAULT
            if status.width and status.height:
                scale = min(1.0, CAMERA_VIEW_MAX[0] / status.width, CAMERA_VIEW_MAX[1] / status.height)
                width, height = int(status.width * scale) // 2 * 2, int(status.height * scale) // 2 * 2
            spec = WallSpec(f"camera-{camera_id}", worker.camera.name, width, height,
                            CAMERA_VIEW_FPS, 1, 1, (CellSpec(camera_id, 0, 0),), follow_source=True)
            loop = asyncio.get_running_loop()

            def make(deliver, wanted, room) -> Compositor:
                current = self._main_worker(camera_id)
                return Compositor(spec, {camera_id: current}, current.store, deliver, wanted, room)
            stream = LiveStream(f"camera/{camera_id}", make, loop)
            self._camera_streams[camera_id] = stream
        return stream

    def camera_remux_stream(self, camera_id: str) -> RemuxStream | None:
        """The camera's own H.264 in fMP4 without decoding, if it may be sent as it is:
        H.264, no privacy mask (masked pixels are only ever sent re-encoded). Else None."""
        stream = self._tap_stream(camera_id, RemuxStream, {"h264"})
        return stream if isinstance(stream, RemuxStream) else None

    def camera_unit_stream(self, camera_id: str, sub: bool = False) -> UnitStream | None:
        """The camera's own H.264 or H.265 access units for RTSP (its substream's if `sub`),
        if they may be sent as they are (no privacy mask). Else None."""
        stream = self._tap_stream(camera_id, UnitStream, {"h264", "hevc"}, sub)
        return stream if isinstance(stream, UnitStream) else None

    def passthrough_worker(self, camera_id: str, sub: bool = False) -> CameraWorker | None:
        """The worker whose packets a view may take as they are (no privacy mask, a stream
        that is not decoded from pixels we make), started if needed; None if none may."""
        camera = self.config.camera(camera_id)
        if (camera is None or camera.privacy_masks or camera_id not in self.workers
                or (sub and not camera.substream_url)
                or not (camera.substream_url if sub else camera.url).startswith(("rtsp", "file"))):
            return None
        return self.workers[camera_id] if sub else self._main_worker(camera_id)

    def _tap_stream(self, camera_id: str, kind: type[TapStream], codecs: set[str],
                    sub: bool = False) -> TapStream | None:
        worker = self.passthrough_worker(camera_id, sub)
        if worker is None or worker.status().codec not in codecs:
            return None
        key = (kind.__name__, camera_id, sub)
        stream = self._tap_streams.get(key)
        if stream is None or stream.worker is not worker:
            name = f"{'sub' if sub else 'main'}/{camera_id}"
            stream = kind(f"{kind.__name__.removesuffix('Stream').lower()}/{name}", worker,
                          asyncio.get_running_loop())
            self._tap_streams[key] = stream
        return stream

    def wall_cameras(self, wall_id: str) -> list[str]:
        spec = self.walls.get(wall_id)
        return [] if spec is None else [c.camera_id for c in spec.cells if c.camera_id]

    def mosaic(self, key: MosaicKey) -> LiveStream | None:
        """The running mosaic for `key`, if any (a fresh frame of it may serve a snapshot)."""
        return self._mosaic_streams.get(key)

    def acquire_mosaic(self, key: MosaicKey, user: str) -> LiveStream:
        """The mosaic for one more view of `user`, made if needed. A mosaic lives only while
        it has views (and LINGER_SECONDS after its last one). Each user may hold
        `limits.mosaics_per_user` distinct mosaics, the server `limits.mosaics`: beyond
        that TooManyMosaics, and nothing is made."""
        limits = self.config.limits
        users = self._mosaic_users.get(key)
        if users is None or user not in users:
            # A mosaic counts for each user who viewed it until it is gone, lingering
            # included: opening and closing new ones in a loop fills the user's share only.
            held = sum(1 for counts in self._mosaic_users.values() if user in counts)
            if held + self.mosaics_elsewhere[user] >= limits.mosaics_per_user:
                raise TooManyMosaics("too many ad-hoc mosaics open for this user")
        stream = self._mosaic_streams.get(key)
        if stream is None:
            if len(self._mosaic_streams) >= limits.mosaics:
                raise TooManyMosaics("too many ad-hoc mosaics at once; try again later")
            name = "mosaic-" + hashlib.sha256(repr(key).encode()).hexdigest()[:12]
            spec = WallSpec(name, "mosaic", *key.size, key.fps, key.columns, key.rows,
                            tuple(grid_cells(key.columns, key.rows, list(key.cameras))))
            loop = asyncio.get_running_loop()

            def forget() -> None:
                if self._mosaic_streams.get(key) is stream:
                    del self._mosaic_streams[key]
                    self._mosaic_users.pop(key, None)
            stream = LiveStream(f"mosaic/{name}", lambda deliver, wanted, room: Compositor(
                spec, self.workers, self.store, deliver, wanted, room), loop, on_stopped=forget)
            self._mosaic_streams[key] = stream
        self._mosaic_users.setdefault(key, Counter())[user] += 1
        return stream

    def mosaics_held(self) -> dict[str, int]:
        """Distinct mosaics each user holds here (for a cluster's heartbeat)."""
        return dict(Counter(user for counts in self._mosaic_users.values() for user in counts))

    def release_mosaic(self, key: MosaicKey, user: str) -> None:
        """One view of `user` on the mosaic has ended (the stream stops by itself after
        its last viewer)."""
        users = self._mosaic_users.get(key)
        if users is not None and users[user] > 0:
            users[user] -= 1  # kept at 0: still charged to the user while it lingers

    def target_cameras(self, kind: str, target_id: str | MosaicKey) -> tuple[str, ...] | None:
        """The cameras a view of this target shows now; None if the target is gone."""
        if kind == "wall":
            return tuple(self.wall_cameras(target_id)) if target_id in self.walls else None
        if kind == "camera":
            return (target_id,) if target_id in self.camera_communes else None
        if kind == "mosaic" and isinstance(target_id, MosaicKey):
            return target_id.cameras
        return None

    def mosaic_streams(self) -> list[LiveStream]:
        return list(self._mosaic_streams.values())

    def all_workers(self) -> list[CameraWorker]:
        """Every worker, mosaics' then single views' main streams, in configuration order."""
        return [*self.workers.values(), *self._main_workers.values()]

    def compositors(self) -> list[Compositor]:
        return [stream.compositor for streams in (self._wall_streams, self._camera_streams,
                                                  self._mosaic_streams)
                for stream in list(streams.values())]

    def streams(self) -> Iterable[LiveStream]:
        yield from list(self._wall_streams.values())
        yield from list(self._camera_streams.values())
        yield from list(self._mosaic_streams.values())
        yield from list(self._tap_streams.values())

    async def async_apply(self, new: VigieConfig,
                          on_changed: Callable[[], None] | None = None) -> ReloadSummary:
        """Move to a new config: restart only the cameras that changed; walls whose layout
        or cameras changed get a new compositor while their viewers stay connected.

        `on_changed` runs as soon as the new config is in place, before anything of the
        old one can reach a viewer again (the views' re-check: a camera moved to another
        commune must stop reaching the first commune's police at once)."""
        diff = diff_cameras(self.config, new)
        walls_changed = self._switch_config(new)  # synchronously: scope is judged on it now
        closing, rebuilding = self._streams_changed(diff, walls_changed)
        for stream in closing + rebuilding:
            stream.invalidate()  # nothing the old cameras or layout made goes out any more
        if on_changed is not None:
            on_changed()
        await self._async_restart_workers(new, diff)
        self._streams_made_meanwhile(diff, closing, rebuilding)
        await asyncio.gather(*(stream.async_close() for stream in closing),
                             *(stream.async_rebuild() for stream in rebuilding))
        summary = ReloadSummary(diff.added, diff.removed, diff.restarted, walls_changed)
        logger.info("config reloaded: %s", summary.as_dict())
        return summary

    def _switch_config(self, new: VigieConfig) -> list[str]:
        """Put the new config in place; returns the walls whose spec changed."""
        old_walls = self.walls
        self.config = new
        self.walls = all_walls(new)
        self.wall_communes = wall_communes(new)
        self.camera_communes = {camera.id: camera.commune for camera in new.cameras}
        return sorted(wall_id for wall_id in set(old_walls) | set(self.walls)
                      if old_walls.get(wall_id) != self.walls.get(wall_id))

    def _streams_changed(self, diff: CameraDiff,
                         walls_changed: list[str]) -> tuple[list[Stream], list[LiveStream]]:
        """Streams to close (their wall or a camera is gone) and to rebuild (what they show
        changed), taken out of the registries for those closing."""
        touched = diff.touched
        closing: list[Stream] = []
        rebuilding: list[LiveStream] = []
        for wall_id, stream in list(self._wall_streams.items()):
            if wall_id not in self.walls:
                closing.append(self._wall_streams.pop(wall_id))
            elif wall_id in walls_changed or touched & set(self.wall_cameras(wall_id)):
                rebuilding.append(stream)
        for camera_id, stream in list(self._camera_streams.items()):
            if camera_id in diff.removed:
                closing.append(self._camera_streams.pop(camera_id))
            elif camera_id in diff.restarted:
                rebuilding.append(stream)
        closing += [self._tap_streams.pop(key) for key in list(self._tap_streams) if key[1] in touched]
        for key, stream in list(self._mosaic_streams.items()):
            if set(diff.removed) & set(key.cameras):
                closing.append(self._mosaic_streams.pop(key))
                self._mosaic_users.pop(key, None)
            elif touched & set(key.cameras):
                rebuilding.append(stream)
        return closing, rebuilding

    async def _async_restart_workers(self, new: VigieConfig, diff: CameraDiff) -> None:
        """New cameras start at once; changed ones once their old worker has stopped (two
        connections to one camera may be refused). Meanwhile they have no worker: views
        of them answer 503 ("restarting"), walls show them as NO SIGNAL."""
        self.redactor.add(new.secrets())
        for camera in new.cameras:
            if camera.id in diff.added:
                self._start_worker(camera)
        stopping = [self.workers.pop(cid) for cid in diff.removed + diff.restarted]
        for worker in stopping:
            worker.request_stop()  # first: a cancelled relay is then no failure to report
        for cid in diff.removed + diff.restarted:
            RELAYS.cancel(cid)  # a relay worker waiting for its owner stops at once
        stopping += [self._main_workers.pop(cid) for cid in diff.removed + diff.restarted
                     if cid in self._main_workers]
        await asyncio.get_running_loop().run_in_executor(None, stop_workers, stopping)
        for cid in diff.removed + diff.restarted:
            self.store.forget(cid)
        for camera in new.cameras:
            if camera.id in diff.restarted:
                self._start_worker(camera)

    def _streams_made_meanwhile(self, diff: CameraDiff, closing: list[Stream],
                                rebuilding: list[LiveStream]) -> None:
        """Streams made while the cameras restarted hold no worker for them: rebuilt too."""
        fresh = diff.touched | set(diff.added)
        for wall_id, stream in self._wall_streams.items():
            if stream not in rebuilding and fresh & set(self.wall_cameras(wall_id)):
                rebuilding.append(stream)
        for camera_id, stream in self._camera_streams.items():
            if stream not in rebuilding and camera_id in fresh:
                rebuilding.append(stream)
        for key, stream in self._mosaic_streams.items():
            if stream not in rebuilding and fresh & set(key.cameras):
                rebuilding.append(stream)
        for key in [key for key in self._tap_streams if key[1] in fresh]:
            closing.append(self._tap_streams.pop(key))  # on a worker now stopped

    async def async_stop(self) -> list[str]:
        """Close viewers, stop compositors, join worker threads. Returns stuck thread names."""
        await asyncio.gather(*(stream.async_close() for stream in self.streams()))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.governor.stop)
        workers = self.all_workers()
        for worker in workers:
            worker.request_stop()
            RELAYS.cancel(worker.camera.id)  # relay workers waiting for an owner stop at once
        stuck = await loop.run_in_executor(None, stop_workers, workers)
        if stuck:
            logger.warning("camera threads still blocked at shutdown: %s", ", ".join(stuck))
        return stuck
