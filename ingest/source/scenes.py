"""Scenes for synthetic cameras (`synthetic://NAME?scene=street`): a still, textured place
drawn once per camera (a street, a square, a car park, a station, a school yard, a bridge...)
with shapes passing through it, so that a demo's cameras look like nine places, not one, and
picture health (ingest/camera/picture_health.py) has a scene to judge. Grey levels only
(luma); the camera's tint comes from its chroma.

Faults for the demo (POST /api/demo/cameras/{id}/fault): a synthetic camera's picture can be
frozen, black, covered or blurred, to watch picture health raise and clear the condition.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

SCENES = ("street", "square", "parking", "station", "school", "bridge", "stadium", "hall", "roundabout")
FAULTS = ("freeze", "black", "cover", "blur")


class Scene:
    """One place: its background (drawn once) and what passes through it."""

    def __init__(self, kind: str, width: int, height: int, seed: str) -> None:
        self.width, self.height = width, height
        random = np.random.default_rng(zlib.crc32(f"{kind}/{seed}".encode()))
        self.background = self._draw(kind, random)
        lanes = [int(height * f) for f in (0.62, 0.72, 0.82)]
        # (lane y, speed px/s, length, height, grey, phase)
        self.movers = [(int(random.choice(lanes)), float(random.uniform(30, 120)) * random.choice((-1, 1)),
                        int(random.integers(width // 12, width // 5)), int(random.integers(height // 14, height // 7)),
                        int(random.integers(20, 235)), float(random.uniform(0, 100))) for _ in range(3)]

    def _draw(self, kind: str, random: np.random.Generator) -> np.ndarray:
        w, h = self.width, self.height
        # Texture: coarse noise, smoothed (walls, tarmac, grass), lit from one side.
        noise = random.integers(70, 170, (h // 10 + 2, w // 10 + 2)).astype(np.uint8)
        y = cv2.resize(cv2.GaussianBlur(noise, (3, 3), 0), (w, h), interpolation=cv2.INTER_LINEAR)
        y = cv2.addWeighted(y, 0.6, np.tile(np.linspace(60, 150, w, dtype=np.float32), (h, 1)).astype(np.uint8), 0.4, 0)
        sky = int(h * random.uniform(0.18, 0.35)) if kind not in ("hall", "parking") else 0
        if sky:
            y[:sky] = np.linspace(205, 170, sky, dtype=np.uint8)[:, None]
        ground = int(h * 0.55)
        y[ground:] = cv2.addWeighted(y[ground:], 0.5, np.full_like(y[ground:], 85), 0.5, 0)
        for _ in range(int(random.integers(6, 14))):  # buildings, stands, shelters, trees
            x0 = int(random.integers(0, w - w // 10))
            bw, bh = int(random.integers(w // 14, w // 4)), int(random.integers(h // 8, h // 2))
            top = max(sky // 2, ground - bh)
            shade = int(random.integers(40, 220))
            cv2.rectangle(y, (x0, top), (x0 + bw, ground), shade, -1)
            for wx in range(x0 + 6, x0 + bw - 8, 14):  # windows, openings
                for wy in range(top + 6, ground - 10, 18):
                    cv2.rectangle(y, (wx, wy), (wx + 6, wy + 9), (shade + 90) % 256, -1)
        marks = {"street": 2, "square": 0, "parking": 8, "station": 3, "school": 1, "bridge": 2,
                 "stadium": 5, "hall": 0, "roundabout": 1}.get(kind, 2)
        for index in range(marks):  # road markings, parking bays, rails
            x = int(w * (index + 1) / (marks + 1))
            cv2.line(y, (x, ground + 4), (x - w // 12, h - 1), 230, 2)
        if kind in ("square", "roundabout", "stadium"):
            cv2.ellipse(y, (w // 2, int(h * 0.78)), (w // 5, h // 10), 0, 0, 360, 215, 3)
        if kind == "bridge":
            cv2.line(y, (0, ground), (w, ground - h // 12), 225, 4)
            for x in range(0, w, w // 16):
                cv2.line(y, (x, ground - x * h // (12 * w)), (x, ground - x * h // (12 * w) - h // 10), 200, 2)
        return y

    def draw(self, y: np.ndarray, t: float) -> None:
        """The scene at time t into the luma plane `y`."""
        y[:] = self.background
        for lane, speed, length, tall, grey, phase in self.movers:
            span = self.width + length
            x = int((phase + t) * speed) % span - length
            cv2.rectangle(y, (x, lane - tall), (x + length, lane), grey, -1)
            cv2.rectangle(y, (x + length // 6, lane - tall - tall // 2), (x + length * 2 // 3, lane - tall), grey // 2 + 60, -1)


def apply_fault(fault: str, y: np.ndarray) -> None:
    """A fault over a freshly drawn luma plane (before the camera's own text is drawn:
    a camera's clock stays sharp when its lens is not). A frozen camera is its source's to
    do: the same whole picture again."""
    if fault == "black":
        y[:] = 16
    elif fault == "cover":
        y[:, : y.shape[1] * 3 // 4] = 92  # a sign, or a bag over three quarters of the lens
    elif fault == "blur":
        y[:] = cv2.GaussianBlur(y, (0, 0), 4.0)
