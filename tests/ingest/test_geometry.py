"""Pure geometry and timing rules: table-driven."""

import pytest

from ingest.camera.backoff import backoff_delay
from ingest.picture.layout import CellSpec, Rect, cell_rect, grid_cells, letterbox
from ingest.picture.normalise import FrameGate


@pytest.mark.parametrize(
    ("source", "box", "expected"),
    [
        ((640, 360), (480, 270), Rect(0, 0, 480, 270)),      # same aspect: fills the box
        ((640, 480), (480, 270), Rect(60, 0, 360, 270)),     # 4:3 in 16:9: bars left and right
        ((1080, 1920), (640, 360), Rect(218, 0, 202, 360)),  # portrait: a narrow column
        ((1920, 800), (640, 360), Rect(0, 46, 640, 266)),    # scope: bars top and bottom
    ],
)
def test_letterbox_keeps_aspect_and_centres(source, box, expected):
    rect = letterbox(*source, *box)
    assert rect == expected
    assert rect.x % 2 == rect.y % 2 == rect.width % 2 == rect.height % 2 == 0
    assert abs(rect.width / rect.height - source[0] / source[1]) < 0.03


def test_letterbox_honours_anamorphic_pixels():
    # 720x576 PAL with 16:11 pixels displays as 1047x576 (1.82:1): wider than 16:9
    rect = letterbox(720, 576, 640, 360, sample_aspect=16 / 11)
    assert rect == Rect(0, 4, 640, 352)


@pytest.mark.parametrize(
    ("cell", "grid", "canvas", "expected"),
    [
        (CellSpec("a", 0, 0), (2, 2), (1280, 720), Rect(0, 0, 640, 360)),
        (CellSpec("a", 1, 1), (2, 2), (1280, 720), Rect(640, 360, 640, 360)),
        (CellSpec("a", 0, 0, 2, 2), (3, 3), (1920, 1080), Rect(0, 0, 1280, 720)),
        (CellSpec("a", 2, 2), (3, 3), (1000, 562), Rect(666, 374, 334, 188)),
    ],
)
def test_cell_rect_on_even_pixels(cell, grid, canvas, expected):
    assert cell_rect(cell, *grid, *canvas) == expected


def test_grid_cells_fill_row_major_and_leave_empty_cells():
    cells = grid_cells(2, 2, ["a", None, "c"])
    assert [(c.camera_id, c.row, c.column) for c in cells] == [
        ("a", 0, 0), (None, 0, 1), ("c", 1, 0), (None, 1, 1)]


@pytest.mark.parametrize(("failures", "delay"), [(0, 0), (1, 1), (2, 2), (3, 5), (4, 10), (5, 30), (50, 30)])
def test_backoff_steps_and_cap(failures, delay):
    assert backoff_delay(failures) == delay


def test_frame_gate_passes_wall_rate_from_faster_camera():
    gate = FrameGate(fps=15)
    admitted = sum(gate.admit(i / 25) for i in range(250))  # 10 s of a 25 fps camera
    assert 145 <= admitted <= 155


def test_frame_gate_passes_everything_from_slower_camera():
    gate = FrameGate(fps=15)
    assert all(gate.admit(i / 10) for i in range(100))


def test_frame_gate_passes_a_jittery_camera_at_the_wall_rate():
    import random

    rng = random.Random(7)
    gate = FrameGate(fps=15)
    arrivals = [i / 15 + rng.uniform(-0.02, 0.02) for i in range(150)]
    assert sum(gate.admit(t) for t in arrivals) == 150
