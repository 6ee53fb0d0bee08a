"""A worker that cannot keep up with its camera skips to a keyframe instead of falling ever
further behind (ingest/lag.py): the meter alone, then a real RTSP camera read by a real
PyAV source whose consumer is twice too slow."""

from __future__ import annotations

import time

import numpy as np

import av

from ingest.lag import CALM, MAX_LAG, PROBE, BacklogGuard, LagMeter, Verdict
from ingest.sources import SourceSpec, open_source
from ingest.stamp import read_stamp
from tests.camsim import Mount


def test_meter_reads_no_lag_while_packets_come_on_time_and_the_excess_when_late():
    meter = LagMeter()
    # A camera 123 s ahead of our clock, packets every 0.1 s, read with 20 ms of jitter.
    for index in range(50):
        stamp = 123.0 + index * 0.1
        assert meter.lag(stamp, index * 0.1 + (0.02 if index % 3 else 0.0)) <= 0.02 + 1e-9
    # Then read ever later: 0.2 s of wall time per 0.1 s of video.
    lags = [meter.lag(123.0 + 5.0 + k * 0.1, 5.0 + k * 0.2) for k in range(30)]
    assert lags == sorted(lags) and 2.8 < lags[-1] < 3.0, lags[-1]
    meter.reset()
    assert meter.lag(200.0, 10.0) == 0.0  # a new reference after a reset


def test_meter_allows_clock_drift():
    """The camera's clock running 300 ppm slow for an hour is not lag."""
    meter = LagMeter()
    lags = [meter.lag(t * (1 - 300e-6), t) for t in range(0, 3600, 10)]
    assert max(lags) < 0.01, max(lags)


def _packet(keyframe: bool = False) -> av.Packet:
    packet = av.Packet(b"\x00" * 100)
    packet.is_keyframe = keyframe
    return packet


def test_guard_skips_a_backlog_that_melts_and_resumes_at_a_keyframe():
    guard = BacklogGuard()
    assert guard.verdict(_packet(), 0.2, 0.0) is Verdict.DECODE
    assert guard.verdict(_packet(), MAX_LAG + 0.5, 0.1) is Verdict.SKIP
    assert guard.verdict(_packet(), 0.9, 0.2) is Verdict.SKIP
    assert guard.verdict(_packet(), 0.1, 0.3) is Verdict.SKIP  # drained: ours, counted
    assert guard.skips == 1 and guard.skipping
    assert guard.verdict(_packet(), 0.0, 0.4) is Verdict.SKIP  # waits for a keyframe
    assert guard.verdict(_packet(keyframe=True), 0.0, 0.5) is Verdict.RESUME
    assert not guard.skipping and guard.take_kept() == []


def test_guard_gives_back_what_it_skipped_when_the_lag_is_the_links():
    """A thin link: skipping does not bring the packets sooner, the lag does not melt. The
    skipped packets are decoded after all, and the guard does not try again for a while."""
    guard = BacklogGuard()
    skipped = [_packet() for _ in range(4)]
    for index, packet in enumerate(skipped):
        assert guard.verdict(packet, MAX_LAG + 0.5, index * PROBE / 4) is Verdict.SKIP
    assert guard.verdict(_packet(), MAX_LAG + 0.4, PROBE + 0.1) is Verdict.GIVE_BACK
    assert guard.take_kept() == skipped and guard.skips == 0 and not guard.skipping
    assert guard.verdict(_packet(), MAX_LAG + 2, PROBE + 1) is Verdict.DECODE  # calm
    assert guard.verdict(_packet(), MAX_LAG + 2, PROBE + CALM + 1) is Verdict.SKIP


def test_guard_gives_back_a_lag_that_melts_only_as_fast_as_a_link_catches_up():
    """After a big keyframe on a thin link the lag melts too, but at about real time, not
    at the speed of reading without decoding: not our backlog, nothing is thrown away."""
    guard = BacklogGuard()
    assert guard.verdict(_packet(), MAX_LAG + 0.2, 0.0) is Verdict.SKIP
    assert guard.verdict(_packet(), 0.8, 0.4) is Verdict.SKIP
    assert guard.verdict(_packet(), 0.2, 0.8) is Verdict.GIVE_BACK  # 1 s melted in 0.8 s
    assert guard.skips == 0 and len(guard.take_kept()) == 2


def _stamp_age_ms(frame) -> int | None:
    gray = frame.to_ndarray(format="gray")
    stamp = read_stamp(np.ascontiguousarray(gray))
    return None if stamp is None else stamp.age_ms()


def test_a_source_read_too_slowly_skips_to_keyframes_and_stays_live(simulators):
    """The consumer takes 0.2 s per frame of a 10 fps camera: read as it comes, every
    picture would be 0.1 s older than the last, 5 s behind after 10 s. With the guard
    the source skips to the next keyframe whenever it falls MAX_LAG behind."""
    simulator = simulators([Mount("slow", fps=10, gop=10, tag=31)])
    source = open_source(SourceSpec(simulator.url("slow")))
    ages: list[int] = []
    skipped = 0
    started = time.monotonic()
    try:
        for packet in source.packets(lambda: True):
            if time.monotonic() - started > 10.0:
                break
            if packet.skipped:
                skipped += 1
            if packet.frame is None:
                continue
            age = _stamp_age_ms(packet.frame)
            if age is not None:
                ages.append(age)
            time.sleep(0.2)  # a worker short of CPU
    finally:
        source.close()
    # Decoding went on after each skip, from live pictures: the newest ones are never
    # much more than MAX_LAG old (without the guard the last ones were ~5 s old).
    assert len(ages) >= 20, ages
    assert max(ages[-10:]) < (MAX_LAG + 1.5) * 1000, ages[-10:]
    assert source.lag_skips >= 2 and skipped > 0, (source.lag_skips, skipped)
