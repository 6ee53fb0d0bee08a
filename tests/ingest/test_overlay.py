"""The name/time overlay on real tiles: each camera's label, one clock for all cameras."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np

from ingest.picture.normalise import Label, Normaliser

SIZE = (480, 270)
NOON = time.mktime((2026, 11, 26, 12, 0, 0, 0, 0, -1))


def grey_frame() -> av.VideoFrame:
    """A mid-grey 640x360 picture, as a camera's decoder gives it (limited range)."""
    planes = np.full((540, 640), 128, np.uint8)
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


def corners(tile) -> tuple[np.ndarray, np.ndarray]:
    """The bottom-left (label) and bottom-right (clock) corners of a tile's luma."""
    luma = tile.planes()[0]
    bottom = luma[-40:]
    return bottom[:, : SIZE[0] // 2], bottom[:, -140:]


def test_labels_are_per_camera_and_the_clock_shows_the_capture_second() -> None:
    frame = grey_frame()
    town_hall = Normaliser("a", SIZE, 0, Label("Mairie", "Bourg"))
    church = Normaliser("b", SIZE, 0, Label("Église", "Saint-Éloi"))
    label_a, clock_a = corners(town_hall.normalise(frame, captured_wall=NOON))
    label_b, clock_b = corners(church.normalise(frame, captured_wall=NOON))
    _, clock_later = corners(town_hall.normalise(frame, captured_wall=NOON + 1))
    for region in (label_a, clock_a):  # white text with a black outline on the grey
        assert (region == 255).sum() > 50 and (region == 0).sum() > 50
    assert not np.array_equal(label_a, label_b)
    assert np.array_equal(clock_a, clock_b)  # one second, one clock, whichever camera
    assert not np.array_equal(clock_a, clock_later)


def test_cameras_drawing_clocks_at_once_draw_each_second_right() -> None:
    """Camera threads share the clock masks: drawn from eight threads at once, across more
    seconds than the shared cache holds, every tile shows its own second's clock."""
    frame = grey_frame()
    seconds = [NOON + second for second in range(120)]
    reference = {second: corners(Normaliser("r", SIZE, 0, Label("R", "R")).normalise(
        frame, captured_wall=second))[1] for second in seconds[:: 7]}

    def draw(worker: int) -> list[tuple[float, np.ndarray]]:
        normaliser = Normaliser(f"c{worker}", SIZE, 0, Label(f"Caméra {worker}", "Bourg"))
        order = seconds[worker:] + seconds[:worker]
        return [(second, corners(normaliser.normalise(frame, captured_wall=second))[1])
                for second in order]

    with ThreadPoolExecutor(8) as pool:
        results = [item for batch in pool.map(draw, range(8)) for item in batch]
    assert len(results) == 8 * len(seconds)
    for second, clock in results:
        if second in reference:
            assert np.array_equal(clock, reference[second]), time.strftime("%X", time.localtime(second))


def test_a_reduced_camera_says_so_on_its_tile() -> None:
    """Reduced for want of CPU (keyframes only), a tile says REDUCED at its top right, so
    that an operator does not take the jerky picture for a failing camera; given back its
    full rate, the mark goes at once."""
    frame = grey_frame()
    normaliser = Normaliser("a", SIZE, 0, Label("Mairie", "Bourg"))

    def top_right(tile) -> np.ndarray:
        return tile.planes()[0][:40, -160:]
    full = top_right(normaliser.normalise(frame, captured_wall=NOON))
    reduced = normaliser.normalise(frame, captured_wall=NOON, reduced=True)
    again = top_right(normaliser.normalise(frame, captured_wall=NOON))
    assert (full == 255).sum() == 0  # grey: nothing drawn there in full
    mark = top_right(reduced)
    assert (mark == 255).sum() > 50 and (mark == 0).sum() > 50, "white text, black outline"
    assert np.array_equal(corners(reduced)[1], corners(normaliser.normalise(
        frame, captured_wall=NOON))[1])  # the clock as ever
    assert np.array_equal(again, full)
