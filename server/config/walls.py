"""Video walls: a canvas size, a frame rate and a grid of cells showing cameras."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Self

from pydantic import Field, field_validator, model_validator

from server.config.types import (
    LAYOUT_FORM,
    MAX_GRID,
    SIZE_FORM,
    Identifier,
    Loc,
    Name,
    Section,
    problems_error,
    split_pair,
)


class Cell(Section):
    camera: Identifier | None = Field(
        None, description="Camera shown in the cell; null leaves it empty."
    )
    row: int = Field(ge=0, le=MAX_GRID - 1, strict=True, description="Top row of the cell, from 0.")
    column: int = Field(
        ge=0, le=MAX_GRID - 1, strict=True, description="Left column of the cell, from 0."
    )
    rows: int = Field(
        1, ge=1, le=MAX_GRID, strict=True, description="Number of rows the cell spans."
    )
    columns: int = Field(
        1, ge=1, le=MAX_GRID, strict=True, description="Number of columns the cell spans."
    )


class Wall(Section):
    id: Identifier = Field(description="Unique wall id, used in URLs and the API.")
    name: Name = Field(description="Name of the wall.")
    size: str = Field(
        "1920x1080",
        max_length=11,
        description="Canvas size WIDTHxHEIGHT in pixels, both even; "
        "width 160..7680, height 90..4320.",
    )
    fps: float = Field(
        15.0,
        ge=1,
        le=60,
        strict=True,
        allow_inf_nan=False,
        description="Frames composed per second.",
    )
    layout: str = Field("2x2", max_length=11, description=f"Grid COLUMNSxROWS, each 1..{MAX_GRID}.")
    cameras: list[Identifier | None] | None = Field(
        None,
        max_length=MAX_GRID * MAX_GRID,
        description="Grid shorthand: camera ids row by row, one per cell, null for an empty cell.",
    )
    cells: list[Cell] | None = Field(
        None,
        min_length=1,
        max_length=MAX_GRID * MAX_GRID,
        description="Explicit cells with spans; exclusive with cameras.",
    )
    communes: list[Identifier] = Field(
        default_factory=list,
        max_length=1_000,
        description="Communes whose municipal police may open this wall, while every camera "
        "on it is theirs (an operator adding another commune's camera closes it to them). "
        "Empty: operators, admins and kiosks only.",
    )

    @field_validator("size")
    @classmethod
    def _check_size(cls, value: str) -> str:
        width, height = split_pair(value, SIZE_FORM)
        if not (160 <= width <= 7680 and 90 <= height <= 4320):
            raise ValueError("width must be 160..7680 and height 90..4320")
        if width % 2 or height % 2:
            raise ValueError("width and height must be even")
        return value

    @field_validator("layout")
    @classmethod
    def _check_layout(cls, value: str) -> str:
        columns, rows = split_pair(value, LAYOUT_FORM)
        if not (1 <= columns <= MAX_GRID and 1 <= rows <= MAX_GRID):
            raise ValueError(f"columns and rows must each be 1..{MAX_GRID}")
        return value

    @model_validator(mode="after")
    def _check_cells(self) -> Self:
        problems: list[tuple[Loc, str]] = []
        grid = f"the {self.layout} layout ({self.columns} wide, {self.rows} high)"
        if self.cameras is not None and self.cells is not None:
            problems.append((("cells",), "cameras and cells are exclusive: keep one"))
        elif self.cameras is not None and len(self.cameras) > self.columns * self.rows:
            problems.append(
                (
                    ("cameras",),
                    f"{len(self.cameras)} cameras for {self.columns * self.rows} cells of {grid}",
                )
            )
        elif self.cells is not None:
            taken: dict[tuple[int, int], int] = {}
            for index, cell in enumerate(self.cells):
                if cell.column + cell.columns > self.columns or cell.row + cell.rows > self.rows:
                    problems.append((("cells", index), f"the cell reaches outside {grid}"))
                    continue
                covered = [
                    (row, column)
                    for row in range(cell.row, cell.row + cell.rows)
                    for column in range(cell.column, cell.column + cell.columns)
                ]
                others = sorted({taken[spot] for spot in covered if spot in taken})
                if others:
                    names = ", ".join(f"cells[{other}]" for other in others)
                    problems.append((("cells", index), f"the cell overlaps {names}"))
                    continue
                taken.update((spot, index) for spot in covered)
        if problems:
            raise problems_error(problems)
        return self

    @property
    def width(self) -> int:
        return split_pair(self.size, SIZE_FORM)[0]

    @property
    def height(self) -> int:
        return split_pair(self.size, SIZE_FORM)[1]

    @property
    def columns(self) -> int:
        return split_pair(self.layout, LAYOUT_FORM)[0]

    @property
    def rows(self) -> int:
        return split_pair(self.layout, LAYOUT_FORM)[1]

    def resolved_cells(self) -> list[Cell]:
        """The cells either way: the shorthand gives one 1x1 cell per grid position."""
        if self.cells is not None:
            return list(self.cells)
        cameras = self.cameras or []
        return [
            Cell(
                camera=cameras[index] if index < len(cameras) else None,
                row=index // self.columns,
                column=index % self.columns,
            )
            for index in range(self.columns * self.rows)
        ]

    def camera_references(self) -> Iterator[tuple[Loc, str]]:
        """(location below the wall, camera id) of every camera the wall shows."""
        for index, camera_id in enumerate(self.cameras or []):
            if camera_id is not None:
                yield ("cameras", index), camera_id
        for index, cell in enumerate(self.cells or []):
            if cell.camera is not None:
                yield ("cells", index, "camera"), cell.camera
