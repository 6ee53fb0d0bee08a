"""H.264 in fragmented MP4 for the browser's Media Source Extensions.

PyAV's libx264 (ultrafast, zerolatency, baseline, no B-frames, short GOP) into FFmpeg's mp4
muxer with `frag_every_frame`: one moof+mdat fragment per frame, so a viewer never waits
for a whole GOP. The muxer writes fragment N when frame N+1 arrives: one frame of delay,
the price of a muxer we do not have to write ourselves.
"""

from __future__ import annotations

import io
import struct
import time
from collections import deque
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import ColorRange

from ingest.encode.base import EncodedFrame, Format, register_format
from ingest.picture.tiles import i420_planes

MIME_TEMPLATE = 'video/mp4; codecs="{codec}"'


class FragmentSink(io.RawIOBase):
    """Collects what the muxer writes."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.buffer += data
        return len(data)


def split_boxes(buffer: bytearray) -> list[tuple[bytes, bytes]]:
    """Remove complete top-level boxes from the front of `buffer`: [(type, box bytes)]."""
    boxes = []
    while len(buffer) >= 8:
        size, kind = struct.unpack(">I4s", buffer[:8])
        if size == 1 and len(buffer) >= 16:
            size = struct.unpack(">Q", buffer[8:16])[0]
        if size < 8 or len(buffer) < size:
            break
        boxes.append((bytes(kind), bytes(buffer[:size])))
        del buffer[:size]
    return boxes


def avc_codec_string(extradata: bytes | None) -> str:
    """'avc1.PPCCLL' from the SPS (Annex B or avcC extradata); baseline 3.1 if unknown."""
    if extradata:
        if extradata[0] == 1 and len(extradata) >= 4:  # avcC record
            return "avc1." + extradata[1:4].hex().upper()
        index = extradata.find(b"\x00\x00\x01")
        while index != -1 and index + 6 < len(extradata):
            nal = extradata[index + 3]
            if nal & 0x1F == 7:
                return "avc1." + extradata[index + 4 : index + 7].hex().upper()
            index = extradata.find(b"\x00\x00\x01", index + 3)
    return "avc1.42E01F"


# Up to a 1080p wall, one x264 thread: measured here (16 bench cameras composed 4x4 at
# 1920x1080, ultrafast), 0.20-0.22 s of CPU a second at 15 fps against 0.26-0.27 with
# x264's sliced threads, for 13-15 ms a frame against 12 (walls and cameras already run in
# parallel). Bigger walls keep the slices: one thread would add tens of milliseconds.
SINGLE_THREAD_PIXELS = 1920 * 1080


def x264_threads(width: int, height: int) -> int:
    """x264's thread count for a picture size (0: x264 chooses, by the number of cores)."""
    return 1 if width * height <= SINGLE_THREAD_PIXELS else 0


class Fmp4Encoder:
    content_type = "video/mp4"

    def __init__(self, width: int, height: int, fps: float, gop_seconds: float = 1.0,
                 crf: int = 26) -> None:
        self.width, self.height = width, height
        self._sink = FragmentSink()
        self._container = av.open(self._sink, mode="w", format="mp4", options={
            "movflags": "empty_moov+default_base_moof+frag_every_frame+skip_trailer"})
        rate = Fraction(fps).limit_denominator(1000)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        context = self._stream.codec_context
        context.color_range = ColorRange.JPEG  # our canvas is full range: say so in the VUI
        gop = max(1, round(fps * gop_seconds))
        context.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                           "g": str(gop), "keyint_min": str(gop), "bf": "0", "crf": str(crf),
                           "sc_threshold": "0", "threads": str(x264_threads(width, height))}
        # One input frame, refilled each tick: a new one per canvas (from_ndarray) cost
        # 1.2 ms at 1920x1080 (allocation and page faults) against 0.17 ms for the copy.
        # Safe to reuse: x264 copies the picture in before encode() returns.
        self._frame = av.VideoFrame(width, height, "yuv420p")
        self._frame.color_range = ColorRange.JPEG  # our canvas is full range
        self._planes = [np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                        [:, : plane.width] for plane in self._frame.planes]
        self._fps = float(rate)
        self._pts = 0
        self._started: float | None = None
        self._pending: deque[tuple[bool, float]] = deque()  # frames muxed, fragment not out yet
        self.init_segment: bytes | None = None
        self.codec: str | None = None

    @property
    def mime(self) -> str:
        return MIME_TEMPLATE.format(codec=self.codec or "avc1.42E01F")

    def encode(self, canvas: np.ndarray, wall_time: float, seq: int,
               force_keyframe: bool = False) -> list[EncodedFrame]:
        """Encode one canvas; returns the fragments that became complete (usually one)."""
        for target, source in zip(self._planes, i420_planes(canvas, self.width, self.height)):
            np.copyto(target, source)
        frame = self._frame
        # Timestamps follow the clock, not the frame count: a tick skipped (nothing changed
        # on the wall) leaves a gap instead of making the browser play ahead of real time.
        now = time.monotonic()
        if self._started is None:
            self._started = now
        frame.pts = max(self._pts, round((now - self._started) * self._fps))
        self._pts = frame.pts + 1
        frame.pict_type = (av.video.frame.PictureType.I if force_keyframe
                           else av.video.frame.PictureType.NONE)
        out: list[EncodedFrame] = []
        for packet in self._stream.encode(frame):
            self._pending.append((bool(packet.is_keyframe), wall_time))
            self._container.mux(packet)
        for kind, box in split_boxes(self._sink.buffer):
            if kind in (b"ftyp", b"moov"):
                self.init_segment = (self.init_segment or b"") + box
                if kind == b"moov":
                    self.codec = avc_codec_string(self._stream.codec_context.extradata)
            elif kind == b"moof":
                self._moof = box
            elif kind == b"mdat" and self._pending:
                keyframe, frame_time = self._pending.popleft()
                out.append(EncodedFrame(self._moof + box, seq, frame_time, keyframe,
                                        self.content_type))
        return out

    def close(self) -> None:
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - closing after a failed encode may fail too
            pass


FMP4 = "fmp4"


class Fmp4WallEncoder:
    """The fMP4 format of a wall: its init segment goes first, once per encoder (viewers
    start, again, from it), then a fragment per frame."""

    def __init__(self, width: int, height: int, fps: float) -> None:
        self._encoder = Fmp4Encoder(width, height, fps)
        self._header_sent = False

    def encode(self, canvas: np.ndarray, seq: int, wall_time: float,
               keyframe: bool = False) -> list[EncodedFrame]:
        fragments = self._encoder.encode(canvas, wall_time, seq, force_keyframe=keyframe)
        if fragments and not self._header_sent:
            self._header_sent = True
            header = EncodedFrame(self._encoder.init_segment or b"", 0, wall_time, True,
                                  self._encoder.mime, header=True)
            return [header, *fragments]
        return fragments

    def close(self) -> None:
        self._encoder.close()


# About two seconds of fragments before a viewer skips to a keyframe.
register_format(Format(FMP4, dependent=True, buffer_frames=30, make=Fmp4WallEncoder))

