"""RTSP requests as clients send them (server/outputs/rtsp/message.py): whole requests out
of any cut of the bytes, limits checked before bytes are kept, linear time, fuzzed."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.outputs.rtsp.message import MAX_BODY, MAX_HEAD, BadRequest, RequestReader, parse_head

DESCRIBE = (b"DESCRIBE rtsp://127.0.0.1:8554/cameras/a RTSP/1.0\r\nCSeq: 2\r\n"
            b"User-Agent: Lavf61\r\nAccept: application/sdp\r\n\r\n")
SET_PARAMETER = b"SET_PARAMETER rtsp://h/x RTSP/1.0\r\nCSeq: 3\r\nContent-Length: 5\r\n\r\nhello"
RTCP = b"$\x01\x00\x08" + b"\x81\xc9\x00\x01\x00\x00\x00\x01"  # a receiver report, interleaved


def test_a_request_and_its_headers() -> None:
    (request,) = RequestReader().feed(DESCRIBE)
    assert (request.method, request.url, request.cseq) == ("DESCRIBE", "rtsp://127.0.0.1:8554/cameras/a", "2")
    assert request.header("accept") == "application/sdp" and request.body == b""


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(DESCRIBE + RTCP + SET_PARAMETER)), max_size=12))
def test_any_cut_of_pipelined_requests_gives_the_same_requests(cuts) -> None:
    stream = DESCRIBE + RTCP + SET_PARAMETER + DESCRIBE
    reader, requests, start = RequestReader(), [], 0
    for cut in sorted(cuts) + [len(stream)]:
        requests += reader.feed(stream[start:cut])
        start = max(start, cut)
    assert [(r.method, r.cseq, r.body) for r in requests] == [
        ("DESCRIBE", "2", b""), ("SET_PARAMETER", "3", b"hello"), ("DESCRIBE", "2", b"")]


@pytest.mark.parametrize(("data", "status"), [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"OPTIONS * RTSP/1.0\r\n\r\n", 400),                          # no CSeq
    (b"OPTIONS * RTSP/1.0\r\nCSeq: x1\r\n\r\n", 400),
    (b"OPTIONS * RTSP/3.0\r\nCSeq: 1\r\n\r\n", 505),
    (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nno colon\r\n\r\n", 400),
    (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: " + b"a" * 5000 + b"\r\n\r\n", 431),
    (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999999\r\n\r\n", 413),
    (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -1\r\n\r\n", 413),
])
def test_bad_requests_get_their_status(data, status) -> None:
    with pytest.raises(BadRequest) as refused:
        RequestReader().feed(data)
    assert refused.value.status == status


def test_a_head_past_the_limit_is_refused_before_it_ends() -> None:
    reader = RequestReader()
    reader.feed(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n")
    with pytest.raises(BadRequest) as refused:
        for _ in range(100):
            reader.feed(b"X-Filler: " + b"a" * 1000 + b"\r\n")
    assert refused.value.status == 431
    assert len(reader._buffer) <= MAX_HEAD + 4 + 1100  # refused at the limit, not later


def test_a_request_dribbled_byte_by_byte_is_read_in_linear_time() -> None:
    data = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n" + b"X: y\r\n" * 2000 + b"\r\n"
    reader, started = RequestReader(), time.perf_counter()
    requests = [request for byte in range(len(data)) for request in reader.feed(data[byte:byte + 1])]
    assert len(requests) == 1 and time.perf_counter() - started < 3.0  # ~0.1 s here


@given(st.binary(max_size=2000))
def test_any_bytes_give_requests_or_a_bad_request(data: bytes) -> None:
    try:
        requests = RequestReader().feed(data)
    except BadRequest as refused:
        assert 400 <= refused.status < 600
    else:
        assert all(len(r.body) <= MAX_BODY for r in requests)


def test_parse_head_refuses_oversize_directly() -> None:
    with pytest.raises(BadRequest):
        parse_head(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n" + b"X: y\r\n" * 4000)
