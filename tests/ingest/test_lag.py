"""A worker that cannot keep up with its camera skips to a keyframe instead of falling ever
further behind (ingest/source/lag.py), and only when the camera's data waits in our own socket
(ingest/source/backlog.py): the meter and the guard alone, the socket reading on real sockets, then
real RTSP cameras read by real PyAV sources: one whose consumer is twice too slow, and one
late because of its link beside it."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from ingest.source.backlog import BacklogMonitor, parse_address, parse_table
from ingest.source.decoding import Decoding
from ingest.source.lag import BACKLOG_MIN_BYTES, MAX_LAG, SKIP_LIMIT, LagGuard, LagMeter
from ingest.redact import Redactor
from ingest.source import SourceSpec, open_source
from ingest.picture.stamp import read_stamp
from ingest.picture.tiles import TileStore
from ingest.camera.worker import CameraInfo, CameraWorker
from tests.support.camsim import Mount
from tests.support.faultproxy import FaultProxy


def test_meter_reads_no_lag_while_packets_come_on_time_and_the_excess_when_late():
    meter = LagMeter()
    # A camera 123 s ahead of our clock, packets every 0.1 s, read with 20 ms of jitter.
    for index in range(50):
        stamp = 123.0 + index * 0.1
        assert meter.lag(stamp, index * 0.1 + (0.02 if index % 3 else 0.0)) <= 0.02 + 1e-9
    # Then read ever later: 0.2 s of wall time per 0.1 s of video.
    lags = [meter.lag(123.0 + 5.0 + k * 0.1, 5.0 + k * 0.2) for k in range(30)]
    assert lags == sorted(lags) and 2.8 < lags[-1] < 3.0, lags[-1]


def test_meter_allows_clock_drift():
    """The camera's clock running 300 ppm slow for an hour is not lag."""
    meter = LagMeter()
    lags = [meter.lag(t * (1 - 300e-6), t) for t in range(0, 3600, 10)]
    assert max(lags) < 0.01, max(lags)


class Sockets:
    """What the guard reads from our sockets, set by the test."""

    def __init__(self) -> None:
        self.waiting = 0

    def __call__(self) -> int:
        return self.waiting


def test_guard_does_not_skip_a_late_link():
    """Behind the camera but nothing waits in our sockets: a thin link, decode everything."""
    sockets = Sockets()
    guard = LagGuard(sockets)
    assert guard.decode(1000, 10.0, True, 0.0)
    # 3 s late, for 2 s of packets: never skipped.
    assert all(guard.decode(1000, 10.0 + 0.1 * k, False, 3.0 + 0.1 * k) for k in range(1, 20))
    assert guard.skips == 0 and not guard.skipping


def test_guard_skips_our_backlog_to_a_live_keyframe():
    sockets = Sockets()
    guard = LagGuard(sockets)
    assert guard.decode(1000, 10.0, True, 0.0)
    sockets.waiting = BACKLOG_MIN_BYTES * 4
    assert guard.decode(1000, 10.1, False, 0.1)  # on time
    assert not guard.decode(1000, 10.2, False, 2.2)  # 2 s late, the data waiting here
    assert guard.skips == 1 and guard.skipping
    # Read without decoding, the backlog drains: a keyframe still late is skipped too...
    assert not guard.decode(1000, 11.0, True, 2.5)
    sockets.waiting = 0
    assert not guard.decode(1000, 12.45, False, 2.5)  # caught up, but no keyframe yet
    # ...decoding resumes at the first keyframe back at the live edge.
    assert guard.decode(1000, 12.5, True, 2.55)
    assert not guard.skipping and guard.skips == 1
    assert guard.decode(1000, 12.6, False, 2.65)


