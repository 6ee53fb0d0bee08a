"""Every parser of camera input in our RTSP client (ingest/rtp.py), fuzzed with hypothesis
and held to issue 18: no exception, output bounded by the limits.
"""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.rtp import (
    MAX_UNIT_BYTES,
    H264Depacketiser,
    H265Depacketiser,
    rtp_bounds,
)

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- RTP ----------------------------------------------------------------------------------
def rtp_packet(first: int, marker: bool, sequence: int, timestamp: int, payload: bytes) -> bytes:
    return struct.pack(">BBHII", first, (0x80 if marker else 0) | 96, sequence & 0xFFFF,
                       timestamp & 0xFFFFFFFF, 1) + payload


# Payloads that start like each kind a depacketiser handles (H.264: single NAL units,
# STAP-A 24, FU-A 28 with start/end bits; H.265: 48 aggregation, 49 fragmentation).
payload = st.builds(lambda head, body: bytes(head) + body,
                    st.lists(st.one_of(st.sampled_from([0x05, 0x41, 0x67, 0x06, 0x18, 0x1C,
                                                        0x7C, 0x60, 0x62, 0x26, 0x40]),
                                       st.integers(0, 255)), min_size=0, max_size=4),
                    st.binary(max_size=200))
rtp = st.builds(rtp_packet, st.sampled_from([0x80, 0x90, 0xA0, 0xB3, 0x00, 0xFF]),
                st.booleans(), st.integers(0, 8), st.integers(0, 3), payload)


@FUZZ
@given(st.binary(max_size=100))
def test_rtp_bounds(packet: bytes) -> None:
    bounds = rtp_bounds(packet)
    assert bounds is None or 12 <= bounds[0] < bounds[1] <= len(packet)


@FUZZ
@pytest.mark.parametrize("kind", [H264Depacketiser, H265Depacketiser])
@given(packets=st.lists(st.one_of(rtp, st.binary(max_size=30)), max_size=40))
def test_depacketisers(kind, packets: list[bytes]) -> None:
    depacketiser, units = kind([b"\x67\x42"]), []
    for packet in packets:
        depacketiser.push(memoryview(packet), units)
    wire = sum(map(len, packets))
    for unit in units:
        # Each NAL unit came from the wire, with a start code and at most the rebuilt
        # header byte or two; the SDP's parameter sets maybe prepended.
        assert len(unit.data) <= 6 + 3 * wire
        assert unit.data.startswith(b"\x00\x00\x00\x01")


def fragments(kind: type, count: int, size: int = 60_000) -> list[bytes]:
    """A fragmentation unit's start, then `count` middle pieces: no end, no marker."""
    h264 = kind is H264Depacketiser
    start, middle = ((b"\x7c\x85", b"\x7c\x05") if h264 else (b"\x62\x01\x93", b"\x62\x01\x13"))
    body = b"\x00" * size
    return [rtp_packet(0x80, False, index, 0, (start if index == 0 else middle) + body)
            for index in range(count + 1)]


@pytest.mark.parametrize("kind", [H264Depacketiser, H265Depacketiser])
def test_a_unit_is_counted_while_its_fragments_come(kind) -> None:
    """An FU start and 40 MB of middle pieces: what is held stays under 16 MB and change
    (all 40 MB were held before: a 43.7 MB peak)."""
    depacketiser, units = kind([]), []
    packets = fragments(kind, 40_000_000 // 60_000)
    tracemalloc.start()
    try:
        for packet in packets:
            depacketiser.push(packet, units)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert units == []
    assert peak < MAX_UNIT_BYTES + 4_000_000, peak


def test_tiny_nal_units_count_for_what_they_hold() -> None:
    """STAP-A packets of 2-byte NAL units (4 bytes each on the wire): each is a Python
    object of its own, counted as such, so the unit stops at 16 MB of memory, not of bytes
    (42 MB held for 3.8 MB received before)."""
    stap = bytes([0x18]) + b"\x00\x02\x41\x00" * 16_000
    packets = [rtp_packet(0x80, False, index, 0, stap) for index in range(60)]
    depacketiser, units = H264Depacketiser([]), []
    tracemalloc.start()
    try:
        for packet in packets:
            depacketiser.push(packet, units)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MAX_UNIT_BYTES + 4_000_000, peak
