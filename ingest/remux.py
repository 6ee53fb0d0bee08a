"""A camera's own H.264, copied into fragmented MP4 without decoding: the cheapest and
sharpest single-camera view. Only for cameras without privacy masks (a masked camera is
never sent without re-encoding) whose stream is H.264.

Runs as a packet tap in the camera worker's thread; fragments leave through `deliver`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from fractions import Fraction

import av

from ingest.encoders import EncodedFrame
from ingest.fmp4 import MIME_TEMPLATE, avc_codec_string
from ingest.fragments import Packager, Sink, open_muxer

logger = logging.getLogger(__name__)


# A camera that does not say its frame rate: the first fragment's duration is a guess,
# corrected from the second one on (ingest/fragments.py).
DEFAULT_FRAME_PERIOD = Fraction(1, 15)


class Remuxer:
    def __init__(self, deliver: Callable[[EncodedFrame], None]) -> None:
        self._deliver = deliver
        self._input: av.video.stream.VideoStream | None = None
        self._packager: Packager | None = None
        self._output = None
        self._header_sent = False
        self._seq = 0
        self._mime = MIME_TEMPLATE.format(codec="avc1.42E01F")

    def _reset(self, stream: av.video.stream.VideoStream) -> None:
        """A new connection to the camera: a new muxer and, for viewers, a new init segment."""
        self.close()
        self._input = stream
        sink = Sink()
        container = open_muxer(sink)
        self._output = container.add_stream_from_template(stream)
        rate = stream.guessed_rate or stream.average_rate
        self._packager = Packager(container, sink, 1 / rate if rate else DEFAULT_FRAME_PERIOD)
        self._header_sent = False
        self._mime = MIME_TEMPLATE.format(codec=avc_codec_string(stream.codec_context.extradata))

    def __call__(self, packet: av.Packet, stream: av.video.stream.VideoStream) -> None:
        if stream is not self._input:
            self._reset(stream)
        if not self._header_sent and not packet.is_keyframe:
            return  # a stream must start on a keyframe
        if packet.dts is None or packet.pts is None or packet.time_base is None:
            return
        at = Fraction(packet.dts) * packet.time_base  # before the muxer rescales it
        packet.stream = self._output
        fragments = self._packager.package(packet, at)
        if fragments and not self._header_sent:
            self._deliver(EncodedFrame(self._packager.init_segment or b"", 0, time.time(), True,
                                       self._mime, header=True))
            self._header_sent = True
        for data, keyframe in fragments:
            self._seq += 1
            self._deliver(EncodedFrame(data, self._seq, time.time(), keyframe, "video/mp4"))

    def close(self) -> None:
        if self._packager is not None:
            self._packager.close()  # the camera may have gone mid-fragment: it copes
            self._packager = None
