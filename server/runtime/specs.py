"""What a camera's config section makes for the ingest side: the worker's CameraInfo (names,
masks, priority, picture-health checks) and the source's SourceSpec (URL, credentials)."""

from __future__ import annotations

from ingest.camera.picture_health import Condition
from ingest.camera.worker import CameraInfo
from ingest.source import SourceSpec
from server.config import Camera, VigieConfig

PRIORITIES = {"low": -1, "normal": 0, "high": 1}  # CameraInfo.priority


def camera_info(config: VigieConfig, camera: Camera) -> CameraInfo:
    commune = config.commune(camera.commune)
    return CameraInfo(camera.id, camera.name, camera.commune,
                      commune.name if commune else camera.commune, camera.stale_after,
                      masks=tuple(camera.privacy_masks), priority=PRIORITIES[camera.priority],
                      health_checks=frozenset(Condition(c) for c in camera.health.checks),
                      health_sensitivity=camera.health.sensitivity)


def source_spec(camera: Camera, url: str) -> SourceSpec:
    return SourceSpec(url=url, username=camera.username, password=camera.password(),
                      transport=camera.transport, open_timeout=camera.open_timeout,
                      read_timeout=camera.stale_after)
