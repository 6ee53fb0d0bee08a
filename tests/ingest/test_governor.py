"""Load shedding (ingest/wall/governor.py): under overload the least prominent watched cameras are
reduced to their keyframes, in steps, never all of them, and given back one at a time.

The policy is fed load samples here (the machine's load is the input it reacts to); the
workers it drives are real: synthetic cameras, and a real RTSP camera decoded by PyAV."""

from __future__ import annotations

import time
from fractions import Fraction

import av
import numpy as np

from ingest.wall.compositor import Compositor, WallSpec
from ingest.source.decoding import DecodePolicy, Decoding
from ingest.wall.governor import (HOLD_MIN, MAX_REDUCED_SHARE, Governor, Load, MachineIdle,
                             SheddingPolicy, least_prominent_first)
from ingest.source.lag import SKIP_LIMIT
from ingest.picture.layout import CellSpec
from ingest.redact import Redactor
from ingest.source import SourceSpec
from ingest.camera.health import CameraState
from ingest.picture.tiles import TileStore
from ingest.camera.worker import CameraInfo, CameraWorker
from tests.support.camsim import Mount
from tests.support.mjpeg import wait_until

BUSY_AND_LATE = Load(late=0.8, lag_skips=0, idle=0.02)
ON_TIME_WITH_ROOM = Load(late=0.0, lag_skips=0, idle=0.3)


def test_overload_reduces_cameras_in_settled_steps_and_never_all():
    policy = SheddingPolicy()
    counts = [policy.update(BUSY_AND_LATE, 64, float(t)) for t in range(40)]
    assert counts[0] == 0  # one late second is a camera's catch-up, not an overload
    assert counts[1] == 16  # badly late: a quarter of those in full
    assert counts[2] == 16  # the step's effect is waited for
    assert counts[3] == 16 + 12
    assert counts == sorted(counts)
    assert counts[-1] == int(64 * MAX_REDUCED_SHARE)  # some cameras always keep their rate


def test_lag_skips_alone_are_an_overload_but_lateness_on_an_idle_machine_is_not():
    policy = SheddingPolicy()
    idle_but_late = Load(late=0.8, lag_skips=0, idle=0.6)
    assert [policy.update(idle_but_late, 64, float(t)) for t in range(10)] == [0] * 10
    skipping = Load(late=0.0, lag_skips=3, idle=0.05)
    assert [policy.update(skipping, 64, 10.0 + t) for t in range(2)] == [0, 7]  # a tenth


def test_cameras_come_back_one_at_a_time_and_slower_after_a_relapse():
    policy = SheddingPolicy()
    policy.update(BUSY_AND_LATE, 64, 0.0)
    assert policy.update(BUSY_AND_LATE, 64, 1.0) == 16
    counts = {t: policy.update(ON_TIME_WITH_ROOM, 64, float(t)) for t in range(2, 25)}
    assert counts[11] == 16 and counts[12] == 15  # after HOLD_MIN on time
    assert counts[21] == 15 and counts[22] == 14
    # One late second after a give-back (its own catch-up) changes nothing...
    assert policy.update(BUSY_AND_LATE, 64, 23.0) == 14 and policy.hold == HOLD_MIN
    # ...the overload coming back does: reduced again, and the next give-back waits twice
    # as long.
    assert policy.update(ON_TIME_WITH_ROOM, 64, 24.0) == 14
    mildly_late = Load(late=0.3, lag_skips=0, idle=0.02)
    assert policy.update(mildly_late, 64, 25.0) == 14
    assert policy.update(mildly_late, 64, 26.0) == 14 + 5  # a tenth of the 50 in full
    assert policy.hold == 2 * HOLD_MIN
    counts = {t: policy.update(ON_TIME_WITH_ROOM, 64, float(t)) for t in range(27, 50)}
    assert counts[46] == 19 and counts[47] == 18
    # On time but without CPU to spare: nothing comes back.
    busy_on_time = Load(late=0.0, lag_skips=0, idle=0.05)
    assert {policy.update(busy_on_time, 64, float(t)) for t in range(50, 120)} == {18}


