"""Pre-encoded stamped H.264 clips for the bench's light RTSP feeder (`bench/feeder.py`).

Each clip is a short loop (a whole number of GOPs, first frame an IDR with SPS/PPS in band)
of 640x360 frames that look like the simulator's (`tests/support/camsim`: moving diagonal stripes,
a sweeping bar, a colour per camera) and carry the stamp of `ingest.picture.stamp` with the
camera's tag. The stamp's clock is NOT live (it is the frame's index x the frame period,
modulo the loop): a looped camera tells which camera a cell shows, not how old it is.
Latency is read only from the live-encoded simulator cameras.

File format (read by the feeder under Debian's python3, standard library only): repeated
records `>I length, B flags (1 = keyframe), payload` of Annex B access units, one per frame.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ingest.picture.stamp import draw_stamp

PATTERN_PERIOD = 64
RECORD = struct.Struct(">IB")


class FrameMaker:
    """The simulator's picture (see tests/support/camsim/rtsp_server.py), drawn here with numpy."""

    def __init__(self, width: int, height: int, tag: int) -> None:
        self.width, self.height, self.tag = width, height, tag
        period = PATTERN_PERIOD
        ys, xs = np.mgrid[0 : height + period, 0 : width + period]
        stripes = ((xs + ys) % period) * (150.0 / period)
        self.tile = (30 + stripes + (tag * 37) % 40).astype(np.uint8)
        angle = tag * 2.399963
        self.u_value = int(128 + 70 * math.cos(angle))
        self.v_value = int(128 + 70 * math.sin(angle))
        self.bar_width = max(2, width // 32)

    def make(self, index: int, ms: int) -> np.ndarray:
        w, h = self.width, self.height
        frame = np.empty((h * 3 // 2, w), np.uint8)
        y = frame[:h]
        chroma = frame[h:].reshape(-1)
        quarter = (h // 2) * (w // 2)
        u = chroma[:quarter].reshape(h // 2, w // 2)
        v = chroma[quarter:].reshape(h // 2, w // 2)
        shift = (index * 3) % PATTERN_PERIOD
        y[:] = self.tile[shift : shift + h, shift : shift + w]
        bar_x = (index * 8) % max(1, w - self.bar_width)
        y[:, bar_x : bar_x + self.bar_width] = 220
        u[:] = self.u_value
        v[:] = self.v_value
        draw_stamp(y, tag=self.tag, ms=ms, chroma=(u, v))
        return frame


def encode_clip(path: Path, tag: int, width: int = 640, height: int = 360, fps: int = 15,
                gop: int = 15, frames: int = 60, kbps: int = 2000) -> dict:
    """Write one looped clip; returns {frames, keyframes, bytes, kbps}."""
    if frames % gop:
        raise ValueError("a clip must hold a whole number of GOPs (it loops on an IDR)")
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps, 1)
    # Like the simulator's x264enc: ultrafast, zerolatency (no B-frames), GOP `gop`,
    # about 2 Mbit/s (x264enc's default bitrate) unless `kbps` says. SPS/PPS repeated before every IDR.
    codec.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(gop),
                     "keyint_min": str(gop), "bf": "0", "sc_threshold": "0",
                     "b": f"{kbps}k", "maxrate": f"{kbps}k", "bufsize": f"{kbps // 2}k"}
    maker = FrameMaker(width, height, tag)
    period_ms = 1000 // fps
    packets: list[tuple[bytes, bool]] = []
    for index in range(frames):
        frame = av.VideoFrame.from_ndarray(maker.make(index, index * period_ms), format="yuv420p")
        frame.pts = index
        if index % gop == 0:
            frame.pict_type = av.video.frame.PictureType.I
        packets.extend((bytes(p), bool(p.is_keyframe)) for p in codec.encode(frame))
    packets.extend((bytes(p), bool(p.is_keyframe)) for p in codec.encode(None))
    if len(packets) != frames or not packets[0][1]:
        raise RuntimeError(f"clip {path}: {len(packets)} packets for {frames} frames")
    with open(path, "wb") as file:
        for data, key in packets:
            file.write(RECORD.pack(len(data), 1 if key else 0))
            file.write(data)
    total = sum(len(data) for data, _ in packets)
    return {"frames": frames, "keyframes": sum(key for _, key in packets), "bytes": total,
            "kbps": total * 8 * fps / frames / 1000}


def make_clips(folder: Path, tags: list[int], **kwargs) -> list[Path]:
    """One clip per tag in `folder` (reused if already there with the same parameters)."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = "-".join(f"{key}{value}" for key, value in sorted(kwargs.items()))
    paths = []
    for tag in tags:
        path = folder / f"tag{tag}{('-' + suffix) if suffix else ''}.h264au"
        if not path.exists():
            partial = path.with_suffix(".partial")
            encode_clip(partial, tag, **kwargs)
            partial.rename(path)
        paths.append(path)
    return paths
