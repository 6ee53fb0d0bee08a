"""Encoders: a composed YUV420 canvas (or a camera's own packets) in, bytes out.

Holds: base (EncodedFrame, the WallEncoder shape, the registry of output formats), jpeg
(libjpeg-turbo from YUV planes), fmp4 (H.264 in fragmented MP4 for Media Source
Extensions), remux (a camera's own H.264 into fMP4, no decoding), rtp (access units into
RTP packets and RTCP sender reports, for the RTSP output). A new output format is
one module that registers its Format here, and one import line below.
May import: ingest.picture (tile planes) and itself.
"""

# Importing them registers their formats, in this order (the order a wall encodes them).
from ingest.encode import jpeg  # noqa: F401, I001
from ingest.encode import fmp4  # noqa: F401, I001
from ingest.encode.base import EncodedFrame, Format, WallEncoder, formats
from ingest.encode.jpeg import JpegEncoder

__all__ = ["EncodedFrame", "Format", "JpegEncoder", "WallEncoder", "formats"]
