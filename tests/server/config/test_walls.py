"""The walls section: sizes, layouts, cells and spans, references to cameras and communes."""

from __future__ import annotations

import pytest

from tests.server.config.cases import CAMERAS, COMMUNES, bad, check_bad, document, wall

WALLS_CASES = [
    bad(
        "unknown-camera-in-grid",
        document(COMMUNES, CAMERAS, wall("cameras:", "  - cam-a", "  - cam-z  #<")),
        "walls[0].cameras[1]",
        "unknown camera 'cam-z'",
    ),
    bad(
        "unknown-camera-in-cell",
        document(
            COMMUNES, CAMERAS, wall("cells:", "  - camera: nope  #<", "    row: 0", "    column: 0")
        ),
        "walls[0].cells[0].camera",
        "unknown camera 'nope'",
    ),
    bad(
        "wall-size-odd",
        document(COMMUNES, CAMERAS, wall("size: 1921x1080  #<")),
        "walls[0].size",
        "must be even",
    ),
    bad(
        "wall-size-text",
        document(COMMUNES, CAMERAS, wall("size: abc  #<")),
        "walls[0].size",
        "expected WIDTHxHEIGHT",
    ),
    bad(
        "wall-size-too-big",
        document(COMMUNES, CAMERAS, wall("size: 8000x4000  #<")),
        "walls[0].size",
        "width must be 160..7680",
    ),
    bad(
        "wall-layout-zero",
        document(COMMUNES, CAMERAS, wall("layout: '0x3'  #<")),
        "walls[0].layout",
        "must each be 1..8",
    ),
    bad(
        "wall-layout-too-big",
        document(COMMUNES, CAMERAS, wall("layout: 9x9  #<")),
        "walls[0].layout",
        "must each be 1..8",
    ),
    # YAML reads an unquoted 0x3 as the hexadecimal number 3
    bad(
        "wall-layout-hex",
        document(COMMUNES, CAMERAS, wall("layout: 0x3  #<")),
        "walls[0].layout",
        "expected text",
    ),
    bad(
        "wall-fps-text",
        document(COMMUNES, CAMERAS, wall("fps: fast  #<")),
        "walls[0].fps",
        "valid number",
    ),
    bad(
        "wall-too-many-cameras",
        document(COMMUNES, CAMERAS, wall("layout: 2x1", "cameras: [cam-a, cam-b, null]  #<")),
        "walls[0].cameras",
        "3 cameras for 2 cells of the 2x1 layout (2 wide, 1 high)",
    ),
    bad(
        "wall-cells-overlap",
        document(
            COMMUNES,
            CAMERAS,
            wall(
                "layout: 3x3",
                "cells:",
                "  - {camera: cam-a, row: 0, column: 0, rows: 2, columns: 2}",
                "  - {camera: cam-b, row: 1, column: 1}  #<",
            ),
        ),
        "walls[0].cells[1]",
        "the cell overlaps cells[0]",
    ),
    bad(
        "wall-cell-outside",
        document(
            COMMUNES,
            CAMERAS,
            wall(
                "layout: 2x2",
                "cells:",
                "  - {camera: cam-a, row: 0, column: 0}",
                "  - camera: cam-b  #<",
                "    row: 1",
                "    column: 1",
                "    columns: 2",
            ),
        ),
        "walls[0].cells[1]",
        "the cell reaches outside the 2x2 layout (2 wide, 2 high)",
    ),
    bad(
        "wall-cameras-and-cells",
        document(
            COMMUNES,
            CAMERAS,
            wall("cameras: [cam-a]", "cells: [{camera: cam-b, row: 0, column: 0}]  #<"),
        ),
        "walls[0].cells",
        "cameras and cells are exclusive",
    ),
    bad(
        "cell-row-fraction",
        document(COMMUNES, CAMERAS, wall("cells: [{row: 0.5, column: 0}]  #<")),
        "walls[0].cells[0].row",
        "valid integer",
    ),
    bad(
        "cell-unknown-key",
        document(
            COMMUNES, CAMERAS, wall("cells:", "  - row: 0", "    column: 0", "    colspan: 2  #<")
        ),
        "walls[0].cells[0].colspan",
        "unknown key",
    ),
]


@pytest.mark.parametrize(("text", "path", "fragment", "env"), WALLS_CASES)
def test_bad_walls_config_is_refused_with_file_line_path_and_reason(text, path, fragment, env):
    check_bad(text, path, fragment, env)
