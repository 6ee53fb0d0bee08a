"""JSON views of cameras and walls, shared by the API and the stream outputs."""

from __future__ import annotations

from typing import Any

from ingest.camera.picture_health import PictureStatus
from ingest.camera.worker import CameraWorker
from server.runtime.runtime import Runtime
from server.runtime.walls import COMMUNE_WALL_PREFIX


def camera_json(worker: CameraWorker) -> dict[str, Any]:
    status = worker.status()
    camera = worker.camera
    return {
        "id": camera.id,
        "name": camera.name,
        "commune": camera.commune_id,
        "commune_name": camera.commune_name,
        "state": status.state.value,
        "reason": status.reason,
        "since": status.since,
        "codec": status.codec,
        "width": status.width,
        "height": status.height,
        "input_fps": status.input_fps,
        "bitrate_bps": status.bitrate_bps,
        "frame_age": status.frame_age,
        "behind": status.behind,
        "lag_skips": status.lag_skips,
        "reconnects_last_hour": status.reconnects_last_hour,
        "last_error": status.last_error,
        "decoding": status.decoding.value,
        "picture": picture_json(status.picture),
    }


def picture_json(picture: PictureStatus | None) -> dict[str, Any] | None:
    """Whether the picture is usable: `ok` unless a tampering condition is raised (too_dark
    and too_bright are listed, never counted), each condition with the time it began."""
    if picture is None:
        return None
    return {"ok": picture.ok,
            "conditions": [{"condition": name, "since": since} for name, since in picture.conditions],
            "reference_at": picture.reference_at, "checks": list(picture.checks)}


def wall_json(runtime: Runtime, wall_id: str, tour_pages: bool) -> dict[str, Any]:
    """A wall as its reader may see it: a running tour's pages (other cameras, maybe other
    communes') only for those who see everything (`tour_pages`); others learn only that
    it runs."""
    spec = runtime.walls[wall_id]
    tour = runtime.tours.get(wall_id)
    tour_json = None if tour is None else tour.as_json()
    if tour_json is not None and not tour_pages:
        tour_json = {"seconds": tour_json["seconds"], "pages": None, "page": None}
    return {
        "id": wall_id, "name": spec.name, "size": f"{spec.width}x{spec.height}", "fps": spec.fps,
        "layout": f"{spec.columns}x{spec.rows}", "automatic": wall_id.startswith(COMMUNE_WALL_PREFIX),
        "cells": [{"camera": cell.camera_id, "row": cell.row, "column": cell.column,
                   "rows": cell.rows, "columns": cell.columns} for cell in spec.cells],
        "tour": tour_json,
    }
