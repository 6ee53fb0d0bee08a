"""The compositor on its own thread, in process: real canvas, cards and encoders."""

from __future__ import annotations

import asyncio
import time

import ingest.wall.compositor as compositor
from ingest.wall.compositor import Compositor, WallSpec
from ingest.picture.layout import CellSpec
from ingest.redact import Redactor
from ingest.source import SourceSpec
from ingest.picture.tiles import TileStore
from ingest.camera.worker import CameraInfo, CameraWorker
from server.runtime.streams import LiveStream
from tests.support.mjpeg import wait_until


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
        wait_until(lambda: wall.ticks >= 1, 5, message="the first tick (the card, for nobody)")
        time.sleep(0.3)  # several ticks with nothing new, for nobody: nothing encoded
        assert delivered == [] and wall.frames == 0
        formats.add("jpeg")
        wait_until(lambda: "jpeg" in delivered, 5, message="a JPEG frame for its first viewer")
        wait_until(lambda: wall.frames == 2, 5, message="the second of its first ticks")
        formats.add("fmp4")
        wait_until(lambda: "fmp4" in delivered, 5, message="fMP4 for its first viewer")
        time.sleep(0.3)
        # Two frames per new format (the mp4 muxer writes a frame's fragment when the next
        # one comes), then nothing: the card is not encoded again.
        assert wall.frames == 4, wall.frames
    finally:
        wall.stop()
    assert not wall.running


def _live_wall() -> tuple[TileStore, CameraWorker, WallSpec]:
    """A started synthetic camera at 20 fps and a one-cell wall of it at 20 fps."""
    store = TileStore()
    worker = CameraWorker(CameraInfo("s", "S", "c", "C"),
                          SourceSpec("synthetic://s?width=320&height=180&fps=20"), store, Redactor())
    worker.start()
    spec = WallSpec(id="w", name="W", width=320, height=180, fps=20, columns=1, rows=1,
                    cells=(CellSpec("s", 0, 0),))
    return store, worker, spec


async def test_jpeg_is_not_encoded_while_every_viewer_has_frames_waiting():
    """A viewer that takes nothing (a starved loop, a stalled screen) is not sent a frame
    per tick only for it to push out the one before unsent: JPEG is encoded once a second
    for it (the hub still sees stalls), and at the wall's rate again once it takes them."""
    store, worker, spec = _live_wall()
    stream = LiveStream("wall/w", lambda deliver, wanted, room: Compositor(
        spec, {"s": worker}, store, deliver, wanted, room), asyncio.get_running_loop())
    viewer = stream.hubs["jpeg"].add()  # starts the wall
    try:
        await asyncio.sleep(1.5)  # live pictures; two frames wait untaken
        before = stream.compositor.frames
        await asyncio.sleep(3.0)
        untaken = stream.compositor.frames - before
        starved = stream.compositor.starved_ticks
        taken = 0

        async def take() -> None:
            nonlocal taken
            while await viewer.next_frame() is not None:
                taken += 1
        reader = asyncio.ensure_future(take())
        await asyncio.sleep(2.0)
        reader.cancel()
    finally:
        viewer.close()
        await stream.async_close()
        worker.request_stop()
    assert 2 <= untaken <= 5, untaken  # once a second, not 20 times
    assert starved >= 20, starved  # ticks the governor counts as late (ingest/wall/governor.py)
    assert taken >= 20, taken  # and at the wall's rate (20 fps) once taken


def test_a_late_tick_costs_no_frame():
    """A tick that ends late but within the next one's period (a machine short of CPU wakes
    the thread late, an encode takes longer) does not shift the wall's cadence: the next
    tick starts at once and the wall keeps its rate. Here every second tick takes 1.5
    periods: the cadence kept gives 20 fps; restarting it after each late tick gave 16."""
    ticks: list[float] = []

    def slow_every_second_tick(fmt: str, frame) -> None:
        ticks.append(time.monotonic())
        if len(ticks) % 2:
            time.sleep(0.075)  # 1.5 periods at 20 fps

    store, worker, spec = _live_wall()
    wall = Compositor(spec, {"s": worker}, store, slow_every_second_tick,
                      wanted_formats=lambda: {"jpeg"})
    wall.start()
    try:
        wait_until(lambda: len(ticks) >= 80, 10, message="80 frames")
    finally:
        wall.stop()
        worker.request_stop()
    late = wall.late_ticks
    rate = (len(ticks) - 21) / (ticks[-1] - ticks[20])  # live pictures by then
    assert late >= 20, late
    assert rate >= 18.5, rate
