"""The ONVIF profiles a caller may see: one per camera and one per wall in its scope, each
naming the RTSP stream of the previous issue (server/outputs/rtsp/). A token outside the
scope is answered exactly like an unknown one.

What a profile says of its video (codec, size, rate) is read from what Vigie knows now
without starting anything: a camera sent as it is (no privacy mask, H.264 or H.265) has its
own codec and size; a masked or MJPEG camera, and a wall, are H.264 encoded here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from server.access.scope import Principal, visible_cameras
from server.access.views import shown_to
from server.runtime import Runtime

TOKEN_MAX = 64  # an ONVIF ReferenceToken
DEFAULT_SIZE = (1280, 720)


@dataclass(frozen=True)
class Profile:
    token: str
    name: str
    path: str          # the RTSP path: /cameras/{id} or /walls/{id}
    snapshot: str      # the HTTP snapshot path
    encoding: str      # H264 or H265
    width: int
    height: int
    fps: float


def token_of(kind: str, item: str) -> str:
    token = f"{kind}.{item}"
    if len(token) > TOKEN_MAX:  # ids are up to 64 characters: a long one is hashed
        token = f"{kind}.h{hashlib.sha256(item.encode()).hexdigest()[:32]}"
    return token


def _camera(runtime: Runtime, camera_id: str) -> Profile:
    camera = runtime.config.camera(camera_id)
    worker = runtime.workers.get(camera_id)
    status = worker.status() if worker is not None else None
    own = (camera is not None and not camera.privacy_masks and status is not None
           and status.codec in ("h264", "hevc") and camera.url.startswith(("rtsp", "file")))
    width, height = (status.width, status.height) if status and status.width else DEFAULT_SIZE
    fps = round(status.input_fps) if status and status.input_fps else 15
    return Profile(token_of("c", camera_id), camera.name if camera else camera_id,
                   f"/cameras/{camera_id}", f"/cameras/{camera_id}/snapshot.jpg",
                   "H265" if own and status.codec == "hevc" else "H264", width, height, fps)


def _wall(runtime: Runtime, wall_id: str) -> Profile:
    spec = runtime.walls[wall_id]
    return Profile(token_of("w", wall_id), spec.name, f"/walls/{wall_id}",
                   f"/walls/{wall_id}/snapshot.jpg", "H264", spec.width, spec.height, spec.fps)


def profiles(runtime: Runtime, principal: Principal) -> list[Profile]:
    """Every profile the principal may see, cameras first, in config order."""
    found = [_camera(runtime, camera_id)
             for camera_id in visible_cameras(principal, runtime.camera_communes)]
    found += [_wall(runtime, wall_id) for wall_id in runtime.walls
              if shown_to(runtime, principal, "wall", wall_id) is not None]
    return found


def profile(runtime: Runtime, principal: Principal, token: str) -> Profile | None:
    """The profile of this token if the principal may see it now; None otherwise."""
    return next((found for found in profiles(runtime, principal) if found.token == token), None)
