"""The running data plane built from a config: workers, tile store, walls, live streams."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from ingest.compositor import Compositor, WallSpec
from ingest.layout import CellSpec
from ingest.redact import Redactor
from ingest.sources import SourceSpec
from ingest.tiles import TileStore
from ingest.worker import CameraInfo, CameraWorker, stop_workers
from server.config import Camera, VigieConfig, Wall
from server.streams import LiveStream

logger = logging.getLogger(__name__)

CAMERA_VIEW_DEFAULT = (1280, 720)
CAMERA_VIEW_MAX = (1920, 1080)
CAMERA_VIEW_FPS = 15.0


def wall_spec(wall: Wall) -> WallSpec:
    cells = tuple(CellSpec(cell.camera, cell.row, cell.column, cell.rows, cell.columns)
                  for cell in wall.resolved_cells())
    return WallSpec(wall.id, wall.name, wall.width, wall.height, wall.fps,
                    wall.columns, wall.rows, cells)


def camera_info(config: VigieConfig, camera: Camera) -> CameraInfo:
    commune = config.commune(camera.commune)
    return CameraInfo(camera.id, camera.name, camera.commune,
                      commune.name if commune else camera.commune, camera.stale_after)


def source_spec(camera: Camera, url: str) -> SourceSpec:
    return SourceSpec(url=url, username=camera.username, password=camera.password(),
                      transport=camera.transport, open_timeout=camera.open_timeout,
                      read_timeout=camera.stale_after)


class Runtime:
    def __init__(self, config: VigieConfig, redactor: Redactor) -> None:
        self.config = config
        self.redactor = redactor
        self.store = TileStore()
        self.workers: dict[str, CameraWorker] = {}
        self._main_workers: dict[str, CameraWorker] = {}
        self.walls: dict[str, WallSpec] = {wall.id: wall_spec(wall) for wall in config.walls}
        self._wall_streams: dict[str, LiveStream] = {}
        self._camera_streams: dict[str, LiveStream] = {}
        self.started = False
        redactor.add(secret for camera in config.cameras if (secret := camera.password()))

    def start(self) -> None:
        for camera in self.config.cameras:
            # Mosaics read the substream when there is one: smaller, cheaper to decode.
            url = camera.substream_url or camera.url
            worker = CameraWorker(camera_info(self.config, camera), source_spec(camera, url),
                                  self.store, self.redactor)
            self.workers[camera.id] = worker
            worker.start()
        self.started = True
        logger.info("started %d camera workers, %d walls", len(self.workers), len(self.walls))

    def _main_worker(self, camera_id: str) -> CameraWorker:
        """The worker of the main stream, for single-camera views (started on first use)."""
        camera = self.config.camera(camera_id)
        if camera is None or not camera.substream_url:
            return self.workers[camera_id]
        worker = self._main_workers.get(camera_id)
        if worker is None:
            # Its tiles go to their own store: same camera id, different stream.
            worker = CameraWorker(camera_info(self.config, camera), source_spec(camera, camera.url),
                                  TileStore(), self.redactor)
            self._main_workers[camera_id] = worker
            worker.start()
        return worker

    def wall_stream(self, wall_id: str) -> LiveStream | None:
        stream = self._wall_streams.get(wall_id)
        spec = self.walls.get(wall_id)
        if stream is None and spec is not None:
            loop = asyncio.get_running_loop()
            stream = LiveStream(f"wall/{wall_id}", lambda deliver: Compositor(
                spec, self.workers, self.store, deliver), loop)
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
            fps = min(30.0, max(1.0, round(status.input_fps) or CAMERA_VIEW_FPS))
            spec = WallSpec(f"camera-{camera_id}", worker.camera.name, width, height, fps, 1, 1,
                            (CellSpec(camera_id, 0, 0),))
            store = worker.store
            loop = asyncio.get_running_loop()
            stream = LiveStream(f"camera/{camera_id}", lambda deliver: Compositor(
                spec, {camera_id: worker}, store, deliver), loop)
            self._camera_streams[camera_id] = stream
        return stream

    def streams(self) -> Iterable[LiveStream]:
        yield from self._wall_streams.values()
        yield from self._camera_streams.values()

    async def async_stop(self) -> list[str]:
        """Close viewers, stop compositors, join worker threads. Returns stuck thread names."""
        await asyncio.gather(*(stream.async_close() for stream in self.streams()))
        workers = [*self.workers.values(), *self._main_workers.values()]
        loop = asyncio.get_running_loop()
        stuck = await loop.run_in_executor(None, stop_workers, workers)
        if stuck:
            logger.warning("camera threads still blocked at shutdown: %s", ", ".join(stuck))
        return stuck