def late_guard(bytes_per_second: int, waiting: int) -> LagGuard:
    """A guard fed 3 s of a 30 fps camera on time, then 1 s of packets 3 s late with
    `waiting` bytes in its socket."""
    sockets = Sockets()
    guard = LagGuard(sockets)
    size = bytes_per_second // 30
    for k in range(90):
        assert guard.decode(size, 100.0 + k / 30, k % 30 == 0, k / 30)
    sockets.waiting = waiting
    for k in range(90, 120):
        guard.decode(size, 100.0 + k / 30, False, 3.0 + k / 30)
    return guard


def test_guard_needs_half_a_second_of_the_camera_waiting_between_16_and_48_kb():
    # A 4 Mbit/s camera: one frame's worth waiting is no backlog; past 48 kB it is (its
    # socket, read slowly, may never hold the 250 kB of half a second).
    assert late_guard(500_000, 30_000).skips == 0
    assert late_guard(500_000, 50_000).skips == 1
    # A 256 kbit/s substream: 16 kB is half a second of it.
    assert late_guard(32_000, 12_000).skips == 0
    assert late_guard(32_000, 17_000).skips == 1


def test_guard_resumes_at_a_keyframe_once_our_socket_is_empty_even_if_still_late():
    """A link that got slower, and our socket briefly holding its data: skipping drains the
    socket, the lag left is the link's, so the next keyframe resumes decoding (skipping on
    until the limit would freeze the camera for 10 s)."""
    sockets = Sockets()
    guard = LagGuard(sockets)
    assert guard.decode(1000, 10.0, True, 0.0)
    sockets.waiting = BACKLOG_MIN_BYTES * 4
    assert not guard.decode(1000, 10.1, False, 2.1)  # 2 s late, data waiting: skip
    sockets.waiting = 0  # drained; the link keeps the lag at 2 s
    assert not guard.decode(1000, 10.2, False, 2.2)  # not a keyframe
    assert guard.decode(1000, 10.3, True, 2.3)  # a keyframe: resume, still 2 s late
    assert not guard.skipping and guard.skips == 1
    assert all(guard.decode(1000, 10.3 + 0.1 * k, k % 10 == 0, 2.3 + 0.1 * k) for k in range(1, 30))
    assert guard.skips == 1


def test_meter_takes_timestamps_going_back_for_a_clock_reset_not_lag():
    meter = LagMeter()
    assert meter.lag(1000.0, 0.0) == 0.0
    assert meter.lag(1000.1, 0.1) == 0.0
    assert meter.lag(3.0, 0.2) == 0.0  # the camera rebooted its clock
    assert abs(meter.lag(3.1, 0.3)) < 1e-9


def test_guard_decodes_again_after_the_limit_when_no_keyframe_comes():
    """A camera whose keyframes are not flagged: skipping waits for one that never comes;
    past SKIP_LIMIT decoding resumes mid-GOP (a picture that heals beats a frozen one)."""
    sockets = Sockets()
    guard = LagGuard(sockets)
    assert guard.decode(1000, 10.0, True, 0.0)
    sockets.waiting = BACKLOG_MIN_BYTES * 4
    verdicts = [guard.decode(1000, 10.0 + 0.1 * k, False, 2.0 + 0.1 * k) for k in range(1, 150)]
    resumed = verdicts.index(True)
    assert guard.skips >= 1 and resumed > 0
    assert SKIP_LIMIT <= 0.1 * resumed <= SKIP_LIMIT + 0.2, resumed
    # Still 2 s late with the data waiting: the next packet starts a new skip (the lag was
    # not forgotten at the limit).
    assert verdicts[resumed + 1] is False and guard.skips == 2


