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

from ingest.layout import Rect, letterbox
from ingest.overlay import TextRenderer, text_size_for
from ingest.tiles import BLACK_Y, NEUTRAL_CHROMA, Size, Tile, i420_planes, new_i420

Polygon = Sequence[tuple[float, float]]  # points in normalised source coordinates (0..1)


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
                 text: TextRenderer | None = None) -> None:
        self.camera_id = camera_id
        self.size = size
        self.gate = FrameGate(fps)
        self._label = label
        self._masks = [np.asarray(mask, dtype=np.float32) for mask in masks]
        self._overlay = overlay
        self._text = text or TextRenderer()
        self._reformatter = VideoReformatter()
        self._seq = 0
        self._geometry: tuple[int, int, float, Rect] | None = None
        self._label_fit: tuple[tuple[int, int], str] | None = None

    def _content_rect(self, frame: av.VideoFrame, sample_aspect: float) -> Rect:
        key = (frame.width, frame.height, sample_aspect)
        if self._geometry is None or self._geometry[:3] != key:
            rect = letterbox(frame.width, frame.height, *self.size, sample_aspect=sample_aspect)
            self._geometry = (*key, rect)
        return self._geometry[3]

    def normalise(self, frame: av.VideoFrame, captured_at: float | None = None,
                  captured_wall: float | None = None, sample_aspect: float = 1.0) -> Tile:
        """Make a tile; `sample_aspect` is the source's pixel aspect (anamorphic cameras)."""
        width, height = self.size
        rect = self._content_rect(frame, sample_aspect)
        # One swscale pass: scale + pixel format + range (limited -> full, as JPEG wants).
        scaled = self._reformatter.reformat(
            frame, width=rect.width, height=rect.height, format="yuv420p",
            dst_color_range=ColorRange.JPEG, interpolation="BILINEAR",
        )
        content = scaled.to_ndarray()  # (h * 3 / 2, w) I420
        tile = new_i420(width, height) if (rect.width, rect.height) != (width, height) else None
        if tile is None:
            tile = content
            y, u, v = i420_planes(tile, width, height)
        else:
            y, u, v = i420_planes(tile, width, height)
            src_y, src_u, src_v = i420_planes(content, rect.width, rect.height)
            y[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width] = src_y
            cy, cx = rect.y // 2, rect.x // 2
            u[cy : cy + rect.height // 2, cx : cx + rect.width // 2] = src_u
            v[cy : cy + rect.height // 2, cx : cx + rect.width // 2] = src_v
        # Privacy masks before anything else sees the pixels.
        for mask in self._masks:
            points = np.round(mask * (rect.width, rect.height) + (rect.x, rect.y)).astype(np.int32)
            cv2.fillPoly(y, [points], BLACK_Y)
            half = (points // 2).astype(np.int32)
            cv2.fillPoly(u, [half], NEUTRAL_CHROMA)
            cv2.fillPoly(v, [half], NEUTRAL_CHROMA)
        wall_now = captured_wall if captured_wall is not None else time.time()
        if self._overlay:
            self._draw_overlay(y, wall_now)
        self._seq += 1
        return Tile(
            camera_id=self.camera_id, size=self.size, i420=tile, seq=self._seq,
            captured_at=captured_at if captured_at is not None else time.monotonic(),
            captured_wall=wall_now,
        )

    def _draw_overlay(self, luma: np.ndarray, wall_time: float) -> None:
        height, width = luma.shape
        pixels = text_size_for(height)
        margin = max(2, height // 60)
        clock = time.strftime("%H:%M:%S", time.localtime(wall_time))
        self._text.draw(luma, clock, width - margin, height - margin, pixels, anchor="bottom-right")
        # The label gets the room the clock leaves (measured with the widest clock).
        label = self._fitted_label(width - self._text.mask("00:00:00", pixels).width - 3 * margin, pixels)
        if label:
            self._text.draw(luma, label, margin, height - margin, pixels, anchor="bottom-left")

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
