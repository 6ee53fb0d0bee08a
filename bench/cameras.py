"""The bench's cameras: a few live-stamped ones (tests/support/camsim, x264 per frame, for latency)
and many looped pre-encoded ones (bench/feeder.py, no encoding, for load).

Camera i (0-based) always draws tag FIRST_TAG + i, live or looped, so a wall cell tells
which camera it shows. `url(i, live)` picks the live mount or the looped one.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bench.clips import make_clips
from tests.support.camsim import SYSTEM_PYTHON, CameraSimulator, Mount, require_gstreamer, stop_process

FIRST_TAG = 11
SOURCE = (640, 360)
FPS = 15
GOP = 15
CLIP_FRAMES = 60  # 4 s loops (4 GOPs)
FEEDER_SCRIPT = Path(__file__).with_name("feeder.py")
CLIP_CACHE = Path(tempfile.gettempdir()) / "vigie-bench-clips-v1"


class Feeder:
    """bench/feeder.py under Debian's python3: looped clips, one mount per camera."""

    def __init__(self, clips: list[Path], fps: int = FPS, size: tuple[int, int] = SOURCE) -> None:
        self.clips = clips
        self.fps, self.size = fps, size
        self.process: subprocess.Popen | None = None
        self.port = 0
        self._stderr: collections.deque[str] = collections.deque(maxlen=100)

    def start(self, timeout: float = 20.0) -> "Feeder":
        config = {"host": "127.0.0.1", "port": self.port, "fps": self.fps, "width": self.size[0],
                  "height": self.size[1],
                  "mounts": [{"path": f"loop{i}", "clip": str(clip)}
                             for i, clip in enumerate(self.clips)]}
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(FEEDER_SCRIPT), "--config", json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)
        threading.Thread(target=self._drain, args=(self.process,), daemon=True).start()
        found: list[int] = []

        def ready() -> None:
            for line in self.process.stdout:
                if line.startswith("READY "):
                    found.append(int(line.split()[1]))
                    return

        reader = threading.Thread(target=ready, daemon=True)
        reader.start()
        reader.join(timeout)
        if not found:
            self.stop()
            raise RuntimeError("feeder not ready:\n" + "\n".join(self._stderr))
        self.port = found[0]
        return self

    def _drain(self, process: subprocess.Popen) -> None:
        try:
            for line in process.stderr:
                self._stderr.append(line.rstrip())
        except (OSError, ValueError):
            pass

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stderr_tail(self) -> str:
        return "\n".join(list(self._stderr)[-20:])

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process(process)


class CameraRig:
    """`total` looped cameras, and live-stamped mounts for the cameras in `live`."""

    def __init__(self, total: int, live: set[int], log=print) -> None:
        self.total = total
        self.live = sorted(live)
        self.log = log
        self.simulator: CameraSimulator | None = None
        self.feeder: Feeder | None = None
        self.clips_seconds = 0.0

    def start(self) -> "CameraRig":
        require_gstreamer()
        started = time.monotonic()
        tags = [FIRST_TAG + i for i in range(self.total)]
        clips = make_clips(CLIP_CACHE, tags, width=SOURCE[0], height=SOURCE[1], fps=FPS,
                           gop=GOP, frames=CLIP_FRAMES)
        self.clips_seconds = time.monotonic() - started
        self.log(f"bench: {len(clips)} looped clips ready in {self.clips_seconds:.1f} s "
                 f"({CLIP_CACHE})")
        self.feeder = Feeder(clips).start()
        if self.live:
            self.simulator = CameraSimulator(self._mounts()).start()
        return self

    def _mounts(self) -> list[Mount]:
        return [Mount(f"live{i}", codec="h264", width=SOURCE[0], height=SOURCE[1], fps=FPS,
                      gop=GOP, tag=FIRST_TAG + i) for i in self.live]

    def url(self, index: int, live: bool) -> str:
        if live:
            if index not in self.live:
                raise ValueError(f"camera {index} has no live mount")
            return self.simulator.url(f"live{index}")
        return f"rtsp://127.0.0.1:{self.feeder.port}/loop{index}"

    def pids(self) -> dict[str, int]:
        pids = {}
        if self.feeder is not None and self.feeder.pid:
            pids["feeder"] = self.feeder.pid
        if self.simulator is not None and self.simulator.pid:
            pids["camsim"] = self.simulator.pid
        return pids

    def check(self) -> None:
        if self.feeder is not None and not self.feeder.running:
            raise RuntimeError(f"feeder died:\n{self.feeder.stderr_tail()}")
        if self.simulator is not None and not self.simulator.running:
            raise RuntimeError(f"camera simulator died:\n{self.simulator.stderr_tail()}")

    def restart(self, live: bool) -> None:
        """A mount that never sent a frame: restart its server (same port)."""
        if live and self.simulator is not None:
            self.log("bench: restarting the camera simulator (a live mount sent nothing)")
            self.simulator.restart()
        elif self.feeder is not None:
            self.log("bench: restarting the feeder (a looped mount sent nothing)")
            self.feeder.stop()
            self.feeder.start()

    def stop(self) -> None:
        if self.simulator is not None:
            try:
                self.simulator.stop()
            finally:
                self.simulator = None
        if self.feeder is not None:
            self.feeder.stop()
            self.feeder = None
