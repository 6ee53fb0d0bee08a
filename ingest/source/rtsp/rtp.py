"""RTP video depacketising: H.264 (RFC 6184) and H.265 (RFC 7798) payloads into access
units in Annex B form, the form PyAV's decoders and FFmpeg's MP4 muxer take.

Pure byte work, no I/O: ingest/source/rtsp/client.py feeds it the interleaved packets it reads. A lost
fragment (a sequence gap) drops the unit it belonged to rather than hand the decoder half
a picture; the decoder then conceals until the next keyframe, as it would with FFmpeg's
own depacketiser.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

START_CODE = b"\x00\x00\x00\x01"
# An access unit bigger than this (a 4K keyframe is 1-4 MB) is garbage that never ended:
# dropped rather than kept growing. Counted while it is assembled, the fragment being
# joined included (an FU-A start followed by endless middle fragments grew to gigabytes).
MAX_UNIT_BYTES = 16_000_000
# What a NAL unit kept for the unit costs beside its bytes: the bytes object (33), its
# list slot (8), the allocator's rounding, the start code it gets. Counted so that a
# camera sending 1-byte NAL units (3 bytes each in a STAP-A) cannot hold 40 times the limit.
NAL_OVERHEAD = 64
_WRAP = 1 << 32


class UnitTooLarge(ValueError):
    """A camera sent more for one picture than any picture holds: it is not a camera
    talking. Raised once the unit passes MAX_UNIT_BYTES (what was held is dropped)."""


@dataclass(frozen=True)
class AccessUnit:
    data: bytes  # Annex B: NAL units, each after a start code
    timestamp: int  # RTP clock ticks, unwrapped (monotonic across the 32-bit wrap)
    # An IDR (H.264), IRAP (H.265) or recovery-point picture: decoding can start here.
    keyframe: bool


_HEADER = struct.Struct(">BBHI")


def rtp_bounds(packet: bytes | memoryview) -> tuple[int, int] | None:
    """Where an RTP packet's payload starts and ends; None if it is not an RTP packet."""
    size = len(packet)
    if size <= 12:
        return None
    first = packet[0]
    if first == 0x80:  # version 2, nothing optional: nearly every camera packet
        return 12, size
    if first >> 6 != 2:
        return None
    start = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension: 4 bytes, then its length in 32-bit words
        if size < start + 4:
            return None
        start += 4 + 4 * ((packet[start + 2] << 8) | packet[start + 3])
    end = size - (packet[-1] if first & 0x20 else 0)  # padding: its length is the last byte
    return (start, end) if start < end else None


class Depacketiser:
    """Base: sequence tracking, timestamp unwrapping, access-unit assembly. Subclasses say
    how a payload splits into NAL units and which NAL units make a keyframe."""

    codec = ""  # FFmpeg's decoder name

    def __init__(self, parameter_sets: list[bytes]) -> None:
        # Sent out of band in the SDP: prepended to keyframes that lack them in band.
        self.parameter_sets = parameter_sets
        self._nals: list[bytes] = []
        self._bytes = 0  # what `_nals` holds, NAL_OVERHEAD included
        self._fragment: bytearray | None = None
        self._keyframe = False
        self._has_parameters = False
        self._has_picture = False  # a slice (VCL NAL unit) is in: a marker may end the unit
        self._broken = False  # this unit lost a packet, or outgrew MAX_UNIT_BYTES
        self._sequence: int | None = None
        self._timestamp: int | None = None  # the current unit's, unwrapped
        self._last_raw = 0

    def push(self, packet: bytes | memoryview, out: list[AccessUnit]) -> None:
        """One RTP packet in; the access units it completes go to `out` (a packet that
        starts a picture may end the previous one and, alone, its own). Runs for every
        packet of every camera (7,400 a second for 64 cameras at 1.3 Mbit/s): no copies
        but the payload's one."""
        if len(packet) < 12 or packet[0] >> 6 != 2:
            return
        _, second, sequence, raw_timestamp = _HEADER.unpack_from(packet)
        if raw_timestamp == self._last_raw and self._timestamp is not None:
            timestamp = self._timestamp
        else:
            timestamp = self._unwrap(raw_timestamp)
        # Lost (or reordered) packets: the unit they fell in is incomplete. (Counted for
        # every packet, payload or not: an empty one is not a gap.)
        gap = self._sequence is not None and sequence != (self._sequence + 1) & 0xFFFF
        self._sequence = sequence
        if timestamp != self._timestamp and (self._nals or self._fragment is not None
                                             or self._broken):
            # A new picture began without a marker on the last one (lost, or not sent): a
            # gap here is that picture's lost end. (If the new picture lost its start, a
            # fragment without its start flag tells, below.)
            self._broken = self._broken or gap
            self._finish(out)
            gap = False
        if gap:
            self._broken = True
            self._fragment = None
        self._timestamp = timestamp
        bounds = rtp_bounds(packet)
        if bounds is not None:
            self._payload(packet, *bounds)
            held = self._bytes + (len(self._fragment) if self._fragment is not None else 0)
            if held > MAX_UNIT_BYTES:  # no marker, no new timestamp: not a camera
                self._broken = True
                self._nals, self._bytes, self._fragment = [], 0, None
                raise UnitTooLarge(f"camera sent a picture over {MAX_UNIT_BYTES // 1_000_000} MB")
        # The marker ends a picture; some cameras also set it on their parameter-set
        # packets, which would make a second unit with the same timestamp.
        if second & 0x80 and self._has_picture:
            self._finish(out)

    def _unwrap(self, raw: int) -> int:
        if self._timestamp is None:
            self._last_raw = raw
            return raw
        step = (raw - self._last_raw) % _WRAP
        if step >= _WRAP // 2:
            step -= _WRAP  # a little back in time (reordering, a B-frame), not a wrap
        self._last_raw = raw
        return self._timestamp + step

    def _add(self, nal: bytes) -> None:
        if not nal or self._broken:
            return  # a broken unit is dropped whole: nothing of it is kept meanwhile
        kind = self._nal_kind(nal)
        if kind == "key":
            self._keyframe = self._has_picture = True
        elif kind == "picture":
            self._has_picture = True
        elif kind == "parameters":
            self._has_parameters = True
        elif kind == "recovery":
            self._keyframe = True  # an I picture announced as a recovery point (open GOP)
        self._nals.append(nal)
        self._bytes += len(nal) + NAL_OVERHEAD

    def _finish(self, out: list[AccessUnit]) -> None:
        nals, self._nals, self._bytes = self._nals, [], 0
        keyframe, self._keyframe = self._keyframe, False
        has_parameters, self._has_parameters = self._has_parameters, False
        broken, self._broken = self._broken, False
        self._has_picture = False
        self._fragment = None
        if not nals or broken:
            return
        if keyframe and not has_parameters:
            nals = self.parameter_sets + nals
        parts = [START_CODE] * (2 * len(nals))
        parts[1::2] = nals
        out.append(AccessUnit(b"".join(parts), self._timestamp or 0, keyframe))

    def _payload(self, packet: bytes | memoryview, start: int, end: int) -> None:
        raise NotImplementedError

    def _nal_kind(self, nal: bytes) -> str:
        raise NotImplementedError