def test_a_moment_with_fewer_cameras_watched_keeps_the_count():
    """A wall rebuilt (a tour's page, a layout change) detaches its cameras for a moment:
    the reduced cameras must not all come back at once."""
    policy = SheddingPolicy()
    for t in range(12):
        policy.update(BUSY_AND_LATE, 64, float(t))
    reduced = policy.reduced
    assert reduced >= 40
    busy_on_time = Load(late=0.0, lag_skips=0, idle=0.05)
    assert policy.update(busy_on_time, 0, 12.0) == 0  # nobody to reduce meanwhile
    assert policy.update(busy_on_time, 32, 13.0) == int(32 * MAX_REDUCED_SHARE)
    assert policy.update(busy_on_time, 64, 14.0) == reduced  # back as it was


def test_closed_walls_take_their_load_with_them():
    policy = SheddingPolicy()
    for t in range(12):
        policy.update(BUSY_AND_LATE, 64, float(t))
    assert policy.reduced >= 40
    # Three walls of four closed: at most 90 % of the 16 left stay reduced, and with half
    # the machine idle they come back a quarter at a time.
    assert policy.update(Load(late=0.0, lag_skips=0, idle=0.7), 16, 12.0) == 14
    counts = {t: policy.update(Load(late=0.0, lag_skips=0, idle=0.7), 16, float(t))
              for t in range(13, 60)}
    assert [counts[t] for t in (21, 22, 32, 42, 52)] == [14, 11, 9, 7, 6], counts


def _worker(camera_id: str, url: str, store: TileStore | None = None,
            priority: int = 0) -> CameraWorker:
    return CameraWorker(CameraInfo(camera_id, f"Cam {camera_id}", "bourg", "Le Bourg",
                                   priority=priority),
                        SourceSpec(url), store or TileStore(), Redactor())


def test_the_least_prominent_cameras_are_reduced_first():
    workers = [_worker(name, f"synthetic://{name}") for name in "abcde"]
    a, b, c, d, e = workers
    a.attach((480, 270), 15, rank=5)
    b.attach((480, 270), 15, rank=0)
    c.attach((480, 270), 15, rank=9)
    c.attach((1280, 720), 25)  # also opened on its own
    e.attach((480, 270), 15, rank=5)
    # d: nobody watches it, nothing to reduce
    assert least_prominent_first(workers) == [e, a, b, c]
    # A configured priority comes first: a high camera in a small cell after all others,
    # a low one before.
    town_hall = _worker("f", "synthetic://f", priority=1)
    town_hall.attach((480, 270), 15, rank=15)
    shed = _worker("g", "synthetic://g", priority=-1)
    shed.attach((1280, 720), 25)
    assert least_prominent_first([*workers, town_hall, shed]) == [shed, e, a, b, c, town_hall]


def test_governor_reduces_and_restores_real_workers():
    store = TileStore()
    workers = [_worker(f"s{i}", f"synthetic://s{i}?width=320&height=180&fps=10", store)
               for i in range(4)]
    for rank, worker in enumerate(workers):
        worker.attach((160, 90), 10, rank=rank)
        worker.start()
    governor = Governor(lambda: workers, lambda: [], idle=lambda: None)
    try:
        wait_until(lambda: all(store.latest(w.camera.id, (160, 90)) for w in workers), 10,
                   message="every camera's first tile")
        governor.step(0.0, BUSY_AND_LATE)
        governor.step(1.0, BUSY_AND_LATE)  # a quarter of 4: the last cell
        assert [w.reduced for w in workers] == [False, False, False, True]
        time.sleep(0.5)
        first = [store.latest(w.camera.id, (160, 90)).seq for w in workers]
        time.sleep(3.0)
        made = [store.latest(w.camera.id, (160, 90)).seq - f for w, f in zip(workers, first)]
        assert made[3] <= 4 and min(made[:3]) >= 12, made  # 1 picture a second against 10
        assert [w.status().decoding for w in workers] == [Decoding.FULL] * 3 + [Decoding.REDUCED]
        assert governor.status()["reduced_cameras"] == 1
    finally:
        governor.stop()
        for worker in workers:
            worker.request_stop()
    assert not any(w.reduced for w in workers)  # stopping gives every camera back


