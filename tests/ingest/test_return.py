"""A camera coming back after an outage is tried again as soon as its TCP port accepts,
not at the end of its back-off step (ingest/camera/backoff.py), with real sockets; end to end
with a real RTSP camera in tests/server/test_camera_return.py."""

from __future__ import annotations

import socket
import threading
import time

from ingest.camera.backoff import probe_address, wait_for_return
from tests.conftest import free_port


def _port_back_after(seconds: float) -> tuple[int, socket.socket]:
    """A free port of 127.0.0.1 that refuses connections for `seconds`, then listens."""
    port = free_port("127.0.0.1")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def come_back() -> None:
        time.sleep(seconds)
        listener.bind(("127.0.0.1", port))
        listener.listen()

    threading.Thread(target=come_back, daemon=True).start()
    return port, listener


def test_a_port_that_comes_back_cuts_the_wait_short() -> None:
    port, listener = _port_back_after(3.0)
    started = time.monotonic()
    try:
        assert wait_for_return(threading.Event(), 30.0, ("127.0.0.1", port), interval=1.0)
    finally:
        listener.close()
    assert time.monotonic() - started < 10.0  # the back-off step was 30 s


def test_a_port_that_accepted_all_along_keeps_the_back_off() -> None:
    """The camera failed above TCP (401, 404): its attempts stay paced."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        started = time.monotonic()
        assert not wait_for_return(threading.Event(), 2.5, listener.getsockname()[:2], interval=0.5)
        assert time.monotonic() - started >= 2.4


def test_stopping_ends_the_wait_and_only_rtsp_urls_are_probed() -> None:
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    assert not wait_for_return(stop, 30.0, ("127.0.0.1", free_port("127.0.0.1")), interval=0.2)
    assert time.monotonic() - started < 5.0
    assert probe_address("rtsp://cam.example:8554/live") == ("cam.example", 8554)
    assert probe_address("rtsp://10.0.0.7/live") == ("10.0.0.7", 554)
    assert probe_address("rtsps://10.0.0.7/live") == ("10.0.0.7", 322)
    assert probe_address("synthetic://demo") is None
    assert probe_address("relay://c1") is None


def test_a_port_back_before_the_first_probe_of_the_wait_still_cuts_it_short() -> None:
    """The attempt just failed (refused); the camera is back 0.3 s later, before the wait's
    first periodic probe: the wait saw it down at its start, so it ends at that probe."""
    port, listener = _port_back_after(0.3)
    started = time.monotonic()
    try:
        assert wait_for_return(threading.Event(), 20.0, ("127.0.0.1", port), interval=1.0)
    finally:
        listener.close()
    assert time.monotonic() - started < 5.0
