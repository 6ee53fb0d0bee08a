"""Tile buffers are reused only when nobody can see them any more."""

from __future__ import annotations

import time

import av
import numpy as np

from ingest.picture.normalise import Label, Normaliser
from ingest.picture.tiles import i420_planes

SIZE = (480, 270)
NOON = time.mktime((2026, 11, 26, 12, 0, 0, 0, 0, -1))


def frame(level: int, width: int = 640, height: int = 360) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.full((height * 3 // 2, width), level, np.uint8),
                                      format="yuv420p")


def test_a_tile_held_by_a_reader_or_a_view_keeps_its_pixels() -> None:
    normaliser = Normaliser("c", SIZE, 0, Label("Mairie", "Bourg"), overlay=False)
    held = normaliser.normalise(frame(60))  # a wall's cell holding the tile it shows
    luma_view = i420_planes(normaliser.normalise(frame(90)).i420, *SIZE)[0]  # a blit under way
    expected_held, expected_view = held.i420.copy(), luma_view.copy()
    made = [normaliser.normalise(frame(120 + index)) for index in range(8)]
    assert np.array_equal(held.i420, expected_held)
    assert np.array_equal(luma_view, expected_view)
    buffers = {tile.i420.ctypes.data for tile in made}
    assert held.i420.ctypes.data not in buffers
    assert luma_view.base.ctypes.data not in buffers


def test_buffers_nobody_holds_are_reused() -> None:
    normaliser = Normaliser("c", SIZE, 0, Label("Mairie", "Bourg"), overlay=False)
    addresses = set()
    for index in range(30):
        tile = normaliser.normalise(frame(16 + index))
        addresses.add(tile.i420.ctypes.data)
        del tile  # like the store replacing it
    assert len(addresses) <= 4, len(addresses)


def test_a_reused_letterboxed_tile_is_as_a_new_one() -> None:
    """A 4:3 camera in a 16:9 tile: bars on both sides, the overlay over the content and
    a bar. A reused buffer must not keep what the last tile's overlay drew on the bars."""
    reused = Normaliser("c", SIZE, 0, Label("Place de la Mairie", "Bourg"))
    fresh = Normaliser("c", SIZE, 0, Label("Place de la Mairie", "Bourg"), reuse_buffers=False)
    source = frame(100, 480, 360)
    for second in range(12):
        a = reused.normalise(source, captured_wall=NOON + second)
        b = fresh.normalise(source, captured_wall=NOON + second)
        assert np.array_equal(a.i420, b.i420), second
