"""Encoders: a composed YUV420 canvas in, bytes out. JPEG straight from the planes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import simplejpeg

from ingest.tiles import i420_planes


@dataclass(frozen=True)
class EncodedFrame:
    data: bytes
    seq: int
    wall_time: float  # when the canvas was composed (time.time())
    keyframe: bool = True
    content_type: str = "image/jpeg"
    header: bool = False  # an fMP4 init segment, not a frame
    # Renderings of this frame for one output (the MJPEG part with its headers), built once
    # on the event loop however many viewers send it.
    renderings: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)


class JpegEncoder:
    """libjpeg-turbo (simplejpeg) from YUV420 planes: no colour conversion, no BGR copy."""

    content_type = "image/jpeg"

    def __init__(self, quality: int = 80) -> None:
        self.quality = quality

    def encode(self, canvas: np.ndarray, width: int, height: int) -> bytes:
        y, u, v = i420_planes(canvas, width, height)
        return simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=self.quality, fastdct=True)
