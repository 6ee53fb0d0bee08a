"""A camera's own H.264, copied into fragmented MP4 without decoding: the cheapest and
sharpest single-camera view. Only for cameras without privacy masks (a masked camera is
never sent without re-encoding) whose stream is H.264.

Runs as a packet tap in the camera worker's thread; fragments leave through `deliver`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

import av

from ingest.encode.base import EncodedFrame
from ingest.encode.fmp4 import MIME_TEMPLATE, FragmentSink, avc_codec_string, split_boxes

logger = logging.getLogger(__name__)


class Remuxer:
    def __init__(self, deliver: Callable[[EncodedFrame], None]) -> None:
        self._deliver = deliver
        self._input: av.video.stream.VideoStream | None = None
        self._container: av.container.OutputContainer | None = None
        self._output = None
        self._sink = FragmentSink()
        self._pending: deque[tuple[bool, float]] = deque()
        self._moof = b""
        self._ftyp = b""
        self._header_sent = False
        self._seq = 0
        self._mime = MIME_TEMPLATE.format(codec="avc1.42E01F")

    def _reset(self, stream: av.video.stream.VideoStream) -> None:
        """A new connection to the camera: a new muxer and, for viewers, a new init segment."""
        self.close()
        self._input = stream
        self._sink = FragmentSink()
        self._container = av.open(self._sink, mode="w", format="mp4", options={
            "movflags": "empty_moov+default_base_moof+frag_every_frame+skip_trailer"})
        self._output = self._container.add_stream_from_template(stream)
        self._pending.clear()
        self._header_sent = False
        self._mime = MIME_TEMPLATE.format(codec=avc_codec_string(stream.codec_context.extradata))

    def __call__(self, packet: av.Packet, stream: av.video.stream.VideoStream) -> None:
        if stream is not self._input:
            self._reset(stream)
        if not self._header_sent and not packet.is_keyframe:
            return  # a stream must start on a keyframe
        if packet.dts is None or packet.pts is None:
            return
        self._pending.append((bool(packet.is_keyframe), time.time()))
        packet.stream = self._output
        self._container.mux(packet)
        for kind, box in split_boxes(self._sink.buffer):
            if kind == b"ftyp":
                self._ftyp = box
            elif kind == b"moov":
                self._deliver(EncodedFrame(self._ftyp + box, 0, time.time(), True, self._mime,
                                           header=True))
                self._header_sent = True
            elif kind == b"moof":
                self._moof = box
            elif kind == b"mdat" and self._pending:
                keyframe, wall_time = self._pending.popleft()
                self._seq += 1
                self._deliver(EncodedFrame(self._moof + box, self._seq, wall_time, keyframe, "video/mp4"))

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the camera may have gone mid-fragment
                pass
            self._container = None
