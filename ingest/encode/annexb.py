"""Access units in Annex B form, for outputs that packetise them (RTSP): a camera's own,
taken from its worker's packets without decoding, and a composed picture's, taken from the
fMP4 fragments its encoder already makes (one x264 encode for browsers and RTSP alike).

Frames of the ACCESS_UNITS format: `data` is one access unit (NAL units after start codes),
`content_type` the codec ("H264" or "H265"). Its header frame carries the parameter sets
(VPS/SPS/PPS, Annex B): what a DESCRIBE puts in its SDP and a new client gets in band just
before its first keyframe.

Pure byte work and a packet tap for the worker's thread; no I/O.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import av

from ingest.encode.base import EncodedFrame, Format, WallEncoder
from ingest.encode.rtp import split_annex_b

START_CODE = b"\x00\x00\x00\x01"
CODECS = {"h264": "H264", "hevc": "H265"}  # FFmpeg's codec name -> RTP encoding name
# The capture time of a camera's pictures: its own timestamps, placed on our clock at the
# earliest arrival seen (the least delayed). A timestamp this far from that: the camera's
# clock jumped (a restart), and the placing starts afresh.
CLOCK_JUMP = 2.0


def _not_composed(width: int, height: int, fps: float) -> WallEncoder:
    raise TypeError("access units come from a camera or from the fMP4 encoder, not from a canvas")


# Not registered: compositors encode registered formats; these units are taken, not made.
ACCESS_UNITS = Format("annexb", dependent=True, buffer_frames=30, make=_not_composed)


def length_prefixed_to_annex_b(data: bytes, length_size: int = 4) -> bytes:
    """NAL units each after its big-endian size (MP4, avcC/hvcC) -> after start codes."""
    out = []
    offset = 0
    while offset + length_size <= len(data):
        size = int.from_bytes(data[offset:offset + length_size], "big")
        offset += length_size
        if size == 0 or offset + size > len(data):
            break  # a truncated unit: what came before is kept
        out.append(START_CODE)
        out.append(data[offset:offset + size])
        offset += size
    return b"".join(out)


def parameter_sets_of_record(codec: str, record: bytes) -> tuple[bytes, int]:
    """Parameter sets (Annex B) and NAL length size of an avcC or hvcC record; Annex B
    extradata is returned as it is (length size 0: the packets are Annex B too)."""
    if not record or record[0] != 1:
        return bytes(record or b""), 0
    nals: list[bytes] = []
    try:
        if codec == "H264":
            length_size = (record[4] & 0x03) + 1
            offset = 5
            for mask in (0x1F, 0xFF):  # SPS count (5 bits), then PPS count
                count = record[offset] & mask
                offset += 1
                for _ in range(count):
                    size = struct.unpack_from(">H", record, offset)[0]
                    nals.append(record[offset + 2:offset + 2 + size])
                    offset += 2 + size
        else:
            length_size = (record[21] & 0x03) + 1
            offset = 23
            for _ in range(record[22]):  # arrays of VPS, SPS, PPS, SEI
                count = struct.unpack_from(">H", record, offset + 1)[0]
                offset += 3
                for _ in range(count):
                    size = struct.unpack_from(">H", record, offset)[0]
                    nals.append(record[offset + 2:offset + 2 + size])
                    offset += 2 + size
    except (IndexError, struct.error):
        pass  # a truncated record: the sets read so far
    return b"".join(START_CODE + nal for nal in nals if nal), length_size


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    """(type, payload start, box end) of the MP4 boxes in data[start:end]."""
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        header = 8
        if size == 1 and start + 16 <= end:
            size, header = struct.unpack_from(">Q", data, start + 8)[0], 16
        if size < header or start + size > end:
            return
        yield kind, start + header, start + size
        start += size


def parameter_sets_of_init(init: bytes) -> bytes:
    """The SPS and PPS of an fMP4 init segment (its avcC), Annex B."""
    at = init.find(b"avcC")
    if at < 4:
        return b""
    size = struct.unpack_from(">I", init, at - 4)[0]
    return parameter_sets_of_record("H264", init[at + 4:at - 4 + size])[0]


def access_unit_of_fragment(fragment: bytes) -> bytes:
    """The access unit in one moof+mdat fragment (one frame each: frag_every_frame), Annex B."""
    for kind, payload, end in _boxes(fragment):
        if kind == b"mdat":
            return length_prefixed_to_annex_b(fragment[payload:end])
    return b""


def units_of_fmp4(frame: EncodedFrame) -> EncodedFrame:
    """An fMP4 frame of a composed stream as an access-unit frame: the header's parameter
    sets, or the fragment's unit. Made once per frame, however many clients send it."""
    made = frame.renderings.get("annexb")
    if made is None:
        if frame.header:
            data = parameter_sets_of_init(frame.data)
        else:
            data = access_unit_of_fragment(frame.data)
        made = EncodedFrame(data, frame.seq, frame.wall_time, frame.keyframe, "H264", frame.header)
        frame.renderings["annexb"] = made  # type: ignore[assignment]
    return made  # type: ignore[return-value]


