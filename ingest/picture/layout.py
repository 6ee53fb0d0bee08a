"""Pure geometry: wall cells to pixel rectangles, letterboxing. No I/O, no state."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class CellSpec:
    """A cell of a grid: position and span in grid units, and the camera it shows."""

    camera_id: str | None
    row: int
    column: int
    rows: int = 1
    columns: int = 1


def _even(value: float) -> int:
    return int(value) // 2 * 2


def cell_rect(cell: CellSpec, grid_columns: int, grid_rows: int, width: int, height: int) -> Rect:
    """Pixel rectangle of a cell on a canvas; edges on even pixels so YUV420 planes align."""
    x0 = _even(cell.column * width / grid_columns)
    x1 = _even((cell.column + cell.columns) * width / grid_columns)
    y0 = _even(cell.row * height / grid_rows)
    y1 = _even((cell.row + cell.rows) * height / grid_rows)
    return Rect(x0, y0, x1 - x0, y1 - y0)


def letterbox(source_width: int, source_height: int, box_width: int, box_height: int,
              sample_aspect: float = 1.0) -> Rect:
    """The largest rectangle of the source's display aspect centred in the box (even edges).

    A 4:3 or a portrait camera is never stretched: bars fill the rest.
    """
    display_width = source_width * (sample_aspect or 1.0)
    scale = min(box_width / display_width, box_height / source_height)
    width = max(2, min(box_width, _even(round(display_width * scale))))
    height = max(2, min(box_height, _even(round(source_height * scale))))
    return Rect(_even((box_width - width) / 2), _even((box_height - height) / 2), width, height)


def grid_cells(columns: int, rows: int, camera_ids: list[str | None]) -> list[CellSpec]:
    """Row-major 1x1 cells for a grid shorthand; missing cameras are empty cells."""
    cells = []
    for index in range(columns * rows):
        row, column = divmod(index, columns)
        camera_id = camera_ids[index] if index < len(camera_ids) else None
        cells.append(CellSpec(camera_id, row, column))
    return cells
