"""Decoded frame -> tile: one scale pass, letterbox, privacy masks, overlay, frame-rate gate.

Each Normaliser serves one (camera, tile size, fps) request and is used by its camera's
worker thread only (PyAV frames and reformatters are not shared between threads).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, VideoReformatter

from ingest.picture.layout import Rect, letterbox
from ingest.picture.overlay import Stamp, TextRenderer, text_size_for
from ingest.picture.tiles import BLACK_Y, NEUTRAL_CHROMA, Size, Tile, TilePool, i420_planes

# Parallelism comes from the cameras (one worker thread each): OpenCV's own thread pool on
# top of that only adds hand-offs (a 640x360 -> 480x270 tile: ~300 us single-threaded,
# ~500 us with the default pool on this 2-core machine: `python -m bench.tiles --threads 0`).
cv2.setNumThreads(1)

# Every tile of one size shows the same clock: rendered once a second for all the cameras,
# not once per camera (16 renders a second on a 4x4 wall; the label stays per camera).
# Room for the current and the last second at a dozen tile sizes, and the widest clock.
CLOCK_TEXT = TextRenderer(capacity=40)
# Top right of a tile whose camera shows its keyframes only (the cards' language: NO SIGNAL).
REDUCED_MARK = "REDUCED"
WIDEST_CLOCK = "00:00:00"

Polygon = Sequence[tuple[float, float]]  # points in normalised source coordinates (0..1)


# Limited ("TV", MPEG) range to full range (JFIF): Y 16..235 -> 0..255, C 16..240 -> 0..255.
_LUMA_GAIN, _LUMA_OFFSET = 255 / 219, -16 * 255 / 219
_CHROMA_GAIN, _CHROMA_OFFSET = 255 / 224, 128 - 128 * 255 / 224
FAST_FORMATS = {"yuv420p": False, "yuvj420p": True}  # 8-bit 4:2:0 -> already full range?
FAST_MIN_SCALE = 0.5  # below this, bilinear sampling would alias: swscale filters properly


def plane_views(frame: av.VideoFrame) -> list[np.ndarray]:
    """The Y, U, V planes of an 8-bit planar frame as 2-D views of FFmpeg's buffers (no copy)."""
    return [np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
            for plane in frame.planes[:3]]


def scale_planes(frame: av.VideoFrame, targets: Sequence[np.ndarray]) -> bool:
    """Scale an 8-bit 4:2:0 frame's planes straight into `targets` (Y, U, V views of a tile)
    and bring them to full range; False when the frame needs swscale instead.

    Why not swscale for everything: measured here (FFmpeg 8's swscale through PyAV), one
    640x360 -> 480x270 pass costs about twice OpenCV's bilinear resize of the three planes
    plus a saturating multiply-add for the range, and it allocates a frame per call.
    """
    full_range = FAST_FORMATS.get(frame.format.name)
    if full_range is None:
        return False
    luma = targets[0]
    if min(luma.shape[1] / frame.width, luma.shape[0] / frame.height) < FAST_MIN_SCALE:
        return False
    full_range = full_range or frame.color_range == ColorRange.JPEG
    for index, (source, target) in enumerate(zip(plane_views(frame), targets)):
        if source.shape == target.shape:
            target[:] = source
        else:
            cv2.resize(source, (target.shape[1], target.shape[0]), dst=target,
                       interpolation=cv2.INTER_LINEAR)
        if not full_range:
            gain, offset = (_LUMA_GAIN, _LUMA_OFFSET) if index == 0 else (_CHROMA_GAIN, _CHROMA_OFFSET)
            cv2.addWeighted(target, gain, target, 0.0, offset, dst=target)
    return True


@dataclass(frozen=True)
class Label:
    camera_name: str
    commune_name: str


@dataclass
class FrameGate:
    """Lets through at most `fps` frames per second, evenly, without drifting.

    A camera no faster than the wall passes whole: with jitter, a same-rate camera would
    otherwise lose the frames that arrive a little early.
    """

    fps: float
    _next_due: float = field(default=0.0)
    _last_arrival: float | None = field(default=None)
    _mean_interval: float | None = field(default=None)

    def admit(self, now: float) -> bool:
        if self.fps <= 0:
            return True
        period = 1.0 / self.fps
        if self._last_arrival is not None:
            interval = now - self._last_arrival
            self._mean_interval = interval if self._mean_interval is None else (
                0.9 * self._mean_interval + 0.1 * interval)
        self._last_arrival = now
        slower_than_wall = self._mean_interval is None or self._mean_interval >= period * 0.9
        if not slower_than_wall and now + period * 0.25 < self._next_due:
            return False
        # Catch up without bursting after a gap; keep the cadence otherwise.
        self._next_due = max(self._next_due + period, now + period * 0.5)
        return True


