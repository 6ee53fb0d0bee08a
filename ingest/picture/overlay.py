"""Text on luma planes: camera labels, clocks and cards, readable on any background.

Text is drawn white with a black outline on the Y plane only. Camera and commune names
are French (accents, apostrophes, dashes), which OpenCV's Hershey fonts cannot draw, so
glyphs come from FreeType through Pillow with DejaVu Sans (Debian's fonts-dejavu-core).
Rendered masks are cached: a label is drawn once, then stamped with numpy.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

logger = logging.getLogger(__name__)

WHITE = 255
BLACK = 0
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


@lru_cache(maxsize=64)
def _font(pixels: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for candidate in FONT_CANDIDATES:
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, pixels)
    logger.warning("DejaVu fonts not found (Debian package fonts-dejavu-core): "
                   "accented letters may not show on tiles")
    return ImageFont.load_default(size=pixels)


@dataclass(frozen=True)
class TextMask:
    """A rendered text as two uint8 images the size of its box, so that stamping it is two
    saturating SIMD operations (cv2.min then cv2.max) instead of boolean indexing:
    `keep` is 0 on the outline (BLACK) and 255 elsewhere; `ink` is 255 on the glyphs."""

    keep: np.ndarray  # uint8 (h, w)
    ink: np.ndarray   # uint8 (h, w)

    @property
    def width(self) -> int:
        return self.ink.shape[1]

    @property
    def height(self) -> int:
        return self.ink.shape[0]


def _render(text: str, pixels: int) -> TextMask:
    font = _font(pixels)
    border = max(1, pixels // 10)
    left, top, right, bottom = font.getbbox(text or " ")
    width, height = max(1, right - left) + 2 * border, max(1, bottom - top) + 2 * border
    image = Image.new("L", (width, height), 0)
    ImageDraw.Draw(image).text((border - left, border - top), text, font=font, fill=255)
    fill = np.asarray(image)
    # The outline is the fill grown by a few pixels: same glyphs, same advance.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * border + 1, 2 * border + 1))
    outline = cv2.dilate(fill, kernel) > 96
    return TextMask(keep=np.where(outline, BLACK, WHITE).astype(np.uint8),
                    ink=np.where(fill > 128, WHITE, BLACK).astype(np.uint8))


class TextRenderer:
    """Renders and caches text masks, most recently used first.

    What a tile shows is a name, a commune and a clock that changes every second: a clock
    is never drawn again once its second has passed, so a big cache only fills with dead
    clocks (256 of them were 5 MB per 960x540 camera view). A few entries hold the labels
    and the current second; a new clock costs one render per second.

    Safe to share between threads (the clock renderer is shared by every camera)."""

    def __init__(self, capacity: int = 8) -> None:
        self._cache: OrderedDict[tuple[str, int], TextMask] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def mask(self, text: str, pixels: int) -> TextMask:
        key = (text, pixels)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        # Rendered outside the lock: two threads may both render a new text, once each.
        rendered = _render(text, pixels)
        with self._lock:
            self._cache[key] = rendered
            if len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        return rendered

    def place(self, text: str, x: int, y: int, pixels: int,
              anchor: str = "top-left") -> tuple[TextMask, int, int]:
        """The text's mask and its top-left corner, for x, y at the `anchor` corner."""
        rendered = self.mask(text, pixels)
        if anchor.endswith("right"):
            x -= rendered.width
        if anchor.startswith("bottom"):
            y -= rendered.height
        if anchor == "center":
            x -= rendered.width // 2
            y -= rendered.height // 2
        return rendered, x, y

    def draw(self, luma: np.ndarray, text: str, x: int, y: int, pixels: int,
             anchor: str = "top-left") -> None:
        """Stamp text on a luma plane; x, y is the anchor corner; clipped to the plane."""
        stamp = Stamp.compose(*luma.shape, [self.place(text, x, y, pixels, anchor)])
        if stamp is not None:
            stamp.apply(luma)


@dataclass(frozen=True)
class Stamp:
    """Texts composed into one band of a plane, stamped with two SIMD passes however many
    texts it holds: a tile's label and clock are composed once a second and stamped on
    every frame (two OpenCV calls per frame instead of four, and no layout work)."""

    x: int
    y: int
    keep: np.ndarray  # uint8 (h, w): 0 on outlines, 255 elsewhere
    ink: np.ndarray   # uint8 (h, w): 255 on glyphs, 0 elsewhere

    @staticmethod
    def compose(plane_height: int, plane_width: int,
                placed: list[tuple[TextMask, int, int]]) -> Stamp | None:
        """Masks at their top-left corners, clipped to the plane; None if none shows."""
        boxes = []
        for mask, x, y in placed:
            x0, y0 = max(0, x), max(0, y)
            x1, y1 = min(plane_width, x + mask.width), min(plane_height, y + mask.height)
            if x1 > x0 and y1 > y0:
                boxes.append((mask, x, y, x0, y0, x1, y1))
        if not boxes:
            return None
        left, top = min(box[3] for box in boxes), min(box[4] for box in boxes)
        right, bottom = max(box[5] for box in boxes), max(box[6] for box in boxes)
        keep = np.full((bottom - top, right - left), WHITE, np.uint8)
        ink = np.full((bottom - top, right - left), BLACK, np.uint8)
        for mask, x, y, x0, y0, x1, y1 in boxes:
            crop = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
            band = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
            np.minimum(keep[band], mask.keep[crop], out=keep[band])
            np.maximum(ink[band], mask.ink[crop], out=ink[band])
        return Stamp(left, top, keep, ink)

    def apply(self, luma: np.ndarray) -> None:
        region = luma[self.y : self.y + self.keep.shape[0], self.x : self.x + self.keep.shape[1]]
        cv2.min(region, self.keep, dst=region)
        cv2.max(region, self.ink, dst=region)


def text_size_for(height: int) -> int:
    """A font size in pixels readable at wall distance for a tile of this height."""
    return max(11, min(44, height // 22))