def test_a_reduced_rtsp_camera_shows_its_keyframes_and_comes_back_at_once(simulators):
    """Reduced, a camera with a 7 s GOP shows one picture per keyframe and is not taken for
    a garbage stream (no picture for longer than stale_after); given back mid-GOP, it shows
    live pictures at once (the kept GOP is decoded), not at its next keyframe."""
    simulator = simulators([Mount("sparse", fps=10, gop=70, tag=31)])
    store = TileStore()
    worker = _worker("sparse", simulator.url("sparse"), store)
    worker.attach((320, 180), 10)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while worker.status().frames_total < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert worker.status().decoding is Decoding.FULL
        worker.set_reduced(True)
        time.sleep(0.3)
        seq = store.latest("sparse", (320, 180)).seq
        time.sleep(9.0)  # more than stale_after (5 s), at least one keyframe
        reduced = worker.status()
        shown = store.latest("sparse", (320, 180)).seq - seq
        worker.set_reduced(False)
        time.sleep(1.5)
        restored = store.latest("sparse", (320, 180))
    finally:
        worker.request_stop()
        worker.join(5)
    assert 1 <= shown <= 2, shown  # its keyframes only
    assert reduced.state == CameraState.LIVE and reduced.reconnects_last_hour == 0, reduced
    assert reduced.decoding is Decoding.REDUCED
    # Live again within 1.5 s, with the next keyframe still seconds away.
    assert restored.seq - seq - shown >= 5
    assert time.time() - restored.captured_wall < 1.0


def _h264_packets(count: int, gop: int) -> list[av.Packet]:
    """Real H.264 (libx264) of a moving picture, an IDR every `gop` frames."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 160, 96, "yuv420p"
    encoder.time_base = Fraction(1, 10)
    encoder.framerate = 10
    encoder.gop_size = gop
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "keyint_min": str(gop),
                       "sc_threshold": "0"}
    packets = []
    for index in range(count):
        picture = np.full((96 * 3 // 2, 160), 128, np.uint8)
        picture[:96, (index * 4) % 160:] = 200
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts = index
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    return packets


def test_a_reduced_camera_without_flagged_keyframes_is_decoded_in_full_rather_than_frozen():
    """Some cameras flag no keyframe. Reduced, such a camera would show nothing: after
    SKIP_LIMIT without a keyframe it is decoded in full, and its picture comes back at the
    next IDR."""
    packets = _h264_packets(60, gop=30)
    assert [p.is_keyframe for p in packets].count(True) == 2  # IDRs at 0 and 30
    decoder = av.CodecContext.create("h264", "r")
    policy = DecodePolicy(lambda packet: list(decoder.decode(packet)), None)
    shown = []
    for index, packet in enumerate(packets):
        now = index * 0.5  # camera seconds go by at 2 packets a second
        if policy.decode(packet, False, None, Decoding.REDUCED, now):  # no flag, ever
            shown.append(index)
    assert shown and shown[0] * 0.5 > SKIP_LIMIT, shown  # nothing while it waited...
    assert shown[0] <= 31 and shown[-1] >= 55, shown  # ...then pictures from the next IDR on


def test_idle_is_the_unused_part_of_a_containers_cpu_quota(tmp_path):
    """In a container limited to 2 of 16 cores, /proc/stat shows the host's idle time: the
    governor must see the quota's instead, and no more than the host has idle."""
    stat, cgroup = tmp_path / "stat", tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "cpu.max").write_text("200000 100000\n")
    idle = MachineIdle(str(stat), str(cgroup), cores=16)

    def tick(total: int, idle_ticks: int, usage_us: int) -> None:
        stat.write_text(f"cpu  {total - idle_ticks} 0 0 {idle_ticks} 0 0 0 0 0 0\n")
        (cgroup / "cpu.stat").write_text(f"usage_usec {usage_us}\nuser_usec 0\n")
    tick(1000, 900, 0)
    assert idle.sample() is None  # the first reading is the reference
    time.sleep(0.5)
    tick(1800, 1600, 950_000)  # host 87 % idle; the quota 95 % used in 0.5 s
    share = idle.sample()
    assert share is not None and share < 0.1, share
    (cgroup / "cpu.max").write_text("max 100000\n")  # no quota: the host's idle
    time.sleep(0.1)
    tick(2600, 2300, 960_000)
    assert idle.sample() == (2300 - 1600) / (2600 - 1800)


