"""The compositor on its own thread, in process: real canvas, cards and encoders."""

from __future__ import annotations

import time

import ingest.compositor as compositor
from ingest.compositor import Compositor, WallSpec
from ingest.layout import CellSpec
from ingest.tiles import TileStore
from tests.mjpeg import wait_until


def test_first_viewer_of_a_format_gets_a_frame_at_once(monkeypatch):
    """A wall of cards that do not change is sent once a second (keep-alive). A viewer who
    opens it must not wait for that second: the first viewer of a format gets a frame at
    the next tick. The keep-alive is pushed out of the test's reach, so only the new format
    can trigger the frames awaited here."""
    monkeypatch.setattr(compositor, "KEEPALIVE_INTERVAL", 3600.0)
    formats: set[str] = set()
    delivered: list[str] = []
    spec = WallSpec(id="w", name="W", width=320, height=180, fps=20, columns=1, rows=1,
                    cells=(CellSpec("ghost", 0, 0),))
    wall = Compositor(spec, {}, TileStore(), lambda fmt, frame: delivered.append(fmt),
                      wanted_formats=lambda: set(formats))
    wall.start()
    try:
        wait_until(lambda: wall.frames >= 1, 5, message="the first tick (the card, for nobody)")
        time.sleep(0.3)  # several ticks with nothing new
        assert delivered == [] and wall.frames == 1
        formats.add("jpeg")
        wait_until(lambda: "jpeg" in delivered, 5, message="a JPEG frame for its first viewer")
        wait_until(lambda: wall.frames == 3, 5, message="the second of its first ticks")
        formats.add("fmp4")
        wait_until(lambda: "fmp4" in delivered, 5, message="fMP4 for its first viewer")
        time.sleep(0.3)
        # Two frames per new format (the mp4 muxer writes a frame's fragment when the next
        # one comes), then nothing: the card is not encoded again.
        assert wall.frames == 5, wall.frames
    finally:
        wall.stop()
    assert not wall.running
