"""Encoders: a composed YUV420 canvas (or a camera's own packets) in, bytes out.

Holds: base (EncodedFrame), jpeg (libjpeg-turbo from YUV planes), fmp4 (H.264 in fragmented
MP4 for Media Source Extensions), remux (a camera's own H.264 into fMP4, no decoding).
May import: ingest.picture (tile planes) and itself.
"""

from ingest.encode.base import EncodedFrame
from ingest.encode.jpeg import JpegEncoder

__all__ = ["EncodedFrame", "JpegEncoder"]
