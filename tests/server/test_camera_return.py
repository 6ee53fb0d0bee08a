"""A camera that comes back after an outage is live again within seconds of its return,
however long it was away (issue 25): the worker watches its TCP port while backing off
(ingest/camera/backoff.py). A real RTSP camera (GStreamer) stopped and restarted on its port."""

from __future__ import annotations

import time

from tests.support.camsim import Mount
from tests.support.mjpeg import wait_until

TARGET = 10.0  # seconds from the camera's return to live: the note has the figures
BOUND = 3 * TARGET


def _state(server) -> str:
    return server.get_json("/api/cameras/back")["state"]


def test_a_camera_is_live_again_soon_after_an_outage(simulators, vigie):
    """20 s away: the worker has tried at 1, 2, 5 and 10 s and waits in its last back-off
    step (30 s), as after any longer outage (60 s, 5 minutes: measured by hand, the note)."""
    simulator = simulators([Mount("back", tag=61)])
    server = vigie('server: {listen: "127.0.0.1:{port}"}\ncommunes: [{id: bourg, name: Le Bourg}]\n'
                   f'cameras:\n  - {{id: back, name: Retour, commune: bourg, url: "{simulator.url("back")}", '
                   "stale_after: 2}\n")
    wait_until(lambda: _state(server) == "live", 20, message="camera live")
    returns = []
    for outage in (20.0,):
        simulator.stop()
        wait_until(lambda: _state(server) in ("offline", "stalled"), 15, message="camera down")
        time.sleep(outage)
        simulator.restart()
        back = time.monotonic()
        wait_until(lambda: _state(server) == "live", BOUND, interval=0.1, message=f"live after a {outage:.0f} s outage")
        returns.append(time.monotonic() - back)
    assert "port accepts again; reconnecting now" in server.log(), server.log()[-2000:]
    print(f"live again {returns[0]:.1f} s after the camera's return (20 s outage)")
