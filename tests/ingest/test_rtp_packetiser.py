"""RTP packetising (ingest/encode/rtp.py) for the RTSP output: what it sends, our own
depacketiser (ingest/source/rtsp/rtp.py, the one that reads real cameras) reads back byte
for byte; packets fit the MTU, carry the marker on a picture's last packet only and number
themselves without a gap; sender reports map RTP time to the wall clock."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.encode.rtp import MTU, NTP_EPOCH_OFFSET, RtpPacketiser, split_annex_b
from ingest.source.rtsp.rtp import H264Depacketiser, H265Depacketiser

START = b"\x00\x00\x00\x01"
# NAL unit bodies as encoders write them: emulation prevention keeps 00 00 0x out, so
# bytes 1..255 are representative (and never end a unit with a zero); every real unit has
# at least its RBSP trailing bits after the header.
BODY = st.binary(min_size=1, max_size=6000).map(lambda b: bytes(x or 1 for x in b))


def h264_nal(kind: int, body: bytes) -> bytes:
    return bytes([0x60 | kind]) + body


def h265_nal(kind: int, body: bytes) -> bytes:
    return bytes([kind << 1, 0x01]) + body  # layer 0, TID 1


H264_UNITS = st.lists(st.tuples(st.sampled_from([6, 7, 8, 9, 1]), BODY), max_size=6).flatmap(
    lambda extra: st.tuples(st.just(extra), st.sampled_from([1, 5]), BODY))
H265_UNITS = st.lists(st.tuples(st.sampled_from([32, 33, 34, 39, 1]), BODY), max_size=6).flatmap(
    lambda extra: st.tuples(st.just(extra), st.sampled_from([1, 19]), BODY))


def access_unit(nals: list[bytes]) -> bytes:
    return b"".join(START + nal for nal in nals)


def read_back(depacketiser, packets: list[bytes]) -> list:
    units: list = []
    for packet in packets:
        depacketiser.push(packet, units)
    return units


CODECS = {"H264": (H264_UNITS, h264_nal, H264Depacketiser), "H265": (H265_UNITS, h265_nal, H265Depacketiser)}


@pytest.mark.parametrize("codec", list(CODECS))
@settings(max_examples=150, deadline=None)
@given(data=st.data(), mtu=st.sampled_from([200, 600, MTU]))
def test_units_come_back_byte_for_byte(codec, data, mtu) -> None:
    strategy, nal, depacketiser = CODECS[codec]
    units = data.draw(st.lists(strategy, min_size=1, max_size=4))
    packetiser = RtpPacketiser(codec, mtu=mtu, ssrc=7, first_sequence=65_530)
    sent, packets = [], []
    for index, (extra, kind, body) in enumerate(units):
        unit = access_unit([nal(k, b) for k, b in extra] + [nal(kind, body)])
        sent.append(unit)
        packets += packetiser.packetise(unit, 3000 * index)
    assert [u.data for u in read_back(depacketiser([]), packets)] == sent
    check_packets(packets, mtu, len(units))


def check_packets(packets: list[bytes], mtu: int, pictures: int) -> None:
    assert all(len(packet) <= mtu for packet in packets)
    sequences = [struct.unpack_from(">H", packet, 2)[0] for packet in packets]
    assert all((b - a) % 65536 == 1 for a, b in zip(sequences, sequences[1:]))  # wraps, no gap
    markers = [bool(packet[1] & 0x80) for packet in packets]
    assert sum(markers) == pictures and markers[-1]
    assert {packet[1] & 0x7F for packet in packets} == {96}
    assert {struct.unpack_from(">I", packet, 8)[0] for packet in packets} == {7}


def test_small_units_are_aggregated_and_big_ones_fragmented() -> None:
    packetiser = RtpPacketiser("H264", ssrc=1, first_sequence=0)
    sps, pps = h264_nal(7, b"\x42\xe0\x1f\x11"), h264_nal(8, b"\xce\x38\x80")
    idr = h264_nal(5, b"\x88" * 5000)
    packets = packetiser.packetise(access_unit([sps, pps, idr]), 90_000)
    assert packets[0][12] & 0x1F == 24  # STAP-A: both parameter sets in one packet
    assert [p[12] & 0x1F for p in packets[1:]] == [28] * (len(packets) - 1)  # FU-A
    assert packets[1][13] & 0x80 and packets[-1][13] & 0x40  # start, end
    assert packetiser.packets_sent == len(packets)


def test_annex_b_with_both_start_code_lengths() -> None:
    data = b"\x00\x00\x00\x01\x67\x01\x02" + b"\x00\x00\x01\x68\x03" + b"\x00\x00\x00\x01\x65\x04"
    assert split_annex_b(data) == [b"\x67\x01\x02", b"\x68\x03", b"\x65\x04"]


def test_sender_report_maps_rtp_time_to_the_wall_clock() -> None:
    packetiser = RtpPacketiser("H264", ssrc=0xDEADBEEF)
    packetiser.packetise(access_unit([h264_nal(5, b"\x01" * 100)]), 1234)
    report = packetiser.sender_report(1_700_000_000.25, 1234)
    version, kind, length, ssrc, seconds, fraction, timestamp, packets, octets = struct.unpack(">BBHIIIIII", report)
    assert (version, kind, length, ssrc) == (0x80, 200, 6, 0xDEADBEEF)
    assert seconds == 1_700_000_000 + NTP_EPOCH_OFFSET and fraction == 1 << 30
    assert (timestamp, packets, octets) == (1234, 1, 101)


def test_only_h264_and_h265() -> None:
    with pytest.raises(ValueError):
        RtpPacketiser("MJPEG")
