"""Load shedding (ingest/governor.py): under overload the least prominent watched cameras are
reduced to their keyframes, in steps, never all of them, and given back one at a time.

The policy is fed load samples here (the machine's load is the input it reacts to); the
workers it drives are real: synthetic cameras, and a real RTSP camera decoded by PyAV."""

from __future__ import annotations

import time

from ingest.decoding import Decoding
from ingest.governor import (HOLD_MIN, MAX_REDUCED_SHARE, Governor, Load, SheddingPolicy,
                             least_prominent_first)
from ingest.redact import Redactor
from ingest.sources import SourceSpec
from ingest.stats import CameraState
from ingest.tiles import TileStore
from ingest.worker import CameraInfo, CameraWorker
from tests.camsim import Mount

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
    # The overload comes back soon after a give-back: the next waits twice as long.
    policy.update(BUSY_AND_LATE, 64, 25.0)
    assert policy.hold == 2 * HOLD_MIN
    counts = {t: policy.update(ON_TIME_WITH_ROOM, 64, float(t)) for t in range(26, 50)}
    assert counts[45] == 14 and counts[46] == 13
    # On time but without CPU to spare: nothing comes back.
    busy_on_time = Load(late=0.0, lag_skips=0, idle=0.05)
    assert {policy.update(busy_on_time, 64, float(t)) for t in range(50, 120)} == {13}


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


def _worker(camera_id: str, url: str, store: TileStore | None = None) -> CameraWorker:
    return CameraWorker(CameraInfo(camera_id, f"Cam {camera_id}", "bourg", "Le Bourg"),
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


def test_governor_reduces_and_restores_real_workers():
    store = TileStore()
    workers = [_worker(f"s{i}", f"synthetic://s{i}?width=320&height=180&fps=10", store)
               for i in range(4)]
    for rank, worker in enumerate(workers):
        worker.attach((160, 90), 10, rank=rank)
        worker.start()
    governor = Governor(lambda: workers, lambda: [], idle=lambda: None)
    try:
        time.sleep(1.0)
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
