"""What a new config changes, worked out without touching anything (pure): which cameras
are added, removed or restarted, and what a reload reports."""

from __future__ import annotations

from dataclasses import dataclass

from server.config import Camera, VigieConfig


@dataclass(frozen=True)
class ReloadSummary:
    added: list[str]
    removed: list[str]
    restarted: list[str]
    walls_changed: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        return {"cameras_added": self.added, "cameras_removed": self.removed,
                "cameras_restarted": self.restarted, "walls_changed": self.walls_changed}


def _camera_key(config: VigieConfig, camera: Camera) -> tuple:
    """What makes a worker: the camera's settings (password included) and its labels."""
    commune = config.commune(camera.commune)
    return (camera, commune.name if commune else None)


@dataclass(frozen=True)
class CameraDiff:
    added: list[str]
    removed: list[str]
    restarted: list[str]  # settings or labels changed: a new worker

    @property
    def touched(self) -> set[str]:
        """Cameras whose running worker stops."""
        return set(self.removed) | set(self.restarted)


def diff_cameras(old: VigieConfig, new: VigieConfig) -> CameraDiff:
    old_keys = {c.id: _camera_key(old, c) for c in old.cameras}
    new_keys = {c.id: _camera_key(new, c) for c in new.cameras}
    return CameraDiff(
        added=[cid for cid in new_keys if cid not in old_keys],
        removed=[cid for cid in old_keys if cid not in new_keys],
        restarted=[cid for cid in new_keys if cid in old_keys and new_keys[cid] != old_keys[cid]])