class H264Depacketiser(Depacketiser):
    codec = "h264"

    def _payload(self, packet: bytes | memoryview, start: int, end: int) -> None:
        indicator = packet[start]
        kind = indicator & 0x1F
        if kind == 28 and end - start > 2:  # FU-A
            header = packet[start + 1]
            # A start: the NAL header is rebuilt from both bytes (nothing is joined for a
            # unit already broken: it will be dropped whole).
            if header & 0x80 and not self._broken:
                self._fragment = bytearray(((indicator & 0xE0) | (header & 0x1F),))
            if self._fragment is None:
                self._broken = True  # a fragment whose start we never saw
                return
            self._fragment += packet[start + 2 : end]
            if header & 0x40:  # end
                self._add(bytes(self._fragment))
                self._fragment = None
        elif 1 <= kind <= 23:
            self._add(bytes(packet[start:end]))
        elif kind == 24:  # STAP-A: 16-bit size, NAL unit, ...
            self._aggregate(bytes(packet[start:end]), 1)
        # STAP-B, MTAP and FU-B (interleaved mode) are not sent by cameras: ignored.

    def _aggregate(self, payload: bytes, offset: int) -> None:
        # Stops once the unit is broken (outgrown, say): what follows would be dropped.
        while offset + 2 <= len(payload) and not self._broken:
            size = (payload[offset] << 8) | payload[offset + 1]
            self._add(payload[offset + 2 : offset + 2 + size])
            offset += 2 + size

    def _nal_kind(self, nal: bytes) -> str:
        kind = nal[0] & 0x1F
        if 1 <= kind <= 5:
            return "key" if kind == 5 else "picture"
        if kind == 7:
            return "parameters"
        # SEI whose first message is a recovery point (payload type 6), as FFmpeg's parser
        # counts it: cameras with open GOPs or intra refresh send no IDR at all.
        return "recovery" if kind == 6 and len(nal) > 1 and nal[1] == 6 else ""


class H265Depacketiser(H264Depacketiser):
    codec = "hevc"

    def _payload(self, packet: bytes | memoryview, start: int, end: int) -> None:
        if end - start < 3:
            return
        kind = (packet[start] >> 1) & 0x3F
        if kind == 49:  # fragmentation unit
            header = packet[start + 2]
            if header & 0x80 and not self._broken:
                self._fragment = bytearray((((packet[start] & 0x81) | ((header & 0x3F) << 1)),
                                            packet[start + 1]))
            if self._fragment is None:
                self._broken = True
                return
            self._fragment += packet[start + 3 : end]
            if header & 0x40:
                self._add(bytes(self._fragment))
                self._fragment = None
        elif kind < 48:
            self._add(bytes(packet[start:end]))
        elif kind == 48:  # aggregation packet (no DONL: cameras do not interleave)
            self._aggregate(bytes(packet[start:end]), 2)
        # 50 (PACI) carries nothing a camera sends: ignored.

    def _nal_kind(self, nal: bytes) -> str:
        kind = (nal[0] >> 1) & 0x3F
        if kind < 32:
            return "key" if 16 <= kind <= 23 else "picture"
        if kind == 33:
            return "parameters"
        return "recovery" if kind == 39 and len(nal) > 2 and nal[2] == 6 else ""


DEPACKETISERS: dict[str, type[Depacketiser]] = {"H264": H264Depacketiser,
                                                 "H265": H265Depacketiser}


def parameter_sets(codec: str, fmtp: dict[str, str]) -> list[bytes]:
    """The SDP's out-of-band parameter sets (base64), in decoding order."""
    keys = ["sprop-parameter-sets"] if codec == "H264" else ["sprop-vps", "sprop-sps", "sprop-pps"]
    sets: list[bytes] = []
    for key in keys:
        for item in fmtp.get(key, "").split(","):
            item = item.strip()
            if not item:
                continue
            try:
                sets.append(base64.b64decode(item + "=" * (-len(item) % 4)))
            except (binascii.Error, ValueError):
                continue  # a broken SDP value: the camera also sends them in band, usually
    return [s for s in sets if s]
