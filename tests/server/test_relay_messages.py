"""The relay's messages between nodes (server/cluster/relay.py) are network input: fuzzed.
Units cut in parts and put back together are the same bytes; whatever comes, a message is
a unit, a wait for more parts or a ValueError, and no more than MAX_UNIT is ever held."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.cluster.relay import MAX_UNIT, MIN_PART, Assembler, HealthBoard, parts_of, read_unit

HEADERS = {"c": "h264", "k": "1", "t": "900000", "n": "7"}


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 5 * MIN_PART), part_size=st.integers(MIN_PART // 8, 2 * MIN_PART))
def test_a_unit_cut_in_parts_comes_back_whole(size: int, part_size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"\x01" * (size % 256)
    messages = parts_of(data, HEADERS, part_size)
    assert len(messages) == -(-size // part_size)
    assert all(len(part) <= part_size for part, _ in messages)
    assembler = Assembler()
    results = [assembler.add(headers, part) for part, headers in messages]
    assert results[:-1] == [None] * (len(messages) - 1)
    relayed = results[-1]
    assert relayed is not None and relayed.unit.data == data
    assert (relayed.codec, relayed.number, relayed.unit.timestamp, relayed.unit.keyframe) == ("h264", 7, 900000, True)


def test_a_lost_part_loses_its_unit_only() -> None:
    first = parts_of(b"a" * 3 * MIN_PART, HEADERS, MIN_PART)
    second = parts_of(b"b" * 2 * MIN_PART, {**HEADERS, "n": "8"}, MIN_PART)
    assembler = Assembler()
    assert [assembler.add(h, d) for d, h in (first[0], first[2])] == [None, None]  # part 1 lost
    assert assembler.add(first[1][1], first[1][0]) is None  # out of place: nothing comes of it
    assert assembler.add(second[0][1], second[0][0]) is None
    assert assembler.add(second[1][1], second[1][0]).unit.data == b"b" * 2 * MIN_PART
    whole = assembler.add({**HEADERS, "n": "9"}, b"c")  # a whole unit between parts
    assert whole.number == 9 and whole.unit.data == b"c"


header_value = st.one_of(st.sampled_from(["0", "1", "h264", "hevc", "0/2", "1/2", "5/3", "2/999999",
                                          "-1", "1e3", "٣", "x" * 30, "99999999999999999999999"]),
                         st.text(max_size=12))
message = st.tuples(st.dictionaries(st.sampled_from(["c", "k", "t", "n", "p", "z"]), header_value, max_size=6)
                    | st.none(), st.binary(max_size=MIN_PART))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(message, max_size=40))
def test_any_message_sequence_is_a_unit_a_wait_or_a_value_error(messages) -> None:
    assembler = Assembler()
    for headers, data in messages:
        try:
            relayed = assembler.add(headers, data)
        except ValueError:
            continue
        assert assembler._size <= MAX_UNIT
        if relayed is not None:
            assert relayed.codec in ("h264", "hevc") and relayed.unit.data and relayed.number >= 0


def test_parts_past_the_limits_are_refused_before_they_are_kept() -> None:
    assembler = Assembler()
    too_many = {**HEADERS, "p": f"0/{MAX_UNIT // MIN_PART + 2}"}
    try:
        assembler.add(too_many, b"x")
        raise AssertionError("a unit announced in too many parts is malformed")
    except ValueError:
        pass
    count = MAX_UNIT // MIN_PART + 1
    held = 0
    try:
        for index in range(count):  # parts twice the size they claim: over MAX_UNIT half-way
            assembler.add({**HEADERS, "p": f"{index}/{count}"}, b"y" * 2 * MIN_PART)
            held += 2 * MIN_PART
        raise AssertionError("more than MAX_UNIT was kept")
    except ValueError:
        assert held <= MAX_UNIT and assembler._size == 0
    assert read_unit(HEADERS, b"z" * (MAX_UNIT + 1)) is None


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=5000) | st.text(max_size=200).map(str.encode))
def test_health_messages_are_json_objects_of_known_keys_or_dropped(data: bytes) -> None:
    board = HealthBoard(lease_seconds=5)
    if board.heard("c1", data):
        assert set(board.latest("c1")) <= {"state", "reason", "since", "codec", "width", "height",
                                           "input_fps", "bitrate_bps", "reconnects_last_hour", "last_error"}
    assert board.heard("c1", b'{"state": "live", "codec": "h264"}')
    assert not board.heard("c1", b'{"password": "x"}') and not board.heard("c1", b"[1]")
