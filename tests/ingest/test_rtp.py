"""RTP depacketising (ingest/source/rtsp/rtp.py) on packets cut from real x264 output: what reaches
the decoder must decode, and a lost packet must cost its picture, not corrupt the next."""

from __future__ import annotations

import base64
import struct
from fractions import Fraction

import av
import numpy as np
import pytest

from ingest.source.rtsp.rtp import H264Depacketiser, H265Depacketiser, parameter_sets, rtp_bounds

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


def push_all(depacketiser, packets) -> list:
    out: list = []
    for packet in packets:
        depacketiser.push(packet, out)
    return out


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
        rebuilt += push_all(depacketiser, packets)
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
            rebuilt += [done.timestamp // 6000 for done in push_all(depacketiser, [packet])]
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
            rebuilt += [done.timestamp // 6000 for done in push_all(depacketiser, [packet])]
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
        units += [done.data for done in push_all(depacketiser, packets)]
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
            rebuilt += push_all(depacketiser, [struct.pack(">BBHII", 0x80, marker | 96, sequence,
                                                           index * 6000, 1) + payload])
            sequence += 1
    assert [u.keyframe for u in rebuilt] == [k for _, k in source]
    decoder = av.CodecContext.create("hevc", "r")
    pictures = sum(len(decoder.decode(av.Packet(u.data))) for u in rebuilt)
    assert pictures + len(decoder.decode(None)) == len(source)


@pytest.mark.parametrize("packet", [b"", b"\x80" * 11, b"\x40" + b"\x00" * 20,
                                    bytes((0x90, 96)) + b"\x00" * 10 + b"\x00\x00\xff\xff"])
def test_not_rtp_or_truncated_is_refused(packet: bytes) -> None:
    assert rtp_bounds(packet) is None
    assert push_all(H264Depacketiser([]), [packet]) == []


def test_padding_and_header_extension_are_stripped() -> None:
    payload = b"\x65" + b"\xab" * 10  # an IDR slice, single NAL unit
    extension = b"\xbe\xde\x00\x01" + b"\x00" * 4
    packet = struct.pack(">BBHII", 0x80 | 0x20 | 0x10, 0x80 | 96, 1, 90000, 7) + extension + payload + b"\x00\x00\x03"
    (unit,) = push_all(H264Depacketiser([]), [packet])
    assert unit.keyframe and unit.data == b"\x00\x00\x00\x01" + payload


def rtp(sequence: int, timestamp: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack(">BBHII", 0x80, (0x80 if marker else 0) | 96, sequence, timestamp, 9) + payload


def test_a_marker_on_parameter_sets_does_not_split_the_picture() -> None:
    """Some cameras set the marker on every packet of their SPS/PPS too: one picture, one
    unit (two with the same timestamp broke the MP4 muxer)."""
    sps, pps, idr = b"\x67\x42\x00\x1e\xab", b"\x68\xce\x3c\x80", b"\x65\x88\x84" + b"\x11" * 50
    units = push_all(H264Depacketiser([]), [rtp(1, 3000, sps, True), rtp(2, 3000, pps, True),
                                             rtp(3, 3000, idr, True), rtp(4, 6000, b"\x41\x9a" + b"\x22" * 9, True)])
    assert [(u.timestamp, u.keyframe) for u in units] == [(3000, True), (6000, False)]
    assert units[0].data.count(b"\x00\x00\x00\x01") == 3


def test_one_packet_can_end_the_last_picture_and_be_a_whole_new_one() -> None:
    """The last picture lost its marker; the next packet is a whole picture with its own:
    both come out, the first one complete."""
    first, second = b"\x41\x9a" + b"\x01" * 9, b"\x41\x9a" + b"\x02" * 9
    units = push_all(H264Depacketiser([]), [rtp(1, 3000, first), rtp(2, 6000, second, True)])
    assert [u.timestamp for u in units] == [3000, 6000]


def test_an_empty_packet_is_no_gap_and_a_recovery_point_is_a_keyframe() -> None:
    """A padding-only packet still counts in the sequence; an SEI recovery point marks an
    I picture of a camera that sends no IDR (open GOP)."""
    sei_recovery, islice = b"\x06\x06\x01\xc4\x80", b"\x21\x88" + b"\x03" * 20
    padding_only = struct.pack(">BBHII", 0xA0, 96, 2, 3000, 9) + b"\x00\x00\x03"
    units = push_all(H264Depacketiser([]), [rtp(1, 3000, sei_recovery), padding_only,
                                             rtp(3, 3000, islice, True)])
    assert len(units) == 1 and units[0].keyframe
