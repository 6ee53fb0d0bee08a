"""Cards drawn in place of a picture: NO SIGNAL, STALLED, CONNECTING, empty cell."""

from __future__ import annotations

import time

import numpy as np

from ingest.picture.overlay import TextRenderer, text_size_for
from ingest.picture.tiles import i420_planes, new_i420

CARD_LUMA = 24


def draw_card(width: int, height: int, title: str, lines: tuple[str, ...] = (),
              text: TextRenderer | None = None, tint: tuple[int, int] = (128, 128)) -> np.ndarray:
    """An I420 image: a dark, slightly tinted card with a large title and smaller lines."""
    renderer = text or TextRenderer()
    card = new_i420(width, height, luma=CARD_LUMA)
    y, u, v = i420_planes(card, width, height)
    u[:] = tint[0]
    v[:] = tint[1]
    base = text_size_for(height)
    title_scale = int(base * 1.8)
    title_mask = renderer.mask(title, title_scale)
    while title_mask.width > width * 0.9 and title_scale > 10:
        title_scale = int(title_scale * 0.8)
        title_mask = renderer.mask(title, title_scale)
    line_scale = base
    line_heights = [renderer.mask(line, line_scale).height for line in lines]
    spacing = max(2, base // 3)
    total = title_mask.height + sum(line_heights) + spacing * len(lines)
    top = max(0, (height - total) // 2)
    renderer.draw(y, title, width // 2 - title_mask.width // 2, top, title_scale)
    cursor = top + title_mask.height + spacing
    for line, line_height in zip(lines, line_heights):
        line_width = renderer.mask(line, line_scale).width
        renderer.draw(y, line, max(0, width // 2 - line_width // 2), cursor, line_scale)
        cursor += line_height + spacing
    return card


# Red-ish for a dead camera, amber for a stalled one, neutral otherwise (Cb, Cr).
TINT_OFFLINE = (110, 160)
TINT_STALLED = (100, 150)
TINT_NEUTRAL = (128, 128)


def since_text(wall_time: float) -> str:
    return "since " + time.strftime("%d/%m %H:%M:%S", time.localtime(wall_time))
