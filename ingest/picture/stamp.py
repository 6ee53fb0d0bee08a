"""Machine-readable frame stamps: a camera tag and a wall-clock time drawn as blocks.

Test cameras (the RTSP simulator and `synthetic://` sources) draw a band of black and white
blocks across the top of every frame. Any output of Vigie (a tile, a wall, a JPEG) can be
read back to tell which camera a cell shows and how old the frame is (glass-to-glass).

Layout: 48 bits = tag (8) + milliseconds of the epoch modulo 2**32 (32) + CRC-8 (8), drawn
as 2 rows of 24 blocks covering the full width and the top 2/16 of the height. Blocks are
large so that the code survives scaling to a small tile and JPEG compression.

This module depends on numpy only: the simulator imports it from Debian's python3.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

COLUMNS = 24
ROWS = 2
BITS = COLUMNS * ROWS
BAND_FRACTION = ROWS / 16  # the band covers this fraction of the frame height
LUMA_ONE = 235
LUMA_ZERO = 16
MS_MODULO = 2**32


@dataclass(frozen=True)
class Stamp:
    tag: int
    ms: int  # epoch milliseconds modulo 2**32

    def age_ms(self, now_ms: int | None = None) -> int:
        """Milliseconds between the stamp and `now_ms` (default: the clock now), wrap-safe."""
        now = now_ms if now_ms is not None else now_stamp_ms()
        return (now - self.ms) % MS_MODULO


def now_stamp_ms() -> int:
    return int(time.time() * 1000) % MS_MODULO


def _crc8(payload: bytes) -> int:
    crc = 0xFF  # non-zero start: an all-black or all-white band is not a valid stamp
    for byte in payload:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _bits(tag: int, ms: int) -> list[int]:
    payload = bytes([tag & 0xFF]) + (ms % MS_MODULO).to_bytes(4, "big")
    word = int.from_bytes(payload + bytes([_crc8(payload)]), "big")
    return [(word >> (BITS - 1 - i)) & 1 for i in range(BITS)]


def band_height(frame_height: int) -> int:
    return max(ROWS, int(frame_height * BAND_FRACTION))


def draw_stamp(luma: np.ndarray, tag: int, ms: int | None = None,
               chroma: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Draw the stamp in place on a luma plane (and neutralise chroma under it if given)."""
    height, width = luma.shape[:2]
    stamp_ms = now_stamp_ms() if ms is None else ms
    band = band_height(height)
    for index, bit in enumerate(_bits(tag, stamp_ms)):
        row, column = divmod(index, COLUMNS)
        y0, y1 = row * band // ROWS, (row + 1) * band // ROWS
        x0, x1 = column * width // COLUMNS, (column + 1) * width // COLUMNS
        luma[y0:y1, x0:x1] = LUMA_ONE if bit else LUMA_ZERO
    if chroma is not None:
        for plane in chroma:
            plane[: (band + 1) // 2, :] = 128


def read_stamp(gray: np.ndarray) -> Stamp | None:
    """Read a stamp from a grey image of the whole (possibly scaled) source frame.

    `gray` must be exactly the area the source frame occupies (for a letterboxed tile: the
    content rectangle, not the bars). Returns None when the checksum does not match.
    """
    height, width = gray.shape[:2]
    band = band_height(height)
    word = 0
    for index in range(BITS):
        row, column = divmod(index, COLUMNS)
        y0, y1 = row * band // ROWS, (row + 1) * band // ROWS
        x0, x1 = column * width // COLUMNS, (column + 1) * width // COLUMNS
        # Sample the middle half of the block: edges blur under scaling and JPEG.
        dy, dx = max(1, (y1 - y0) // 4), max(1, (x1 - x0) // 4)
        block = gray[y0 + dy : max(y0 + dy + 1, y1 - dy), x0 + dx : max(x0 + dx + 1, x1 - dx)]
        if block.size == 0:
            return None
        word = (word << 1) | int(float(block.mean()) > (LUMA_ONE + LUMA_ZERO) / 2)
    raw = word.to_bytes(BITS // 8, "big")
    if _crc8(raw[:5]) != raw[5]:
        return None
    return Stamp(tag=raw[0], ms=int.from_bytes(raw[1:5], "big"))
