"""The RTSP test-camera simulator, checked with a real client (PyAV) against a real server.

Needs Debian's GStreamer RTSP server (see tests/support/camsim). Without it the tests skip, except
when CI=true, where they fail: CI must not silently lose its cameras.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import av.error
import pytest

from ingest.picture.stamp import Stamp, read_stamp
from tests.support.camsim import CameraSimulator, Mount, require_gstreamer

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "0", "probesize": "32"}
MAX_AGE_MS = 2000  # loose: this is not a latency test

USER_BASIC, PASS_BASIC = "alice", "s3cret:/@"  # characters that need quoting in a URL
USER_DIGEST, PASS_DIGEST = "bob", "hunter2"

MOUNTS = [
    Mount("h264", codec="h264", tag=11),
    Mount("h265", codec="h265", tag=12),
    Mount("mjpeg", codec="mjpeg", tag=13),
    Mount("basic", tag=21, username=USER_BASIC, password=PASS_BASIC, auth="basic"),
    Mount("digest", tag=22, username=USER_DIGEST, password=PASS_DIGEST, auth="digest"),
]
TAGS = {mount.path: mount.tag for mount in MOUNTS}
DECODERS = {"h264": "h264", "h265": "hevc", "mjpeg": "mjpeg"}


@pytest.fixture(scope="module")
def gstreamer() -> None:
    try:
        require_gstreamer()
    except RuntimeError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the camera simulator cannot run: {error}")
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def sim(gstreamer):
    with CameraSimulator(MOUNTS) as simulator:
        yield simulator


@pytest.fixture
def lone_sim(gstreamer):
    """A simulator of its own, for tests that stop, restart or pause it."""
    simulator = CameraSimulator([Mount("cam", tag=42)]).start()
    yield simulator
    simulator.stop()


def open_url(url: str, timeout: tuple[float, float] = (5, 5)):
    return av.open(url, options=OPTIONS, timeout=timeout)


def stamped_frames(container, limit: int = 60):
    """Yield (frame, stamp) for decoded frames that carry a readable stamp."""
    for index, frame in enumerate(container.decode(video=0)):
        if index >= limit:
            return
        stamp = read_stamp(frame.to_ndarray(format="gray"))
        if stamp is not None:
            yield frame, stamp


def first_stamps(url: str, count: int = 5) -> tuple[str, list[tuple[Stamp, int]]]:
    """Decoder name and `count` (stamp, age_ms) pairs read from the stream at `url`."""
    with open_url(url) as container:
        stamps = []
        for _, stamp in stamped_frames(container):
            stamps.append((stamp, stamp.age_ms()))
            if len(stamps) == count:
                break
        return container.streams.video[0].codec_context.name, stamps


def assert_tagged(stamps: list[tuple[Stamp, int]], tag: int) -> None:
    assert len(stamps) >= 5, "no readable stamp in the first 60 frames"
    assert {stamp.tag for stamp, _ in stamps} == {tag}
    for _, age in stamps:
        assert age < MAX_AGE_MS, f"stamp age {age} ms"


# --------------------------------------------------------------------------- streams


@pytest.mark.parametrize("codec", ["h264", "h265", "mjpeg"])
def test_each_codec_carries_its_tag_and_a_fresh_stamp(sim, codec):
    decoder, stamps = first_stamps(sim.url(codec))
    assert decoder == DECODERS[codec]
    assert_tagged(stamps, TAGS[codec])


def test_frames_keep_coming_at_the_frame_rate(sim):
    mount = MOUNTS[0]
    with open_url(sim.url(mount.path)) as container:
        frames = container.decode(video=0)
        first = next(frames)
        assert (first.width, first.height) == (mount.width, mount.height)
        start, count, last_ms = time.monotonic(), 0, None
        for frame in frames:
            stamp = read_stamp(frame.to_ndarray(format="gray"))
            assert stamp is not None and stamp.tag == mount.tag
            if last_ms is not None:
                assert stamp.ms > last_ms, "stamps must increase frame to frame"
            last_ms = stamp.ms
            count += 1
            if time.monotonic() - start >= 2.0:
                break
    elapsed = time.monotonic() - start
    assert count >= mount.fps * elapsed / 2, f"{count} frames in {elapsed:.2f} s"
    assert count <= mount.fps * elapsed * 1.5 + 2, f"{count} frames in {elapsed:.2f} s"


def test_two_clients_of_one_mount_both_get_increasing_stamps(sim):
    """A shared mount must not be re-seeked when a second client plays (FIELD-NOTES)."""
    results: dict[str, list[tuple[float, int]]] = {}
    errors: list[BaseException] = []
    b_joined = threading.Event()

    def client(name: str, seconds: float) -> None:
        points: list[tuple[float, int]] = []
        try:
            with open_url(sim.url("h264")) as container:
                if name == "b":
                    b_joined.set()
                start = time.monotonic()
                for frame, stamp in stamped_frames(container, limit=10_000):
                    if frame.time is not None:  # the very first frame may have no pts
                        points.append((float(frame.time), stamp.ms))
                    if time.monotonic() - start >= seconds:
                        break
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)
            b_joined.set()
        results[name] = points

    a = threading.Thread(target=client, args=("a", 3.0))
    a.start()
    time.sleep(1.0)
    b = threading.Thread(target=client, args=("b", 1.5))
    b.start()
    assert b_joined.wait(10)
    a.join(15)
    b.join(15)
    assert not errors, errors
    for name, points in results.items():
        assert len(points) >= 10, f"client {name} got {len(points)} stamped frames"
        times = [t for t, _ in points]
        stamps = [ms for _, ms in points]
        assert all(x < y for x, y in zip(stamps, stamps[1:])), f"client {name}: stamps went back"
        assert all(x < y for x, y in zip(times, times[1:])), (
            f"client {name}: timestamps jumped back: {times}")
    # Client a kept playing across b's join, with no gap: the media was not restarted.
    a_times = [t for t, _ in results["a"]]
    assert max(y - x for x, y in zip(a_times, a_times[1:])) < 0.5


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize("path", ["basic", "digest"])
def test_auth_mount_refuses_missing_or_wrong_password(sim, path):
    user = USER_BASIC if path == "basic" else USER_DIGEST
    wrong = f"rtsp://{user}:wrong@127.0.0.1:{sim.port}/{path}"
    for url in (sim.url(path), wrong):
        with pytest.raises(av.error.HTTPUnauthorizedError) as caught:
            open_url(url)
        assert "401" in str(caught.value)


@pytest.mark.parametrize("path", ["basic", "digest"])
def test_auth_mount_accepts_the_right_password(sim, path):
    _, stamps = first_stamps(sim.url(path, credentials=True))
    assert_tagged(stamps, TAGS[path])


def test_credentials_of_one_mount_do_not_open_another(sim):
    borrowed = sim.url("basic", credentials=True).replace("/basic", "/digest")
    with pytest.raises(av.error.HTTPUnauthorizedError):
        open_url(borrowed)


def test_url_quotes_credentials(sim):
    assert sim.url("h264") == f"rtsp://127.0.0.1:{sim.port}/h264"
    assert sim.url("basic", credentials=True) == (
        f"rtsp://alice:s3cret%3A%2F%40@127.0.0.1:{sim.port}/basic")
    with pytest.raises(ValueError):
        sim.url("h264", credentials=True)


# --------------------------------------------------------------------------- lifecycle


def test_stop_refuses_connections_and_restart_serves_on_the_same_port(lone_sim):
    port = lone_sim.port
    _, stamps = first_stamps(lone_sim.url("cam"))
    assert_tagged(stamps, 42)

    lone_sim.stop()
    lone_sim.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        open_url(lone_sim.url("cam"))

    lone_sim.restart()
    assert lone_sim.port == port
    _, stamps = first_stamps(lone_sim.url("cam"))
    assert_tagged(stamps, 42)


def test_restart_while_a_client_is_connected(lone_sim):
    """The client sees the stream end; the camera then comes back on the same port."""
    port = lone_sim.port
    with open_url(lone_sim.url("cam")) as container:
        frames = container.decode(video=0)
        next(frames)
        lone_sim.restart()
        with pytest.raises(StopIteration):
            for _ in range(100):  # a few frames may still be buffered, then EOF
                next(frames)
    assert lone_sim.port == port
    _, stamps = first_stamps(lone_sim.url("cam"))
    assert_tagged(stamps, 42)


def test_pause_hangs_the_camera_and_resume_brings_it_back(lone_sim):
    lone_sim.pause()
    try:
        start = time.monotonic()
        with pytest.raises((av.error.FFmpegError, TimeoutError)):
            open_url(lone_sim.url("cam"), timeout=(1, 1))
        assert time.monotonic() - start < 5
    finally:
        lone_sim.resume()
    _, stamps = first_stamps(lone_sim.url("cam"))
    assert_tagged(stamps, 42)


def test_start_failure_reports_the_server_error(gstreamer):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        simulator = CameraSimulator([Mount("cam")], port=busy.getsockname()[1])
        with pytest.raises(RuntimeError, match="cannot listen"):
            simulator.start()
    simulator.stop()


def test_bad_mount_is_reported(gstreamer):
    with pytest.raises(RuntimeError, match="multiples of 8"):
        CameraSimulator([Mount("cam", codec="mjpeg", width=642, height=360)]).start()


def test_server_exits_when_its_parent_dies(gstreamer):
    """A test run killed with SIGKILL must not leave camera servers behind."""
    script = (
        "import os, signal, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.support.camsim import CameraSimulator, Mount\n"
        "sim = CameraSimulator([Mount('cam')]).start()\n"
        "print(sim.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    parent = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=30)
    server = int(parent.stdout.split()[0])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{server}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break  # exited, waiting for init to reap it
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        os.kill(server, signal.SIGKILL)
        pytest.fail("the camera server outlived its parent")
