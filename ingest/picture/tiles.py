"""Tiles (normalised YUV420 images) and the TileStore: the latest tile per camera and size.

The TileStore is the seam between ingest and composition (DESIGN.md): one slot per
(camera, tile size), holding the newest tile and a sequence number. No queues: a reader
always gets the latest image, a slow reader simply skips the ones it missed.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

Size = tuple[int, int]  # (width, height), both even

BLACK_Y = 0  # tiles are full-range YUV (JFIF), what JPEG encoders expect
NEUTRAL_CHROMA = 128


def new_i420(width: int, height: int, luma: int = BLACK_Y) -> np.ndarray:
    """A YUV420 planar buffer in OpenCV's I420 layout: shape (height * 3 / 2, width)."""
    buffer = np.empty((height * 3 // 2, width), dtype=np.uint8)
    buffer[:height] = luma
    buffer[height:] = NEUTRAL_CHROMA
    return buffer


def i420_planes(buffer: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of an I420 buffer (U and V each (h/2, w/2))."""
    quarter = (height // 2) * (width // 2)
    chroma = buffer[height:].reshape(-1)
    y = buffer[:height]
    u = chroma[:quarter].reshape(height // 2, width // 2)
    v = chroma[quarter : 2 * quarter].reshape(height // 2, width // 2)
    return y, u, v


@dataclass(frozen=True)
class Tile:
    """One normalised image. Immutable once published: readers never see it change."""

    camera_id: str
    size: Size
    i420: np.ndarray
    seq: int
    captured_at: float  # time.monotonic() when the source frame was decoded
    # time.time() when the picture was taken, as near as known: when it was decoded, less
    # how far behind its camera's clock it came (ingest/source/lag.py); the tile's clock shows it
    captured_wall: float = field(default=0.0)

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return i420_planes(self.i420, self.width, self.height)


class TilePool:
    """The buffers of one normaliser's last tiles, reused once nobody holds them.

    A camera's tile is replaced at every frame. Allocating and freeing its buffer each time
    (100 kB to 1 MB) went through malloc's arena locks, which every camera thread contends
    for, and freed the old tile with the GIL held: with 64 cameras (bench B) 18 % of the
    GIL's time was spent in TileStore.publish dropping the tile it replaced.

    A tile is free when only this pool refers to it and nothing refers to its pixels (no
    reader holds the tile, no view of its planes is alive): CPython's reference counts say
    so exactly, and an object nobody refers to cannot be reached again."""

    KEEP = 3  # the store holds the newest, a wall's cell the one it shows: one to spare

    def __init__(self, size: Size) -> None:
        self._shape = (size[1] * 3 // 2, size[0])  # one normaliser: one tile size
        self._recent: deque[Tile] = deque()

    def buffer(self) -> np.ndarray:
        """A buffer for a new tile: a free one's, or a new one (contents undefined)."""
        for index in range(len(self._recent)):
            tile = self._recent[index]
            # References: the deque, `tile`, getrefcount's argument; the array: the tile's
            # field and the argument. Any more is a reader.
            if sys.getrefcount(tile) == 3 and sys.getrefcount(tile.i420) == 2:
                del self._recent[index]
                return tile.i420
        return np.empty(self._shape, np.uint8)

    def add(self, tile: Tile) -> None:
        self._recent.append(tile)
        if len(self._recent) > self.KEEP:
            self._recent.popleft()


class TileStore:
    """Latest tile per (camera id, size). Written by workers, read by compositors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tiles: dict[tuple[str, Size], Tile] = {}

    def publish(self, tile: Tile) -> None:
        with self._lock:
            self._tiles[(tile.camera_id, tile.size)] = tile

    def latest(self, camera_id: str, size: Size) -> Tile | None:
        with self._lock:
            return self._tiles.get((camera_id, size))

    def discard(self, camera_id: str, size: Size) -> None:
        """Drop one camera's tile of one size (its last consumer went away): ad-hoc mosaics
        of ever new layouts must not leave a tile per layout behind."""
        with self._lock:
            self._tiles.pop((camera_id, size), None)

    def forget(self, camera_id: str) -> None:
        """Drop every tile of a camera (it was removed or reconfigured)."""
        with self._lock:
            for key in [key for key in self._tiles if key[0] == camera_id]:
                del self._tiles[key]
