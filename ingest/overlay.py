"""Text on luma planes: camera labels, clocks and cards, readable on any background.

Text is drawn white with a black outline on the Y plane only (chroma stays neutral under
it on cards; on live video the colour of the scene shows through, which is fine for
white-on-black text). Rendered masks are cached: a label is drawn once, then stamped.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE = 255
BLACK = 0


@dataclass(frozen=True)
class TextMask:
    outline: np.ndarray  # bool (h, w)
    fill: np.ndarray     # bool (h, w)

    @property
    def width(self) -> int:
        return self.fill.shape[1]

    @property
    def height(self) -> int:
        return self.fill.shape[0]


class TextRenderer:
    """Renders and caches text masks (a few hundred entries at most)."""

    def __init__(self, capacity: int = 256) -> None:
        self._cache: OrderedDict[tuple[str, float], TextMask] = OrderedDict()
        self._capacity = capacity

    def mask(self, text: str, scale: float) -> TextMask:
        key = (text, scale)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        thickness = max(1, round(scale * 2))
        border = max(1, round(scale * 2))
        (width, height), baseline = cv2.getTextSize(text, FONT, scale, thickness)
        pad = border + thickness
        canvas_fill = np.zeros((height + baseline + 2 * pad, width + 2 * pad), np.uint8)
        cv2.putText(canvas_fill, text, (pad, pad + height), FONT, scale, 255, thickness, cv2.LINE_AA)
        # The outline is the fill grown by a few pixels: same glyphs, same advance.
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * border + 1, 2 * border + 1))
        canvas_outline = cv2.dilate(canvas_fill, kernel)
        rendered = TextMask(outline=canvas_outline > 96, fill=canvas_fill > 128)
        self._cache[key] = rendered
        if len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        return rendered

    def draw(self, luma: np.ndarray, text: str, x: int, y: int, scale: float,
             anchor: str = "top-left") -> None:
        """Stamp text on a luma plane; x, y is the anchor corner; clipped to the plane."""
        rendered = self.mask(text, scale)
        if anchor.endswith("right"):
            x -= rendered.width
        if anchor.startswith("bottom"):
            y -= rendered.height
        if anchor == "center":
            x -= rendered.width // 2
            y -= rendered.height // 2
        plane_height, plane_width = luma.shape
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(plane_width, x + rendered.width), min(plane_height, y + rendered.height)
        if x1 <= x0 or y1 <= y0:
            return
        region = luma[y0:y1, x0:x1]
        crop = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
        region[rendered.outline[crop]] = BLACK
        region[rendered.fill[crop]] = WHITE


def text_scale_for(height: int) -> float:
    """A font scale readable at wall distance for a tile of this height."""
    return max(0.35, min(1.2, height / 600))