def test_starved_ticks_count_only_while_the_event_loop_is_late():
    """A wall whose viewers take nothing skips its JPEG at every tick (starved). Those
    ticks are the server's overload only while the event loop runs late: with it on time
    they are a viewer's own link, and a sample counts them or not by its own loop lag."""
    store = TileStore()
    worker = _worker("s", "synthetic://s?width=320&height=180&fps=20", store)
    worker.start()
    spec = WallSpec(id="w", name="W", width=320, height=180, fps=20, columns=1, rows=1,
                    cells=(CellSpec("s", 0, 0),))
    wall = Compositor(spec, {"s": worker}, store, lambda fmt, frame: None,
                      wanted_formats=lambda: {"jpeg"}, room=lambda fmt: False)
    lags = iter([0.0, 0.0, 0.5, 0.0])
    governor = Governor(lambda: [worker], lambda: [wall], idle=lambda: 0.9,
                        loop_lag=lambda: next(lags))
    shares = []
    wall.start()
    try:
        for second in range(4):
            time.sleep(0.6)
            governor.step(float(second))
            shares.append(governor.last_load.late)
    finally:
        wall.stop()
        worker.request_stop()
    assert wall.starved_ticks >= 30, wall.starved_ticks
    assert shares[1] == 0.0 and shares[3] == 0.0, shares  # the loop on time
    assert shares[2] >= 0.8, shares  # late: almost every tick starved


def test_a_reduced_camera_remuxed_to_a_viewer_sends_its_packets_as_they_come(simulators):
    """Reduced for want of CPU, a camera is read in bursts 4 times a second: fine for its
    keyframes on a wall, not for someone watching its own stream (a remux), who would get
    it a quarter second late and in jerks. With a remux tap its packets reach the tap as
    the camera sends them (in bursts before: this fails)."""
    simulator = simulators([Mount("tapped", fps=15, gop=15, tag=32)])
    store = TileStore()
    worker = _worker("tapped", simulator.url("tapped"), store)
    worker.attach((320, 180), 15)
    arrivals: list[float] = []
    worker.start()
    try:
        wait_until(lambda: worker.status().frames_total >= 10, 20, message="live pictures")
        worker.set_reduced(True)
        time.sleep(1.0)

        def gaps_over(seconds: float) -> list[float]:
            arrivals.clear()
            time.sleep(seconds)
            times = list(arrivals)
            return sorted(b - a for a, b in zip(times, times[1:]))

        tap = lambda packet, stream: arrivals.append(time.monotonic())  # noqa: E731
        worker.add_tap(tap)
        tapped = gaps_over(3.0)
        worker.remove_tap(tap)
        reduced = worker.status()
    finally:
        worker.request_stop()
        worker.join(5)
    assert reduced.decoding is Decoding.REDUCED
    assert len(tapped) >= 30, len(tapped)
    # As they come: half the packets at least 40 ms apart (15 fps: 67 ms). In bursts, most
    # would be microseconds apart, the quarter second between bursts.
    median = tapped[len(tapped) // 2]
    assert median >= 0.04, tapped
