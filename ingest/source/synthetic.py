"""`synthetic://` cameras: frames drawn in-process (demo, tests, bench), each stamped with
its camera tag and time (ingest/picture/stamp.py), no camera needed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np

from ingest.picture.stamp import draw_stamp
from ingest.source.scenes import SCENES, Scene, apply_fault
from ingest.source.base import Packet, SourceError, SourceSpec, register_scheme
from ingest.source.decoding import IDLE_STILL_INTERVAL, Decoding

# A synthetic camera reduced for want of CPU draws a picture this often, as a camera with a
# one-second GOP shows its keyframes.
REDUCED_PICTURE_INTERVAL = 1.0
# Faults asked for demo cameras, by synthetic camera name (POST /api/demo/cameras/{id}/fault):
# "freeze", "black", "cover" or "blur". Read by each source at every picture.
DEMO_FAULTS: dict[str, str] = {}


class SyntheticSource:
    """synthetic://NAME?width=W&height=H&fps=F&tag=T[&scene=S] : a moving test pattern with a
    stamp, or with `scene` a place (ingest/source/scenes.py: street, square, parking...).

    Drawn in YUV420 with numpy (no encode/decode): used by `vigie demo` and tests.
    """

    codec = "synthetic"
    behind = None  # drawn here, never late
    lag_skips = 0

    def sample_aspect(self) -> float:
        return 1.0

    def __init__(self, spec: SourceSpec) -> None:
        parts = urlsplit(spec.url)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        try:
            self.width = int(query.get("width", 640)) // 2 * 2
            self.height = int(query.get("height", 360)) // 2 * 2
            self.fps = float(query.get("fps", 15))
            self.tag = int(query.get("tag", 0)) & 0xFF
        except ValueError:
            raise SourceError("bad synthetic parameters") from None
        if not (16 <= self.width <= 3840 and 16 <= self.height <= 2160 and 0.5 <= self.fps <= 60):
            raise SourceError("synthetic parameters out of range")
        name = parts.netloc or parts.path.strip("/")
        self.name = name
        scene = query.get("scene")
        if scene is not None and scene not in SCENES:
            raise SourceError(f"unknown synthetic scene (one of {', '.join(SCENES)})")
        self._scene = None if scene is None else Scene(scene, self.width, self.height, name)
        self._started = time.monotonic()
        self._last: np.ndarray | None = None
        seed = sum(name.encode()) % 200
        # A diagonal gradient tinted per camera; a bright bar sweeps across it.
        ys, xs = np.mgrid[0 : self.height, 0 : self.width]
        self._base_y = (40 + (xs + ys) * 160 // (self.width + self.height)).astype(np.uint8)
        self._u = np.full((self.height // 2, self.width // 2), 128 + (seed - 100) // 2, np.uint8)
        self._v = np.full((self.height // 2, self.width // 2), 128 - (seed - 100) // 3, np.uint8)
        self._index = 0

    def packets(self, decoding: Callable[[], Decoding],
                live: threading.Event | None = None) -> Iterator[Packet]:
        period = 1.0 / self.fps
        next_due = time.monotonic()
        live = live or threading.Event()
        while True:
            mode = decoding()
            if mode is Decoding.FULL or live.is_set():
                interval, active = period, True  # decoded, or remuxed as it comes
            elif mode is Decoding.REDUCED:
                interval, active = max(period, REDUCED_PICTURE_INTERVAL), True
            else:
                interval, active = max(period, IDLE_STILL_INTERVAL), False
            next_due += interval
            delay = next_due - time.monotonic()
            if delay <= 0:
                next_due = time.monotonic()
            elif active:
                time.sleep(delay)
            elif live.wait(delay):
                next_due = time.monotonic()  # someone started watching: a picture now
            yield Packet(self.width * self.height // 10, self._frame())

    def _frame(self) -> av.VideoFrame:
        self._index += 1
        fault = DEMO_FAULTS.get(self.name)
        if fault == "freeze" and self._last is not None:
            return av.VideoFrame.from_ndarray(self._last, format="yuv420p")  # the same picture again
        buffer = np.empty((self.height * 3 // 2, self.width), np.uint8)
        y = buffer[: self.height]
        if self._scene is not None:
            self._scene.draw(y, time.monotonic() - self._started)
        else:
            y[:] = self._base_y
            bar = (self._index * 8) % self.width
            y[:, bar : bar + max(4, self.width // 40)] = 235
        if fault:
            apply_fault(fault, y)
        quarter = (self.height // 2) * (self.width // 2)
        chroma = buffer[self.height :].reshape(-1)
        chroma[:quarter] = self._u.reshape(-1)
        chroma[quarter:] = self._v.reshape(-1)
        draw_stamp(y, self.tag, chroma=(chroma[:quarter].reshape(self.height // 2, -1),
                                        chroma[quarter:].reshape(self.height // 2, -1)))
        self._last = buffer
        return av.VideoFrame.from_ndarray(buffer, format="yuv420p")

    def close(self) -> None:
        pass


register_scheme("synthetic", SyntheticSource)
