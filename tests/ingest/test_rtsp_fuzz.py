"""Every parser of camera input in our RTSP client (ingest/source/rtsp/message.py,
client.py, rtp.py), fuzzed
with hypothesis and held to issue 18: no exception but SourceError (TooLarge among them),
output bounded by the limits, time linear in the input (an adversarial 60,000 characters
in well under a second), and the limits checked before the bytes are buffered.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.source.rtsp.rtp import (
    DEPACKETISERS,
    MAX_UNIT_BYTES,
    UnitTooLarge,
    AccessUnit,
    H264Depacketiser,
    H265Depacketiser,
    rtp_bounds,
)
from ingest.digest import parse_fields
from ingest.source.rtsp.client import RtspClient
from ingest.source.rtsp.message import (
    MAX_BODY,
    MAX_HEAD,
    MAX_LINE,
    MAX_SDP,
    TooLarge,
    _choose_challenge,
    body_length,
    parse_response,
    parse_sdp,
    split_head,
)
from ingest.source import SourceError

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Linear parsers take milliseconds on these inputs; the quadratic ones took 27 s.
FAST = 0.25  # seconds


def timed(function, *args) -> float:
    started = time.perf_counter()
    try:
        function(*args)
    except SourceError:
        pass
    return time.perf_counter() - started


# -- pieces a camera could send ---------------------------------------------------------
# Text made of what confuses parsers: separators, quotes, blanks, and a few letters.
tricky = st.text(st.sampled_from(list('aZ0=,; \t"\\:/-_\r\n') + ["é", "\x00"]), max_size=300)
token = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-_0123456789"), min_size=1,
                max_size=12)
header_line = st.one_of(
    st.builds(lambda name, value: f"{name}: {value}", token, tricky),
    st.builds(lambda value: f"Content-Length: {value}", st.one_of(
        st.integers(0, 10**12).map(str), tricky)),
    st.builds(lambda value: f"WWW-Authenticate: {value}", tricky),
    tricky,
)
status_line = st.one_of(
    st.builds(lambda code, reason: f"RTSP/1.0 {code} {reason}", st.integers(0, 999), tricky),
    tricky,
)


@FUZZ
@given(st.one_of(
    st.builds(lambda first, lines: "\r\n".join([first, *lines]).encode(), status_line,
              st.lists(header_line, max_size=20)),
    st.binary(max_size=2_000),
))
def test_status_line_and_headers(head: bytes) -> None:
    try:
        response = parse_response(head)
    except SourceError:
        return
    assert 0 <= response.status <= 999
    assert sum(len(values) for values in response.headers.values()) <= head.count(b"\r\n")
    assert all(len(name) <= MAX_LINE for name in response.headers)
    try:
        length = body_length(response.headers)
    except SourceError:
        return
    assert 0 <= length <= MAX_BODY


@pytest.mark.parametrize(("head", "words"), [
    (b"RTSP/1.0 200 OK\r\n" + (b"X-Pad: " + b"p" * 90 + b"\r\n") * 170, "header over 16 kB"),
    (b"RTSP/1.0 200 OK\r\nX-Long: " + b"l" * MAX_LINE, "header line over 4 kB"),
])
def test_heads_past_the_limits_are_refused(head: bytes, words: str) -> None:
    with pytest.raises(TooLarge, match=words):
        split_head(head)


@pytest.mark.parametrize("value", ["99999999999", "65537", "9" * 5_000])
def test_a_body_past_the_limit_is_refused_before_it_is_read(value: str) -> None:
    with pytest.raises(TooLarge, match="over the 64 kB limit"):
        body_length({"content-length": [value]})
    assert body_length({"content-length": [str(MAX_BODY)]}) == MAX_BODY


sdp_line = st.one_of(
    st.builds(lambda media, pt: f"m={media} 0 RTP/AVP {pt}",
              st.sampled_from(["video", "audio", "vid"]), st.integers(0, 200)),
    st.builds(lambda pt, name, rate: f"a=rtpmap:{pt} {name}/{rate}", st.integers(0, 200),
              st.sampled_from(["H264", "H265", "JPEG", "VP8", ""]),
              st.one_of(st.integers(0, 10**10).map(str), tricky)),
    st.builds(lambda pt, value: f"a=fmtp:{pt} {value}", st.integers(0, 200), tricky),
    st.builds(lambda value: f"a=control:{value}", tricky),
    tricky,
)


@FUZZ
@given(st.lists(sdp_line, max_size=30))
def test_sdp(lines: list[str]) -> None:
    track, other, control = parse_sdp("\r\n".join(lines))
    if track is not None:
        assert track.codec in DEPACKETISERS and track.clock_rate > 0 and other is None
    assert other is None or len(other) <= 40
    assert len(control) <= MAX_SDP


def test_an_sdp_past_the_limit_is_refused() -> None:
    with pytest.raises(TooLarge, match="SDP over 64 kB"):
        parse_sdp("a=" + "x" * MAX_SDP)


@FUZZ
@given(st.lists(st.builds(lambda scheme, rest: f"{scheme} {rest}",
                          st.sampled_from(["Digest", "Basic", "digest", "Bearer", ""]),
                          tricky), max_size=4))
def test_challenges(values: list[str]) -> None:
    for value in values:
        scheme, fields = parse_fields(value)
        assert len(scheme) <= len(value)
        assert all(len(key) + len(field) < len(value) for key, field in fields.items())
    chosen = _choose_challenge(values)
    assert chosen is None or chosen[0] in ("digest", "basic")


def test_challenge_fields_are_read_as_cameras_write_them() -> None:
    assert parse_fields('Digest realm="cam", nonce="a=b", qop="auth,auth-int", '
                            'algorithm=MD5, stale=FALSE') == (
        "digest", {"realm": "cam", "nonce": "a=b", "qop": "auth,auth-int", "algorithm": "MD5",
                   "stale": "FALSE"})
    assert parse_fields('Digest realm = "r r" nonce=abc==') == (
        "digest", {"realm": "r r", "nonce": "abc=="})


@pytest.mark.parametrize("rest", ["a" * 60_000, "a=" * 30_000, "a =" * 20_000, "a= " * 20_000,
                                  '"' * 60_000, "a=\"" + "b" * 60_000, " " * 60_000,
                                  "a," * 30_000, "-" * 60_000])
def test_challenges_parse_in_linear_time(rest: str) -> None:
    """The issue's `Digest ` and 60,000 characters took 27 s (quadratic)."""
    assert timed(parse_fields, "Digest " + rest) < FAST