class Normaliser:
    def __init__(self, camera_id: str, size: Size, fps: float, label: Label,
                 masks: Sequence[Polygon] = (), overlay: bool = True,
                 text: TextRenderer | None = None, reuse_buffers: bool = True) -> None:
        self.camera_id = camera_id
        self.size = size
        self.gate = FrameGate(fps)
        self._label = label
        self._masks = [np.asarray(mask, dtype=np.float32) for mask in masks]
        self._overlay = overlay
        self._text = text or TextRenderer()
        self._reformatter = VideoReformatter()
        # Tiles made at every frame reuse their buffers; a still a second does not need to.
        self._pool = TilePool(size) if reuse_buffers else None
        self._seq = 0
        self._geometry: tuple[int, int, float, Rect] | None = None
        self._label_fit: tuple[tuple[int, int], str] | None = None
        self._stamp: tuple[tuple[int, bool], Stamp | None] | None = None  # (second, reduced)

    def _content_rect(self, frame: av.VideoFrame, sample_aspect: float) -> Rect:
        key = (frame.width, frame.height, sample_aspect)
        if self._geometry is None or self._geometry[:3] != key:
            rect = letterbox(frame.width, frame.height, *self.size, sample_aspect=sample_aspect)
            self._geometry = (*key, rect)
        return self._geometry[3]

    def normalise(self, frame: av.VideoFrame, captured_at: float | None = None,
                  captured_wall: float | None = None, sample_aspect: float = 1.0,
                  reduced: bool = False) -> Tile:
        """Make a tile; `sample_aspect` is the source's pixel aspect (anamorphic cameras).
        `reduced`: the camera shows its keyframes only (ingest/wall/governor.py); the overlay
        says so, so that nobody takes the jerky picture for a failing camera."""
        width, height = self.size
        rect = self._content_rect(frame, sample_aspect)
        letterboxed = (rect.width, rect.height) != (width, height)
        tile = (self._pool.buffer() if self._pool is not None
                else np.empty((height * 3 // 2, width), np.uint8))
        if letterboxed:  # the bars, and what an earlier tile's overlay left on them
            tile[:height] = BLACK_Y
            tile[height:] = NEUTRAL_CHROMA
        y, u, v = i420_planes(tile, width, height)
        cy, cx = rect.y // 2, rect.x // 2
        content = (y[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width],
                   u[cy : cy + rect.height // 2, cx : cx + rect.width // 2],
                   v[cy : cy + rect.height // 2, cx : cx + rect.width // 2])
        if not scale_planes(frame, content):
            # Anything else (4:2:2 MJPEG, 10 bits, strong downscales): one swscale pass,
            # scale + pixel format + range (limited -> full, as JPEG wants).
            scaled = self._reformatter.reformat(
                frame, width=rect.width, height=rect.height, format="yuv420p",
                dst_color_range=ColorRange.JPEG, interpolation="BILINEAR",
            )
            for target, plane in zip(content, plane_views(scaled)):
                target[:] = plane
        # Privacy masks before anything else sees the pixels.
        for mask in self._masks:
            points = np.round(mask * (rect.width, rect.height) + (rect.x, rect.y)).astype(np.int32)
            cv2.fillPoly(y, [points], BLACK_Y)
            half = (points // 2).astype(np.int32)
            cv2.fillPoly(u, [half], NEUTRAL_CHROMA)
            cv2.fillPoly(v, [half], NEUTRAL_CHROMA)
        wall_now = captured_wall if captured_wall is not None else time.time()
        if self._overlay:
            self._draw_overlay(y, wall_now, reduced)
        self._seq += 1
        made = Tile(
            camera_id=self.camera_id, size=self.size, i420=tile, seq=self._seq,
            captured_at=captured_at if captured_at is not None else time.monotonic(),
            captured_wall=wall_now,
        )
        if self._pool is not None:
            self._pool.add(made)
        return made

    def _draw_overlay(self, luma: np.ndarray, wall_time: float, reduced: bool) -> None:
        # What the overlay shows changes once a second: composed then, stamped every frame.
        key = (int(wall_time), reduced)
        if self._stamp is None or self._stamp[0] != key:
            self._stamp = (key, self._compose_overlay(*luma.shape, wall_time, reduced))
        stamp = self._stamp[1]
        if stamp is not None:
            stamp.apply(luma)

    def _compose_overlay(self, height: int, width: int, wall_time: float,
                         reduced: bool = False) -> Stamp | None:
        pixels = text_size_for(height)
        margin = max(2, height // 60)
        clock = time.strftime("%H:%M:%S", time.localtime(wall_time))
        placed = [CLOCK_TEXT.place(clock, width - margin, height - margin, pixels,
                                   anchor="bottom-right")]
        # The label gets the room the clock leaves (measured with the widest clock).
        label = self._fitted_label(width - CLOCK_TEXT.mask(WIDEST_CLOCK, pixels).width - 3 * margin, pixels)
        if label:
            placed.append(self._text.place(label, margin, height - margin, pixels,
                                           anchor="bottom-left"))
        if reduced:
            placed.append(self._text.place(REDUCED_MARK, width - margin, margin, pixels,
                                           anchor="top-right"))
        return Stamp.compose(height, width, placed)

    def _fitted_label(self, room: int, pixels: int) -> str:
        """'Camera – Commune', cut with an ellipsis to fit `room` pixels (cached)."""
        key = (room, pixels)
        if self._label_fit is not None and self._label_fit[0] == key:
            return self._label_fit[1]
        full = f"{self._label.camera_name} – {self._label.commune_name}"
        text = full
        while text and self._text.mask(text if text == full else text + "…", pixels).width > room:
            text = text[: max(0, len(text) - max(1, len(text) // 8))]
        fitted = text if text == full else (text.rstrip() + "…" if text else "")
        self._label_fit = (key, fitted)
        return fitted
