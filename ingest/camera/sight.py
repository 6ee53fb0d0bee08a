"""What a camera's picture looks like, measured cheaply: a small grey copy of a decoded
frame and the features picture health judges it by (ingest/camera/picture_health.py).

Everything runs on a grey picture SIGHT_WIDTH wide (about 160x90), made from the luma plane
the decoder already gave, so a check costs well under a millisecond of the worker's thread
(FIELD-NOTES.md, picture health: Laplacian 45 us, entropy 26 us at that size). Privacy-masked
pixels are left out of every feature: they are uniform on purpose.

The picture is cut into a grid of cells (GRID): a cover, a spray or a sign hides part of the
scene, and which part is told cell by cell, by each cell's correlation with the reference
(a gain, gamma or night switch keeps it; a cover's texture does not), its spread and its
sharpness. Shifts are found by phase correlation of the histogram-equalised pictures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import av
import cv2
import numpy as np

SIGHT_WIDTH = 160
DETAIL_WIDTH = 320  # sharpness is measured on a copy this wide
GRID = (8, 6)  # cells across, down
# A cell's pixels must be at least this unmasked to count (a mask over most of it leaves
# too few pixels to judge).
CELL_MIN_VALID = 0.5

Polygon = Sequence[tuple[float, float]]


@dataclass
class Sight:
    """One small grey picture and what was measured of it; `taken` in seconds (monotonic
    or simulated: only differences are used)."""

    taken: float
    grey: np.ndarray          # uint8, full range
    valid: np.ndarray         # bool, True where not masked (shared by a camera's Sights)
    mean: float               # level of the unmasked picture, 0-255
    spread: float             # its standard deviation
    cell_std: np.ndarray      # (rows, cols) grey standard deviation per cell
    cell_valid: np.ndarray    # (rows, cols) bool: enough unmasked pixels to judge
    sharpness: np.ndarray     # (rows, cols) Laplacian over gradient energy per cell: falls with defocus
    cell_mean: np.ndarray     # (rows, cols) grey mean per cell


class SightMaker:
    """Makes Sights of one camera's frames (one per worker thread: buffers are reused)."""

    def __init__(self, masks: Sequence[Polygon] = ()) -> None:
        self._masks = [np.asarray(mask, dtype=np.float32) for mask in masks]
        self._size: tuple[int, int] | None = None
        self._valid: np.ndarray | None = None
        self._cell_valid: np.ndarray | None = None
        self._weight: np.ndarray | None = None
        self._cell_weight: np.ndarray | None = None
        self._mask_u8: np.ndarray | None = None
        self._inner_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._full_cells = np.ones(GRID[::-1], np.float32)

    def from_frame(self, frame: av.VideoFrame, taken: float) -> Sight:
        """From a decoded frame: its luma plane straight, when it has one (every camera
        codec's pictures do), else one swscale pass to grey."""
        name = frame.format.name
        if name.startswith(("yuv", "yuvj", "nv")) and "p10" not in name and "p12" not in name:
            plane = frame.planes[0]
            luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
            full_range = name.startswith("yuvj") or frame.color_range == 2
        else:
            luma, full_range = frame.to_ndarray(format="gray"), True
        return self.from_luma(luma, taken, full_range)

    def from_luma(self, luma: np.ndarray, taken: float, full_range: bool = True) -> Sight:
        """From a full-size grey picture: a copy DETAIL_WIDTH wide for sharpness (defocus
        of a pixel or two at full size barely shows at 160), and SIGHT_WIDTH wide for the rest."""
        height, width = luma.shape
        detail = luma
        if width > DETAIL_WIDTH:
            detail = cv2.resize(luma, (DETAIL_WIDTH, max(2, round(DETAIL_WIDTH * height / width))),
                                interpolation=cv2.INTER_AREA)
        grey = cv2.resize(detail, (SIGHT_WIDTH, max(2, round(SIGHT_WIDTH * height / width))),
                          interpolation=cv2.INTER_AREA)
        if not full_range:  # limited range (16-235) to full, as thresholds are written for
            grey = cv2.convertScaleAbs(grey, alpha=255 / 219, beta=-16 * 255 / 219)
        return self.from_grey(grey, taken, detail)

    def from_grey(self, grey: np.ndarray, taken: float, detail: np.ndarray | None = None) -> Sight:
        """From a grey picture already SIGHT_WIDTH wide (a stored reference)."""
        height, width = grey.shape
        if self._size != (width, height):
            self._prepare(width, height)
        if self._masks:
            grey = grey.copy()
            grey[~self._valid] = 0  # masked like every output: a reference is kept, and shown
        mean, spread = cv2.meanStdDev(grey, mask=self._mask_u8)
        cell_mean, cell_std = self.cell_stats(grey.astype(np.float32))
        if detail is None:
            sharp = _sharpness(grey, *self._inner(grey.shape))
        else:
            sharp = _sharpness(detail, *self._inner(detail.shape))
        return Sight(taken, grey, self._valid, float(mean[0, 0]), float(spread[0, 0]), cell_std,
                     self._cell_valid, sharp, cell_mean)

    def cell_stats(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per cell, the mean and standard deviation of `values` over unmasked pixels."""
        mean = self.cell_means(values)
        return mean, np.sqrt(np.maximum(self.cell_means(cv2.multiply(values, values)) - mean * mean, 0))

    def cell_means(self, values: np.ndarray) -> np.ndarray:
        """Per cell, the mean of `values` (float32, the picture's size) over unmasked pixels."""
        if self._masks:
            values = cv2.multiply(values, self._weight)
        return cv2.resize(values, GRID, interpolation=cv2.INTER_AREA) / self._cell_weight

    def _inner(self, shape: tuple[int, int]) -> tuple[np.ndarray | None, np.ndarray]:
        """For a picture of `shape`: the unmasked pixels (float 0/1; None: all of them),
        and each cell's share of them; cached (a camera's pictures keep their size). Kept
        only for a masked camera: 230 kB a camera at 320x180."""
        if not self._masks:
            return None, self._full_cells
        cached = self._inner_cache.get(shape)
        if cached is None:
            valid = self._unmasked(shape)
            cached = self._inner_cache[shape] = (valid, cv2.resize(valid, GRID, interpolation=cv2.INTER_AREA))
        return cached

    def _unmasked(self, shape: tuple[int, int]) -> np.ndarray:
        """1.0 where a picture of `shape` is not masked, 0.0 where it is (float32)."""
        plane = np.ones(shape, np.float32)
        for mask in self._masks:
            cv2.fillPoly(plane, [np.round(mask * (shape[1], shape[0])).astype(np.int32)], 0.0)
        return plane

    def _prepare(self, width: int, height: int) -> None:
        self._size = (width, height)
        weight = self._unmasked((height, width))
        self._valid = weight > 0
        self._mask_u8 = self._valid.astype(np.uint8) * 255
        self._weight = weight if self._masks else None
        share = cv2.resize(weight, GRID, interpolation=cv2.INTER_AREA)
        self._cell_valid = share >= CELL_MIN_VALID
        self._cell_weight = np.maximum(share, 1e-6)


def _equalise(grey: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Histogram equalisation from the unmasked pixels' histogram only."""
    histogram = np.bincount(pixels.ravel(), minlength=256).astype(np.float64)
    cumulative = histogram.cumsum()
    low = cumulative[np.nonzero(histogram)[0][0]]
    span = max(cumulative[-1] - low, 1.0)
    lut = np.clip(np.round((cumulative - low) / span * 255), 0, 255).astype(np.uint8)
    return cv2.LUT(grey, lut)


def _sharpness(grey: np.ndarray, inner: np.ndarray | None, weight: np.ndarray) -> np.ndarray:
    """Per cell: Laplacian energy over gradient energy (NaN where the cell is too flat or
    masked). Both grow with contrast alike, so their ratio does not move with gain or gamma;
    defocus takes the finest detail first, which the Laplacian weighs most, so the ratio
    falls with it. Per cell, so that a camera's own sharp text (its clock, drawn after the
    lens) cannot hide a defocused scene: the picture is judged on the median cell.
    `inner`: the unmasked pixels (0/1; None: all), `weight`: each cell's share of them."""
    picture = grey.astype(np.float32)  # once: OpenCV's filters run faster on float input
    laplacian = cv2.Laplacian(picture, cv2.CV_32F, ksize=1)
    gx = cv2.Sobel(picture, cv2.CV_32F, 1, 0, ksize=1)
    gy = cv2.Sobel(picture, cv2.CV_32F, 0, 1, ksize=1)
    energy = cv2.add(cv2.multiply(gx, gx), cv2.multiply(gy, gy))
    second = cv2.multiply(laplacian, laplacian)
    if inner is not None:
        energy, second = cv2.multiply(energy, inner), cv2.multiply(second, inner)
    gradient = cv2.resize(energy, GRID, interpolation=cv2.INTER_AREA)
    detail = cv2.resize(second, GRID, interpolation=cv2.INTER_AREA)
    with np.errstate(invalid="ignore", divide="ignore"):
        gradient_mean = gradient / np.maximum(weight, 1e-6)
        return np.where((weight >= CELL_MIN_VALID) & (gradient_mean >= 4.0), detail / np.maximum(gradient, 1e-6),
                        np.nan).astype(np.float32)


def cell_correlation(maker: SightMaker, reference: Sight, current: Sight) -> np.ndarray:
    """Per cell: the correlation of the current picture with the reference (1: the same
    scene, whatever the gain; near 0: something else, a cover's texture included; NaN where
    either is too flat to tell)."""
    return _correlation(maker, reference, current.grey.astype(np.float32), current.cell_mean, current.cell_std)


def _correlation(maker: SightMaker, reference: Sight, values: np.ndarray, mean: np.ndarray,
                 std: np.ndarray) -> np.ndarray:
    """cell_correlation of `values` (float32 grey, their cell means and spreads)."""
    product = maker.cell_means(reference.grey.astype(np.float32) * values) - reference.cell_mean * mean
    spread = reference.cell_std * std
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(spread > 1.0, product / np.maximum(spread, 1e-6), np.nan)


def changed_cells(maker: SightMaker, previous: Sight, current: Sight, threshold: float) -> np.ndarray:
    """Per cell: whether its mean absolute difference to the previous picture passes
    `threshold` grey levels (masked pixels left out)."""
    difference = cv2.absdiff(previous.grey, current.grey).astype(np.float32)
    return maker.cell_means(difference) > threshold


def correlation_moved_back(maker: SightMaker, reference: Sight, current: Sight,
                           dx: float, dy: float, angle: float = 0.0) -> np.ndarray:
    """cell_correlation with the current picture moved back by (dx, dy) and turned back by
    `angle` degrees about its centre: a scene that only moved finds its reference again, a
    cover does not."""
    height, width = current.grey.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -angle, 1.0)
    matrix[0, 2] -= dx
    matrix[1, 2] -= dy
    back = cv2.warpAffine(current.grey, matrix, current.grey.shape[::-1], borderMode=cv2.BORDER_REFLECT)
    values = back.astype(np.float32)
    return _correlation(maker, reference, values, *maker.cell_stats(values))


def shift_against(reference: Sight, current: Sight) -> tuple[float, float, float]:
    """Phase correlation of the histogram-equalised pictures (a gain or night switch does
    not move the peak): (dx, dy) in pixels and the peak's strength (0-1; a real scene
    shifted gives a clear peak, a cover none)."""
    window = cv2.createHanningWindow(reference.grey.shape[::-1], cv2.CV_32F)
    a = np.where(reference.valid, _equalise(reference.grey, reference.grey[reference.valid]), 128).astype(np.float32)
    b = np.where(current.valid, _equalise(current.grey, current.grey[current.valid]), 128).astype(np.float32)
    (dx, dy), response = cv2.phaseCorrelate(a, b, window)
    return float(dx), float(dy), float(response)


ROTATION_SIDE = 96   # the centred square the rotation is measured on (a turn keeps its centre)
ROTATION_BINS = 360  # angle bins of the log-polar spectrum: half a degree each over 180


def _log_polar_spectrum(sight: Sight) -> np.ndarray:
    """The log-polar map of the centred square's amplitude spectrum: a rotation of the
    picture is a shift along its angle axis, whatever the picture's own shift."""
    height, width = sight.grey.shape
    side = min(ROTATION_SIDE, height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = sight.grey[top : top + side, left : left + side].astype(np.float32)
    square -= square.mean()
    window = cv2.createHanningWindow((side, side), cv2.CV_32F)
    spectrum = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(square * window)))).astype(np.float32)
    return cv2.warpPolar(spectrum, (side, ROTATION_BINS), (side / 2, side / 2), side / 2,
                         cv2.WARP_POLAR_LOG + cv2.INTER_LINEAR)


def rotation_against(reference: Sight, current: Sight) -> tuple[float, float]:
    """The turn of the current picture against the reference, in degrees (Fourier-Mellin:
    phase correlation of the log-polar amplitude spectra), and the peak's strength."""
    (_, shift), response = cv2.phaseCorrelate(_log_polar_spectrum(reference), _log_polar_spectrum(current))
    angle = -shift * 360.0 / ROTATION_BINS  # counter-clockwise positive, as OpenCV turns pictures
    if angle > 90:
        angle -= 180
    elif angle < -90:
        angle += 180
    return float(angle), float(response)