@pytest.mark.parametrize("filler", [b"a", b":", b" ", b"\r", b"\r\n", b"a: b\r\n"])
def test_heads_and_sdps_parse_in_linear_time(filler: bytes) -> None:
    head = (b"RTSP/1.0 401 Unauthorized\r\n" + filler * (MAX_HEAD // len(filler)))[:MAX_HEAD]
    assert timed(parse_response, head) < FAST
    sdp = ("m=video 0 RTP/AVP 96\r\n" + filler.decode() * (MAX_SDP // len(filler)))[:MAX_SDP]
    assert timed(parse_sdp, sdp) < FAST


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
        with pytest.raises(UnitTooLarge):  # the client ends the session with this reason
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
        with pytest.raises(UnitTooLarge):
            for packet in packets:
                depacketiser.push(packet, units)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MAX_UNIT_BYTES + 4_000_000, peak


# -- the interleaved walker and the open phase, on a real socket ---------------------------
class Fed:
    """A client reading what we send as its camera, through a socket pair; `read_size`
    bytes at most a read (the socket cuts where it likes)."""

    def __init__(self, read_size: int = 262_144) -> None:
        self.camera, ours = socket.socketpair()
        ours.settimeout(2.0)
        self.client = RtspClient("rtsp://127.0.0.1/x", None, None, 2.0, 2.0)
        self.client._socket = ours
        self.client._scratch = bytearray(read_size)
        self.client._last_request = time.monotonic()  # no keep-alive during the test
        self.client.depacketiser = H264Depacketiser([])
        self._sender: threading.Thread | None = None

    def send(self, data: bytes) -> None:
        """Sent from a thread: more than the socket holds may be sent."""
        def send_all() -> None:
            try:
                self.camera.sendall(data)
            except OSError:
                pass  # the client left before the end: what limits make it do

        self._sender = threading.Thread(target=send_all, daemon=True)
        self._sender.start()

    def read_all(self) -> list[AccessUnit]:
        """Read what was sent (the client keeps an incomplete end)."""
        units = []
        while True:
            if self.client.waiting() > len(self.client._buffer):  # bytes in the socket
                units += self.client.read()
                assert len(self.client._buffer) < MAX_HEAD + 4 + MAX_BODY
            elif self._sender.is_alive():
                self._sender.join(0.005)
            elif self.client.waiting() == len(self.client._buffer):
                return units

    def close(self) -> None:
        self.client._socket.close()
        if self._sender is not None:
            self._sender.join()
        self.camera.close()


def interleaved(channel: int, packet: bytes) -> bytes:
    return b"$" + bytes([channel]) + struct.pack(">H", len(packet)) + packet


one_line = st.text(st.sampled_from(list('aZ0=,; \t"\\:/-_') + ["é"]), max_size=300)
# What a camera sends in the stream: (well-formed, bytes). Garbage is followed by a resync
# at the next `$`, which may fall anywhere: with it, only bounds and errors are checked.
stream_item = st.one_of(
    st.builds(lambda channel, packet: (True, interleaved(channel, packet)),
              st.sampled_from([0, 1, 2]), rtp),
    st.builds(lambda status, body: (True, (f"RTSP/1.0 {status} OK\r\nCSeq: 3\r\n"
                                           f"Content-Length: {len(body)}\r\n\r\n").encode()
                                    + body),
              st.sampled_from([200, 401, 454]), st.binary(max_size=300)),
    st.builds(lambda challenge: (True, f"RTSP/1.0 401 Unauthorized\r\nCSeq: 4\r\n"
                                       f"WWW-Authenticate: {challenge}\r\n\r\n".encode()),
              one_line),
    st.builds(lambda url: (True, f"SET_PARAMETER {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode()),
              token),
    st.builds(lambda garbage: (False, garbage), st.binary(max_size=50)),
    st.builds(lambda head: (False, head), tricky.map(str.encode)),
)


def read_units(fed: Fed) -> list:
    try:
        return [(unit.data, unit.timestamp, unit.keyframe) for unit in fed.read_all()]
    except SourceError:
        return ["error"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(stream_item, max_size=25), read_size=st.integers(1, 300))
def test_interleaved_walker(items: list[tuple[bool, bytes]], read_size: int) -> None:
    """Whatever comes, cut anywhere by the reads: SourceError at worst, the held buffer
    within one message's limits (Fed.read_all), and well-formed streams give the same
    access units as read in one piece."""
    stream = b"".join(item for _, item in items)
    whole, cut = Fed(), Fed(read_size)
    try:
        whole.send(stream)
        cut.send(stream)
        in_one, in_pieces = read_units(whole), read_units(cut)
    finally:
        whole.close()
        cut.close()
    if all(well_formed for well_formed, _ in items):
        assert in_one == in_pieces


def test_an_in_stream_answer_past_the_limits_ends_the_session() -> None:
    for answer, words in [
        (b"RTSP/1.0 200 OK\r\nCSeq: 9\r\nContent-Length: 99999999999\r\n\r\n", "64 kB limit"),
        (b"RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest " + b"a" * 60_000,
         "header over 16 kB"),
        (b"RTSP/1.0 200 OK\r\nX: " + b"a" * 5_000 + b"\r\n\r\n", "line over 4 kB"),
    ]:
        fed = Fed()
        try:
            fed.send(answer + b"\x00" * 100_000)
            with pytest.raises(TooLarge, match=words):
                fed.read_all()
        finally:
            fed.close()


def test_a_message_dribbled_in_is_read_in_linear_time() -> None:
    """A 16 kB header and a 64 kB body, a kilobyte a read, between media packets: its header
    is read once, not at each read; nothing is copied whole per read."""
    head = (b"GET_PARAMETER rtsp://c/x RTSP/1.0\r\n"
            + (b"X-Pad: " + b"p" * 100 + b"\r\n") * 140)
    message = head + f"Content-Length: {MAX_BODY}\r\n\r\n".encode() + b"b" * MAX_BODY
    first, second = (interleaved(0, rtp_packet(0x80, True, sequence, 0, b"\x41" + b"\x00" * 99))
                     for sequence in (1, 2))
    fed = Fed(1024)
    try:
        fed.send(first + message + second)
        started = time.perf_counter()
        units = fed.read_all()
        assert time.perf_counter() - started < FAST
    finally:
        fed.close()
    assert len(units) == 2  # a picture each, the message between them skipped


@pytest.mark.parametrize(("answer", "words"), [
    (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 99999999999\r\n\r\n", "64 kB limit"),
    (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n" + (b"X-Padding: " + b"p" * 90 + b"\r\n") * 1_500,
     "header over 16 kB"),
    (b"RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest " + b"a" * 60_000 + b"\r\n\r\n",
     "header over 16 kB"),
])
def test_an_answer_past_the_limits_is_refused_before_it_is_buffered(answer: bytes,
                                                                      words: str) -> None:
    """While opening: the client asks the socket for no more than the answer may hold, so
    what it holds never passes the limits (a 150 kB header was taken whole; a huge
    Content-Length was read until the open timeout: 2.6 GB in 5 s)."""
    fed = Fed()
    try:
        fed.send(answer + b"\x00" * 200_000)
        with pytest.raises(TooLarge, match=words):
            fed.client._response(time.monotonic() + 1.0)
        assert len(fed.client._buffer) <= MAX_HEAD + 4
    finally:
        fed.close()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=st.lists(st.builds(interleaved, st.sampled_from([0, 1]), rtp), max_size=5),
       body=st.binary(max_size=3_000), read_size=st.integers(1, 500))
def test_answers_while_opening(before: list[bytes], body: bytes, read_size: int) -> None:
    """Media a camera sends before its answer is dropped, the answer's body is read whole
    by its length, whatever the reads' cuts, and nothing past the answer is taken."""
    answer = (b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\n"
              + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    after = interleaved(0, rtp_packet(0x80, True, 1, 0, b"\x41\x00"))
    fed = Fed(read_size)
    try:
        fed.send(b"".join(before) + answer + after)
        response = fed.client._response(time.monotonic() + 2.0)
        assert (response.status, response.body) == (200, body)
        assert len(fed.client._buffer) <= len(after)
    finally:
        fed.close()
