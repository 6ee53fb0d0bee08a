"""A hostile camera (tests/support/hostile_rtsp.py) replays each attack of issue 18, items 2 and 3,
against a running Vigie runtime whose two healthy cameras (tests/support/camsim) are watched.

The runtime runs in this process, as in `vigie serve`: a camera that holds the GIL freezes
this test's event loop just as it froze Vigie's, and what it allocates shows in this
process's RSS. While each attack runs, for WINDOW seconds: the event loop's lateness (a
PROBE timer) stays under MAX_LATENESS, the RSS peak stays under MAX_RSS_GROWTH above its
level before, the healthy cameras keep KEEP of their input rate, and the hostile camera's
status says why it was disconnected (what /api/cameras shows as `last_error`).

Before the fix: the 60 k `Digest ` challenge froze the loop for 28 s while opening and 30 s
in the stream (the healthy cameras at 0 fps); the 150 kB header was buffered (then taken, or
refused as a "bad answer" when a recv cut it past 64 kB); a huge Content-Length took 230 MB
while opening and 196 MB in the stream, endless FU-A fragments 480 MB. Run with `-s` to see
each attack's figures.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from ingest.redact import Redactor
from ingest.camera.health import CameraState
from server.config import VigieConfig, parse_config
from server.runtime import Runtime
from tests.support.camsim import CameraSimulator, Mount
from tests.support.hostile_rtsp import HostileCamera
from tests.ingest.test_camsim import gstreamer  # noqa: F401 - fixture (fails under CI=true)

WINDOW = 5.0  # seconds an attack runs; the input rate is a 5 s average (ingest/camera/health.py)
PROBE = 0.02  # seconds between the event loop probe's wakes
# Issue 18's targets are 0.1 s of lateness (the benchmark figure) and 64 MB; these bounds
# are 3 times the first and the second itself (a fixed client peaks at 16 MB, an FU-A unit).
MAX_LATENESS = 0.3
MAX_RSS_GROWTH = 64 * 1024 * 1024
KEEP = 0.8
FPS = 15
HEALTHY = [Mount("north", width=320, height=180, fps=FPS, tag=61),
           Mount("south", width=320, height=180, fps=FPS, tag=62)]
HEADER_LIMIT = "camera sent an RTSP header over 16 kB"
BODY_LIMIT = "camera announced an RTSP body of 99999999999 bytes, over the 64 kB limit"


@dataclass(frozen=True)
class Attack:
    path: str  # tests/support/hostile_rtsp.py ATTACKS
    reason: str  # the hostile camera's last error


ATTACKS = [
    Attack("digest-open", HEADER_LIMIT),
    Attack("digest-stream", HEADER_LIMIT),
    Attack("big-header", HEADER_LIMIT),
    Attack("huge-length-options", BODY_LIMIT),
    Attack("huge-length-stream", BODY_LIMIT),
    # Not a disconnection: the unit is dropped at 16 MB, nothing else comes.
    Attack("endless-fua", "camera sent a picture over 16 MB"),
]


def config(simulator: CameraSimulator, hostile_url: str | None = None) -> VigieConfig:
    cameras = "".join(f'  - {{id: {mount.path}, name: {mount.path}, commune: bourg, '
                      f'url: "{simulator.url(mount.path)}"}}\n' for mount in HEALTHY)
    if hostile_url is not None:
        # With credentials: the open phase reads a 401's challenges only then.
        cameras += (f'  - {{id: hostile, name: Hostile, commune: bourg, url: "{hostile_url}", '
                    "username: admin, password_env: HOSTILE_PASSWORD, stale_after: 3.0, "
                    "open_timeout: 3.0}\n")
    text = f"communes:\n  - {{id: bourg, name: Le Bourg}}\ncameras:\n{cameras}"
    return parse_config(text, "hostile.yaml", env={"HOSTILE_PASSWORD": "n0t-a-secret"})


def memory(field: str) -> int:
    """A VmRSS-style field of this process's /proc status, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak() -> None:
    """Restart VmHWM (the peak RSS) from the current RSS (Linux 4.0+)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


@dataclass(frozen=True)
class Figures:
    lateness: float  # the event loop's worst, seconds
    rss_growth: int  # the peak above the level before, bytes
    rates: dict[str, float]  # the healthy cameras' input fps over the attack
    state: CameraState
    last_error: str | None

    def line(self, attack: str) -> str:
        rates = ", ".join(f"{camera} {rate:.1f} fps" for camera, rate in self.rates.items())
        return (f"{attack}: loop lateness max {self.lateness * 1000:.0f} ms, RSS +"
                f"{self.rss_growth / 2**20:.1f} MB, {rates}, hostile: {self.last_error}")


async def run_attack(runtime: Runtime, base: VigieConfig, attacked: VigieConfig) -> Figures:
    loop = asyncio.get_running_loop()
    worst, peak = 0.0, 0

    async def probe() -> None:
        nonlocal worst, peak
        while True:
            due = loop.time() + PROBE
            await asyncio.sleep(PROBE)
            worst = max(worst, loop.time() - due)
            peak = max(peak, memory("VmRSS"))

    reset_peak()
    before = memory("VmRSS")
    task = asyncio.create_task(probe())
    try:
        await runtime.async_apply(attacked)  # the hostile camera is added, as by a reload
        await asyncio.sleep(WINDOW)
        status = runtime.workers["hostile"].status()
        rates = {mount.path: runtime.workers[mount.path].status().input_fps for mount in HEALTHY}
        peak = max(peak, memory("VmHWM"))
        await runtime.async_apply(base)  # and removed
    finally:
        task.cancel()
    return Figures(worst, peak - before, rates, status.state, status.last_error)


@pytest.fixture(scope="module")
def vigie(gstreamer):  # noqa: F811
    """The runtime with its two healthy cameras live and watched (tiles decoded in full)."""
    with CameraSimulator(HEALTHY) as simulator, HostileCamera() as hostile:
        base = config(simulator)
        runtime = Runtime(base, Redactor())
        runtime.start()
        requests = []
        try:
            for mount in HEALTHY:
                worker = runtime.workers[mount.path]
                requests.append((worker, worker.attach((160, 90), FPS, overlay=False)))
            deadline = time.monotonic() + 20
            while not all(runtime.workers[m.path].status().state is CameraState.LIVE
                          for m in HEALTHY):
                assert time.monotonic() < deadline, "the healthy cameras never went live"
                time.sleep(0.1)
            time.sleep(1.0)  # a first second of input rate
            yield runtime, base, simulator, hostile
        finally:
            for worker, request in requests:
                worker.detach(request)
            asyncio.run(runtime.async_stop())


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.path for attack in ATTACKS])
def test_a_hostile_camera_neither_freezes_nor_bloats_vigie(vigie, attack: Attack) -> None:
    runtime, base, simulator, hostile = vigie
    figures = asyncio.run(run_attack(runtime, base, config(simulator, hostile.url(attack.path))))
    print("\n" + figures.line(attack.path))
    assert figures.lateness < MAX_LATENESS, figures
    assert figures.rss_growth < MAX_RSS_GROWTH, figures
    assert all(rate >= KEEP * FPS for rate in figures.rates.values()), figures
    assert figures.state is not CameraState.LIVE and figures.last_error == attack.reason, figures