class CaptureClock:
    """When each picture was taken, on our clock, from the camera's timestamps: spacing
    exactly as the camera stamped it, placed at the least delayed arrival seen."""

    def __init__(self) -> None:
        self._offset: float | None = None  # our time minus the camera's, at the earliest arrival

    def capture_time(self, stamp: float, arrival: float) -> float:
        offset = arrival - stamp
        if self._offset is None or offset < self._offset or offset - self._offset > CLOCK_JUMP:
            self._offset = offset
        return stamp + self._offset


class UnitTap:
    """A packet tap (ingest/camera/worker.py) turning a camera's packets into access-unit
    frames: Annex B as received (MP4-style packets from files are converted), starting at a
    keyframe, after a header with the parameter sets. Runs in the worker's thread; frames
    leave through `deliver`."""

    def __init__(self, deliver: Callable[[EncodedFrame], None]) -> None:
        self._deliver = deliver
        self._input: av.video.stream.VideoStream | None = None
        self._codec = ""
        self._length_size = 0
        self._parameter_sets = b""
        self._header_sent = False
        self._seq = 0
        self._clock = CaptureClock()

    def _reset(self, stream: av.video.stream.VideoStream) -> None:
        """A new connection to the camera: a new header for the clients (they restart at
        its next keyframe)."""
        self._input = stream
        self._codec = CODECS.get(stream.codec_context.name, "")
        self._parameter_sets, self._length_size = parameter_sets_of_record(
            self._codec, bytes(stream.codec_context.extradata or b""))
        self._header_sent = False
        self._clock = CaptureClock()

    def __call__(self, packet: av.Packet, stream: av.video.stream.VideoStream) -> None:
        if stream is not self._input:
            self._reset(stream)
        if not self._codec or packet.pts is None:
            return
        data = bytes(packet)
        if self._length_size:
            data = length_prefixed_to_annex_b(data, self._length_size)
        keyframe = bool(packet.is_keyframe)
        if not self._header_sent:
            if not keyframe:
                return  # a client starts on a keyframe
            sets = self._parameter_sets or _parameter_sets_in(self._codec, data)
            self._deliver(EncodedFrame(sets, 0, time.time(), True, self._codec, header=True))
            self._header_sent = True
        wall_time = self._clock.capture_time(float(packet.pts * packet.time_base), time.time())
        self._seq += 1
        self._deliver(EncodedFrame(data, self._seq, wall_time, keyframe, self._codec))


def parameter_sets_of(codec: str, data: bytes) -> dict[str, list[bytes]]:
    """The parameter sets in Annex B bytes (a keyframe, or an encoder's extradata), by kind."""
    found: dict[str, list[bytes]] = {"vps": [], "sps": [], "pps": []}
    for nal in split_annex_b(data):
        if codec == "H264":
            kind = {7: "sps", 8: "pps"}.get(nal[0] & 0x1F)
        else:
            kind = {32: "vps", 33: "sps", 34: "pps"}.get((nal[0] >> 1) & 0x3F)
        if kind is not None and nal not in found[kind]:
            found[kind].append(nal)
    return found


def _parameter_sets_in(codec: str, access_unit: bytes) -> bytes:
    """The parameter sets a keyframe carries in band (a camera whose SDP gave none)."""
    found = parameter_sets_of(codec, access_unit)
    return b"".join(START_CODE + nal for kind in ("vps", "sps", "pps") for nal in found[kind])
