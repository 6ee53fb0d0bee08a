"""Walls as the compositor knows them, from a config: the configured ones and one automatic
wall per commune, and the communes each wall is meant for (whose police may open it)."""

from __future__ import annotations

import logging
import math

from ingest.picture.layout import CellSpec, grid_cells
from ingest.wall.compositor import WallSpec
from server.config import VigieConfig, Wall

logger = logging.getLogger(__name__)

COMMUNE_WALL_PREFIX = "commune-"
COMMUNE_WALL_SIZE = (1920, 1080)
COMMUNE_WALL_FPS = 15.0


def wall_spec(wall: Wall) -> WallSpec:
    cells = tuple(CellSpec(cell.camera, cell.row, cell.column, cell.rows, cell.columns)
                  for cell in wall.resolved_cells())
    return WallSpec(wall.id, wall.name, wall.width, wall.height, wall.fps,
                    wall.columns, wall.rows, cells)


def grid_for(count: int) -> tuple[int, int]:
    """The most square grid (columns, rows) holding `count` cells, wider than tall."""
    columns = max(1, math.ceil(math.sqrt(count)))
    return columns, max(1, math.ceil(count / columns))


def commune_walls(config: VigieConfig) -> dict[str, WallSpec]:
    """One automatic wall per commune with cameras: all of its cameras, in config order."""
    walls = {}
    for commune in config.communes:
        camera_ids = [camera.id for camera in config.cameras if camera.commune == commune.id]
        if not camera_ids:
            continue
        columns, rows = grid_for(len(camera_ids))
        wall_id = COMMUNE_WALL_PREFIX + commune.id
        walls[wall_id] = WallSpec(wall_id, commune.name, *COMMUNE_WALL_SIZE, COMMUNE_WALL_FPS,
                                  columns, rows, tuple(grid_cells(columns, rows, camera_ids)))
    return walls


def wall_communes(config: VigieConfig) -> dict[str, frozenset[str]]:
    """The communes each wall is meant for (whose police may open it while every camera
    on it is theirs): a commune's automatic wall, that commune; a configured wall, its
    `communes`."""
    communes = {COMMUNE_WALL_PREFIX + commune.id: frozenset({commune.id}) for commune in config.communes}
    communes.update({wall.id: frozenset(wall.communes) for wall in config.walls})
    return communes


def all_walls(config: VigieConfig) -> dict[str, WallSpec]:
    walls = {wall.id: wall_spec(wall) for wall in config.walls}
    for wall_id, spec in commune_walls(config).items():
        if wall_id in walls:
            logger.warning("wall %s is defined in the config: no automatic commune wall", wall_id)
        else:
            walls[wall_id] = spec
    return walls
