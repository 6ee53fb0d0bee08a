"""JPEG (libjpeg-turbo through simplejpeg) straight from YUV420 planes."""

from __future__ import annotations

import numpy as np
import simplejpeg

from ingest.encode.base import EncodedFrame, Format, register_format
from ingest.picture.tiles import i420_planes


class JpegEncoder:
    """libjpeg-turbo (simplejpeg) from YUV420 planes: no colour conversion, no BGR copy."""

    content_type = "image/jpeg"

    def __init__(self, quality: int = 80) -> None:
        self.quality = quality

    def encode(self, canvas: np.ndarray, width: int, height: int) -> bytes:
        y, u, v = i420_planes(canvas, width, height)
        return simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=self.quality, fastdct=True)


JPEG = "jpeg"  # MJPEG, snapshots and JPEG WebSockets are JPEG by nature


class JpegWallEncoder:
    """The JPEG format of a wall: every frame stands alone."""

    def __init__(self, width: int, height: int, fps: float, quality: int = 80) -> None:
        self._size = (width, height)
        self._encoder = JpegEncoder(quality)

    def encode(self, canvas: np.ndarray, seq: int, wall_time: float,
               keyframe: bool = False) -> list[EncodedFrame]:
        return [EncodedFrame(self._encoder.encode(canvas, *self._size), seq, wall_time)]

    def close(self) -> None:
        pass


# Two frames waiting at most: a viewer gets the latest, never a queue of old ones.
register_format(Format(JPEG, dependent=False, buffer_frames=2, make=JpegWallEncoder))

