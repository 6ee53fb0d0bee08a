"""JPEG (libjpeg-turbo through simplejpeg) straight from YUV420 planes."""

from __future__ import annotations

import numpy as np
import simplejpeg

from ingest.picture.tiles import i420_planes


class JpegEncoder:
    """libjpeg-turbo (simplejpeg) from YUV420 planes: no colour conversion, no BGR copy."""

    content_type = "image/jpeg"

    def __init__(self, quality: int = 80) -> None:
        self.quality = quality

    def encode(self, canvas: np.ndarray, width: int, height: int) -> bytes:
        y, u, v = i420_planes(canvas, width, height)
        return simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=self.quality, fastdct=True)
