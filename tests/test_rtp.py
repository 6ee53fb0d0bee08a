"""RTP depacketising (ingest/rtp.py) on packets cut from real x264 output: what reaches
the decoder must decode, and a lost packet must cost its picture, not corrupt the next."""

from __future__ import annotations

import base64
import struct
from fractions import Fraction

import av
import numpy as np
import pytest

from ingest.rtp import H264Depacketiser, H265Depacketiser, parameter_sets, rtp_bounds

MTU = 1200


def encoded_h264(frames: int = 20) -> list[tuple[bytes, bool]]:
    """Real H.264 access units (Annex B, IDR first) from libx264, with their keyframe flag."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 180, "yuv420p"
    encoder.time_base = Fraction(1, 15)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "g": "10", "bf": "0"}
    units = []
    for index in range(frames):
        picture = np.full((270, 320), 16 + (index * 9) % 200, np.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts = index
        units += [(bytes(p), p.is_keyframe) for p in encoder.encode(frame)]
    units += [(bytes(p), p.is_keyframe) for p in encoder.encode(None)]
    return units


def nal_units(annex_b: bytes) -> list[bytes]:
    parts = annex_b.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01")
    return [p for p in parts if p]


def packetise_h264(unit: bytes, sequence: int, timestamp: int) -> list[bytes]:
    """RFC 6184 non-interleaved mode, as cameras send it: small NAL units whole, big ones
    in FU-A fragments; the last packet of the picture carries the marker."""
    payloads = []
    for nal in nal_units(unit):
        if len(nal) <= MTU:
            payloads.append(nal)
            continue
        indicator, kind, body = (nal[0] & 0xE0) | 28, nal[0] & 0x1F, nal[1:]
        chunks = [body[i : i + MTU] for i in range(0, len(body), MTU)]
        for index, chunk in enumerate(chunks):
            header = kind | (0x80 if index == 0 else 0) | (0x40 if index == len(chunks) - 1 else 0)
            payloads.append(bytes((indicator, header)) + chunk)
    packets = []
    for index, payload in enumerate(payloads):
        marker = 0x80 if index == len(payloads) - 1 else 0
        packets.append(struct.pack(">BBHII", 0x80, marker | 96, (sequence + index) & 0xFFFF,
                                   timestamp & 0xFFFFFFFF, 0x1234) + payload)
    return packets


def decode_all(units: list[bytes]) -> int:
    decoder = av.CodecContext.create("h264", "r")
    pictures = 0
    for unit in units:
        pictures += len(decoder.decode(av.Packet(unit)))
    return pictures + len(decoder.decode(None))


def test_h264_units_rebuilt_from_fu_a_decode_like_the_originals() -> None:
    source = encoded_h264()
    depacketiser = H264Depacketiser([])
    rebuilt, sequence = [], 65530  # crosses the 16-bit sequence wrap
    for index, (unit, _) in enumerate(source):
        packets = packetise_h264(unit, sequence, 0xFFFFF000 + index * 6000)  # and the 32-bit one
        sequence += len(packets)
        for packet in packets:
            done = depacketiser.push(packet)
            if done is not None:
                rebuilt.append(done)
    assert [u.keyframe for u in rebuilt] == [k for _, k in source]
    assert [u.data for u in rebuilt] == [b"".join(b"\x00\x00\x00\x01" + n for n in nal_units(u))
                                         for u, _ in source]
    # Timestamps keep rising across the 32-bit wrap.
    assert [b.timestamp - a.timestamp for a, b in zip(rebuilt, rebuilt[1:])] == [6000] * (len(rebuilt) - 1)
    assert decode_all([u.data for u in rebuilt]) == len(source)


def test_a_lost_fragment_drops_its_picture_only() -> None:
    source = encoded_h264()
    depacketiser = H264Depacketiser([])
    rebuilt, sequence, lost = [], 0, 0
    for index, (unit, _) in enumerate(source):
        packets = packetise_h264(unit, sequence, index * 6000)
        sequence += len(packets)
        for number, packet in enumerate(packets):
            if index == 3 and number == 0 and len(packets) > 1:
                lost += 1
                continue  # the first fragment of picture 3 never arrives
            done = depacketiser.push(packet)
            if done is not None:
                rebuilt.append(done.timestamp // 6000)
    assert lost == 1
    assert rebuilt == [i for i in range(len(source)) if i != 3]


def test_a_lost_marker_packet_ends_the_picture_at_the_next_timestamp() -> None:
    """Without its marker, a picture is known complete only when the next one starts; if
    the lost packet held its end, it is dropped, and the next picture still comes whole."""
    source = encoded_h264(6)
    depacketiser = H264Depacketiser([])
    rebuilt, sequence = [], 0
    for index, (unit, _) in enumerate(source):
        packets = packetise_h264(unit, sequence, index * 6000)
        sequence += len(packets)
        for number, packet in enumerate(packets):
            if index == 2 and number == len(packets) - 1:
                continue
            done = depacketiser.push(packet)
            if done is not None:
                rebuilt.append(done.timestamp // 6000)
    assert rebuilt == [0, 1, 3, 4, 5]


def test_sdp_parameter_sets_go_before_a_keyframe_that_lacks_them() -> None:
    source = encoded_h264(3)
    nals = nal_units(source[0][0])
    kinds = [n[0] & 0x1F for n in nals]
    sps, pps = nals[kinds.index(7)], nals[kinds.index(8)]
    fmtp = {"sprop-parameter-sets": ",".join(
        base64.b64encode(s).decode().rstrip("=") for s in (sps, pps))}
    sets = parameter_sets("H264", fmtp)
    assert sets == [sps, pps]
    depacketiser = H264Depacketiser(sets)
    # The camera sends the IDR without SPS/PPS in band (many do: they are in the SDP).
    idr_only = b"".join(b"\x00\x00\x00\x01" + n for n in nals if n[0] & 0x1F not in (7, 8))
    units, sequence = [], 0
    for index, unit in enumerate([idr_only, source[1][0], source[2][0]]):
        packets = packetise_h264(unit, sequence, index * 6000)
        sequence += len(packets)
        for packet in packets:
            done = depacketiser.push(packet)
            if done is not None:
                units.append(done.data)
    assert units[0].startswith(b"\x00\x00\x00\x01" + sps)
    assert decode_all(units) == 3


def test_h265_fragments_and_aggregates() -> None:
    encoder = av.CodecContext.create("libx265", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 180, "yuv420p"
    encoder.time_base = Fraction(1, 15)
    encoder.options = {"preset": "ultrafast", "x265-params": "log-level=none:keyint=10:bframes=0"}
    source = []
    for index in range(12):
        frame = av.VideoFrame.from_ndarray(np.full((270, 320), 30 + index * 10, np.uint8),
                                           format="yuv420p")
        frame.pts = index
        source += [(bytes(p), p.is_keyframe) for p in encoder.encode(frame)]
    source += [(bytes(p), p.is_keyframe) for p in encoder.encode(None)]
    depacketiser = H265Depacketiser([])
    rebuilt, sequence = [], 0
    for index, (unit, _) in enumerate(source):
        nals = nal_units(unit)
        small = [n for n in nals if len(n) < 200]
        payloads = []
        if small:  # parameter sets together in one aggregation packet (type 48)
            payloads.append(bytes((48 << 1, 1)) + b"".join(struct.pack(">H", len(n)) + n for n in small))
        for nal in (n for n in nals if len(n) >= 200):
            kind, body = (nal[0] >> 1) & 0x3F, nal[2:]
            chunks = [body[i : i + MTU] for i in range(0, len(body), MTU)]
            for number, chunk in enumerate(chunks):
                header = kind | (0x80 if number == 0 else 0) | (0x40 if number == len(chunks) - 1 else 0)
                payloads.append(bytes(((nal[0] & 0x81) | (49 << 1), nal[1], header)) + chunk)
        for number, payload in enumerate(payloads):
            marker = 0x80 if number == len(payloads) - 1 else 0
            done = depacketiser.push(struct.pack(">BBHII", 0x80, marker | 96, sequence, index * 6000, 1)
                                     + payload)
            sequence += 1
            if done is not None:
                rebuilt.append(done)
    assert [u.keyframe for u in rebuilt] == [k for _, k in source]
    decoder = av.CodecContext.create("hevc", "r")
    pictures = sum(len(decoder.decode(av.Packet(u.data))) for u in rebuilt)
    assert pictures + len(decoder.decode(None)) == len(source)


@pytest.mark.parametrize("packet", [b"", b"\x80" * 11, b"\x40" + b"\x00" * 20,
                                    bytes((0x90, 96)) + b"\x00" * 10 + b"\x00\x00\xff\xff"])
def test_not_rtp_or_truncated_is_refused(packet: bytes) -> None:
    assert rtp_bounds(packet) is None
    assert H264Depacketiser([]).push(packet) is None


def test_padding_and_header_extension_are_stripped() -> None:
    payload = b"\x65" + b"\xab" * 10  # an IDR slice, single NAL unit
    extension = b"\xbe\xde\x00\x01" + b"\x00" * 4
    packet = struct.pack(">BBHII", 0x80 | 0x20 | 0x10, 0x80 | 96, 1, 90000, 7) + extension + payload + b"\x00\x00\x03"
    unit = H264Depacketiser([]).push(packet)
    assert unit is not None and unit.keyframe and unit.data == b"\x00\x00\x00\x01" + payload
