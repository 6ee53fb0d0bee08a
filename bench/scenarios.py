"""The rows of issue 5's bench (scenarios A-D, full and quick) and the issue's targets."""

from __future__ import annotations

from dataclasses import dataclass

from bench import analyse
from bench.cameras import FIRST_TAG, FPS

KEEPS_UP_FPS = 14.0  # the floor keeps up when every stream decodes and every wall encodes this
DISTURBED = 0.25  # s/s of CPU used outside the bench during a window: flagged with "!"

# Targets of issue 5.
TARGET_A_CPU_FLOOR = 1.25
TARGET_A_CPU_XSTACK = 0.8
TARGET_A_P95 = {"jpeg": 250.0, "fmp4": 400.0}
TARGET_A_FULL_WALL = 2.0
TARGET_B_FPS = 14.5
TARGET_C_PER_VIEWER = 0.2   # % of one core
TARGET_D_IDLE = 0.25


# -- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    scenario: str
    cameras: int
    walls: int
    grid: int
    size: tuple[int, int]
    fmt: str | None               # viewers' format: "jpeg" (MJPEG over HTTP) | "fmp4" (WS)
    viewers_per_wall: int         # viewers during the (first) window
    live: tuple[int, ...]         # cameras served live-stamped (latency)
    floor: str | None             # "jpeg" | "h264" | "none" (decode only) | None (reuse)
    xstack: bool = False
    full_wall: bool = False
    profile: bool = False
    fanout: tuple[int, ...] = ()  # C: total viewers in the next windows (1 in the first)
    fallback: bool = False        # B: if the floor cannot keep up, retry with fewer walls
    note: str = ""
    reuse: str | None = None      # C: the row whose floor and xstack apply

    @property
    def cells(self) -> int:
        return self.grid * self.grid

    def wall_cameras(self, wall: int) -> list[int]:
        return list(range(wall * self.cells, min(self.cameras, (wall + 1) * self.cells)))

    def geometry(self, wall: int) -> analyse.WallGeometry:
        cams = self.wall_cameras(wall)
        return analyse.WallGeometry(self.size[0], self.size[1], self.grid,
                                    tuple(FIRST_TAG + i for i in cams),
                                    tuple(i in self.live for i in cams))

    def viewer_path(self, wall: int) -> str:
        if self.fmt == "fmp4":
            return f"/walls/w{wall + 1}/ws?format=fmp4"
        return f"/walls/w{wall + 1}/mjpeg"

    def describe(self) -> str:
        w, h = self.size
        walls = f"{self.walls} wall{'s' if self.walls > 1 else ''} {self.grid}x{self.grid} {w}x{h}@{FPS}"
        if self.scenario == "D":
            who = "nobody watching"
        elif self.fanout:
            who = f"1, {', '.join(map(str, self.fanout))} {self.viewer_kind()} viewers"
        else:
            who = f"{self.viewers_per_wall * self.walls} {self.viewer_kind()} viewer(s)"
        return (f"{self.cameras} cams ({len(self.live)} live-stamped) -> {walls}, {who}"
                + (f" [{self.note}]" if self.note else ""))

    def viewer_kind(self) -> str:
        return {"jpeg": "MJPEG", "fmp4": "WS fMP4"}.get(self.fmt or "", "-")


def diagonal(grid: int, walls: int) -> tuple[int, ...]:
    """Live cameras of A (walls=1: the wall's diagonal) or B (one per wall, moving along)."""
    cells = grid * grid
    if walls == 1:
        return tuple(i * (grid + 1) for i in range(grid))
    return tuple(k * cells + (k * (grid + 1)) % cells for k in range(walls))


def plan(quick: bool) -> list[Row]:
    if quick:
        # Cells of 480x270 as in the full run: the cameras are scaled by 3/4 there too.
        grid, size, b_cams, b_walls, b_viewers, fanout = 2, (960, 540), 8, 2, 3, (3, 5)
    else:
        grid, size, b_cams, b_walls, b_viewers, fanout = 4, (1920, 1080), 64, 4, 20, (50, 200)
    a_cams = grid * grid
    a_live = diagonal(grid, 1)
    b_live = diagonal(grid, b_walls)
    return [
        Row("A mjpeg", "A", a_cams, 1, grid, size, "jpeg", 1, a_live, "jpeg", xstack=True,
            full_wall=True, profile=True),
        Row("A fmp4", "A", a_cams, 1, grid, size, "fmp4", 1, a_live, "h264", xstack=True,
            full_wall=True, profile=True),
        Row("B", "B", b_cams, b_walls, grid, size, "jpeg", b_viewers, b_live, "jpeg",
            xstack=True, fallback=True),
        Row("C mjpeg", "C", a_cams, 1, grid, size, "jpeg", 1, a_live, None, fanout=fanout,
            reuse="A mjpeg"),
        Row("C fmp4", "C", a_cams, 1, grid, size, "fmp4", 1, a_live, None, fanout=fanout,
            reuse="A fmp4"),
        Row("D", "D", b_cams, b_walls, grid, size, None, 0, (), "none", profile=True),
    ]