def test_monitor_reports_what_waits_on_a_camera_connection_and_nothing_for_another():
    """Real sockets: bytes sent to us on a connection to camera A and left unread are A's
    backlog (once two readings in a row saw them), not B's; once read, nothing waits."""
    camera_a, camera_b = socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))
    a_endpoint = frozenset({("127.0.0.1", camera_a.getsockname()[1])})
    b_endpoint = frozenset({("127.0.0.1", camera_b.getsockname()[1])})
    to_a = socket.create_connection(camera_a.getsockname())
    to_b = socket.create_connection(camera_b.getsockname())
    from_a, _ = camera_a.accept()
    from_b, _ = camera_b.accept()
    monitor = BacklogMonitor(interval=0.05)
    try:
        assert monitor.waiting(a_endpoint) == 0  # starts the thread
        from_a.sendall(b"x" * 40_000)  # camera A's data, not read
        from_b.sendall(b"y" * 100)
        assert len(to_b.recv(100, socket.MSG_WAITALL)) == 100  # camera B's, read at once
        deadline = time.monotonic() + 5
        while monitor.waiting(a_endpoint) < 40_000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert monitor.waiting(a_endpoint) >= 40_000
        assert monitor.waiting(b_endpoint) == 0
        assert len(to_a.recv(40_000, socket.MSG_WAITALL)) == 40_000
        time.sleep(0.3)
        assert monitor.waiting(a_endpoint) == 0
    finally:
        monitor.stop()
        for sock in (to_a, to_b, from_a, from_b, camera_a, camera_b):
            sock.close()


def test_monitor_does_not_report_what_one_reading_alone_saw():
    """A keyframe that just landed is in the socket for one reading, read before the next:
    not a backlog."""
    camera = socket.create_server(("127.0.0.1", 0))
    endpoint = frozenset({("127.0.0.1", camera.getsockname()[1])})
    ours = socket.create_connection(camera.getsockname())
    theirs, _ = camera.accept()
    monitor = BacklogMonitor(interval=0.2)
    seen: list[int] = []
    try:
        monitor.waiting(endpoint)  # starts the thread: readings every 0.2 s
        for _ in range(5):
            theirs.sendall(b"k" * 40_000)
            time.sleep(0.1)  # at most one reading sees it...
            seen.append(monitor.waiting(endpoint))
            assert len(ours.recv(40_000, socket.MSG_WAITALL)) == 40_000  # ...then it is read
            seen.append(monitor.waiting(endpoint))
            time.sleep(0.3)
        assert max(seen) == 0, seen
    finally:
        monitor.stop()
        for sock in (ours, theirs, camera):
            sock.close()


def test_proc_table_rows_are_parsed():
    text = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
            "timeout inode\n"
            "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
            "        0 12345 1 0000000000000000 100 0 0 10 0\n"
            "   1: 0100007F:A2C4 0100007F:22B8 01 00000000:0001E240 00:00000000 00000000     0"
            "        0 67890 1 0000000000000000 20 4 30 10 -1\n"
            "   2: 0100007F:A2C6 0100007F:22B8 01 00000000:00000000 00:00000000 00000000     0"
            "        0 67891 1 0000000000000000 20 4 30 10 -1\n"
            "   3: 0100007F:A2C8 0100007F:22B8 01 00000000:00000400 00:00000000 00000000     0"
            "        0 99999 1 0000000000000000 20 4 30 10 -1\n")
    # Ours and waiting: the second row only (the third waits nothing, the fourth is not ours).
    assert parse_table(text, {"12345", "67890", "67891"}) == {67890: (("127.0.0.1", 8888), 123456)}
    assert parse_address("0000000000000000FFFF00000100007F:1F90") == ("127.0.0.1", 8080)
    assert parse_address("00000000000000000000000001000000:0050") == ("::1", 80)


def _stamp_age_ms(frame) -> int | None:
    gray = frame.to_ndarray(format="gray")
    stamp = read_stamp(np.ascontiguousarray(gray))
    return None if stamp is None else stamp.age_ms()


def test_a_source_read_too_slowly_skips_to_keyframes_and_stays_live(simulators):
    """The consumer takes 0.2 s per frame of a 10 fps camera: read as it comes, every
    picture would be 0.1 s older than the last, 5 s behind after 10 s. The data then waits
    in our socket, so the source skips to the next keyframe whenever it falls MAX_LAG
    behind."""
    simulator = simulators([Mount("slow", fps=10, gop=10, tag=31)])
    source = open_source(SourceSpec(simulator.url("slow")))
    ages: list[int] = []
    skipped = 0
    most_behind = 0.0
    started = time.monotonic()
    try:
        for packet in source.packets(lambda: Decoding.FULL):
            if time.monotonic() - started > 10.0:
                break
            if packet.skipped:
                skipped += 1
            most_behind = max(most_behind, source.behind or 0.0)
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
    assert MAX_LAG < most_behind < MAX_LAG + 1.5, most_behind  # what the API shows


def test_a_camera_late_by_its_link_is_not_skipped_beside_one_read_too_slowly(simulators):
    """Two cameras: A is read twice too slowly (its data waits in our socket: ours), B comes
    through a proxy that delays everything 2.5 s (a slow link: its data waits upstream).
    Only A skips; B is decoded in full, late as its link makes it."""
    simulator = simulators([Mount("a", fps=10, gop=10, tag=41), Mount("b", fps=10, gop=10, tag=42)])
    with FaultProxy(simulator.port) as proxy:
        slow = open_source(SourceSpec(simulator.url("a")))
        linked = open_source(SourceSpec(proxy.url("b")))
        stop = threading.Event()

        def read_slowly() -> None:
            for packet in slow.packets(lambda: Decoding.FULL):
                if stop.is_set():
                    break
                if packet.frame is not None:
                    time.sleep(0.2)

        reader = threading.Thread(target=read_slowly, daemon=True)
        reader.start()
        pictures, most_behind = 0, 0.0
        started = time.monotonic()
        try:
            for packet in linked.packets(lambda: Decoding.FULL):
                elapsed = time.monotonic() - started
                if elapsed > 14.0:
                    break
                if elapsed > 2.0 and proxy.mode.value == "pass":
                    proxy.latency(2500)
                if packet.frame is not None and elapsed > 6.0:
                    pictures += 1
                most_behind = max(most_behind, linked.behind or 0.0)
        finally:
            stop.set()
            reader.join(5)
            slow.close()
            linked.close()
    assert slow.lag_skips >= 1, slow.lag_skips
    assert most_behind > 2.0, most_behind  # B was late, and said so
    assert linked.lag_skips == 0 and pictures >= 50, (linked.lag_skips, pictures)


@pytest.mark.parametrize("reduced", [False, True], ids=["full", "reduced"])
def test_a_late_camera_s_tiles_carry_the_time_their_picture_was_taken(simulators, reduced):
    """A real worker behind a link that delays everything 2.5 s: its tiles (whose clock the
    overlay draws) carry the time the picture was taken, not the time it arrived; also
    when reduced to its keyframes for want of CPU (ingest/wall/governor.py)."""
    simulator = simulators([Mount("late", fps=10, gop=10, tag=43)])
    with FaultProxy(simulator.port) as proxy:
        store = TileStore()
        worker = CameraWorker(CameraInfo("late", "Lavoir", "c1", "Le Bourg"),
                              SourceSpec(proxy.url("late")), store, Redactor())
        request = worker.attach((320, 180), 10)
        worker.start()
        try:
            # A second of pictures on time first: "behind" is measured against the best
            # delay seen on the connection.
            deadline = time.monotonic() + 10
            while worker.status().frames_total < 10 and time.monotonic() < deadline:
                time.sleep(0.1)
            fresh = store.latest("late", (320, 180))
            assert fresh is not None and abs(time.time() - fresh.captured_wall) < 1.0
            worker.set_reduced(reduced)
            proxy.latency(2500)
            time.sleep(6.0)
            late = store.latest("late", (320, 180))
            status = worker.status()
        finally:
            worker.detach(request)
            worker.request_stop()
            worker.join(5)
    assert status.behind is not None and 2.0 < status.behind < 3.5, status
    # Reduced, the latest tile is the last keyframe's: up to a GOP (1 s) and a bulk read
    # (0.25 s) older.
    age = time.time() - late.captured_wall
    assert 2.0 < age < 3.6 + (1.25 if reduced else 0.0), age
