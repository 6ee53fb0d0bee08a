"""RTSP test cameras: drive `rtsp_server.py` (GStreamer, Debian's python3) from the venv.

    with CameraSimulator([Mount("cam1", tag=1), Mount("cam2", codec="h265", tag=2)]) as sim:
        url = sim.url("cam1")            # rtsp://127.0.0.1:PORT/cam1

Every frame carries the stamp of `ingest.picture.stamp` (the mount's tag and the wall-clock time the
frame was made), so a test can tell cameras apart and measure glass-to-glass age.

Standard library only: this module is imported by the tests and the bench in the venv, while
the server itself runs under /usr/bin/python3, which has `gi` (PyGObject) and GStreamer.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

__all__ = ["Mount", "CameraSimulator", "require_gstreamer", "SYSTEM_PYTHON", "SERVER_SCRIPT"]

SYSTEM_PYTHON = os.environ.get("CAMSIM_PYTHON", "/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
STDERR_LINES = 200  # the child's stderr is kept in a bounded buffer of this many lines


@dataclass
class Mount:
    path: str
    codec: str = "h264"          # h264 | h265 | mjpeg
    width: int = 640
    height: int = 360
    fps: int = 15
    gop: int = 15
    tag: int = 1                 # 0..255, drawn in the stamp, so tests can tell cameras apart
    username: str | None = None
    password: str | None = None
    auth: str = "basic"          # basic | digest
    # Picture faults, for picture health: from `fault_after` seconds after the simulator
    # started, for `fault_for` seconds (0: for good), the picture is frozen (the same frame
    # sent again, stamp and all), black, or blurred. `scene`: "moving" (the stripes slide)
    # or "fixed" (a still background, only the bar and the stamp move: a street camera).
    fault: str | None = None     # freeze | black | blur
    fault_after: float = 0.0
    fault_for: float = 0.0
    scene: str = "moving"


class CameraSimulator:
    """One simulator process serving several mounts on one port."""

    def __init__(self, mounts: list[Mount], port: int = 0, host: str = "127.0.0.1",
                 session_timeout: int | None = None) -> None:
        if not mounts:
            raise ValueError("CameraSimulator needs at least one mount")
        self.mounts = list(mounts)
        self.host = host
        self._port = port
        self.session_timeout = session_timeout  # seconds; None: GStreamer's (not enforced)
        self._process: subprocess.Popen | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._paused = False
        self._playing: dict[str, int] = {}

    # -- lifecycle

    def start(self, timeout: float = 15.0) -> CameraSimulator:
        """Spawn the server, wait for `READY <port>`, remember the port (reused by restart)."""
        if self.running:
            return self
        self.stop()  # reap a server that died on its own
        config = {"host": self.host, "port": self._port, "session_timeout": self.session_timeout,
                  "mounts": [asdict(mount) for mount in self.mounts]}
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["PYTHONUNBUFFERED"] = "1"
        self._stderr.clear()
        self._paused = False
        try:
            process = subprocess.Popen(
                [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--config", json.dumps(config),
                 "--exit-on-stdin-eof"],
                stdin=subprocess.PIPE,  # closed when this process dies: the server follows
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                text=True,
                bufsize=1,
            )
        except OSError as error:
            raise RuntimeError(f"camera simulator: cannot run {SYSTEM_PYTHON}: {error}") from error
        self._process = process
        ready = threading.Event()
        found: list[int] = []
        self._playing = {}
        threading.Thread(target=self._drain_stdout, args=(process, ready, found, self._playing),
                         name="camsim-stdout", daemon=True).start()
        threading.Thread(target=self._drain_stderr, args=(process,),
                         name="camsim-stderr", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if process.poll() is not None or time.monotonic() > deadline:
                break
        if not found:
            died = process.poll() is not None
            self._kill(process)
            self._process = None
            time.sleep(0.05)  # let the drain thread catch the last stderr lines
            what = (f"exited with code {process.returncode}" if died
                    else f"not ready after {timeout:.0f} s")
            raise RuntimeError(f"camera simulator {what}; stderr tail:\n{self.stderr_tail()}")
        self._port = found[0]
        return self

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if needed. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            self._kill(process)
        self._paused = False

    def restart(self) -> None:
        """Stop, then start again on the SAME port (a camera coming back)."""
        self.stop()
        deadline = time.monotonic() + 5.0
        while True:
            try:
                self.start()
                return
            except RuntimeError:
                # The port may be held a moment by a socket of the dead process.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def pause(self) -> None:
        """SIGSTOP: the camera hangs (TCP stays open, nothing is sent or answered)."""
        if self._process is None:
            raise RuntimeError("camera simulator is not running")
        self._process.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT after pause()."""
        if self._process is None:
            raise RuntimeError("camera simulator is not running")
        self._process.send_signal(signal.SIGCONT)
        self._paused = False

    # -- information

    def playing(self) -> dict[str, int]:
        """RTSP clients playing each mount now (as the simulator last reported)."""
        return dict(self._playing)

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("camera simulator has no port yet: call start()")
        return self._port

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def url(self, path: str, credentials: bool = False) -> str:
        path = path.strip("/")
        userinfo = ""
        if credentials:
            mount = self._mount(path)
            if mount.username is None or mount.password is None:
                raise ValueError(f"mount {path!r} has no credentials")
            userinfo = f"{quote(mount.username, safe='')}:{quote(mount.password, safe='')}@"
        return f"rtsp://{userinfo}{self.host}:{self.port}/{quote(path, safe='/')}"

    def stderr_tail(self, lines: int = 40) -> str:
        return "\n".join(list(self._stderr)[-lines:])

    # -- context manager

    def __enter__(self) -> CameraSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __del__(self) -> None:  # last resort: never leak a server process
        try:
            self.stop()
        except Exception:  # noqa: BLE001
            pass

    # -- internals

    def _mount(self, path: str) -> Mount:
        for mount in self.mounts:
            if mount.path.strip("/") == path:
                return mount
        raise KeyError(f"no mount {path!r}")

    def _kill(self, process: subprocess.Popen) -> None:
        stop_process(process, paused=self._paused)

    @staticmethod
    def _drain_stdout(process: subprocess.Popen, ready: threading.Event,
                      found: list[int], found_playing: dict[str, int]) -> None:
        try:
            for line in process.stdout:
                if line.startswith("PLAYING "):
                    try:
                        counts = json.loads(line[8:])
                    except ValueError:
                        continue
                    found_playing.clear()
                    found_playing.update(counts)
                    continue
                if not found and line.startswith("READY "):
                    try:
                        found.append(int(line.split()[1]))
                    except (IndexError, ValueError):
                        continue
                    ready.set()
        except (OSError, ValueError):
            pass  # closed by stop()
        ready.set()

    def _drain_stderr(self, process: subprocess.Popen) -> None:
        try:
            for line in process.stderr:
                self._stderr.append(line.rstrip("\n"))
        except (OSError, ValueError):
            pass


_CHECK_SCRIPT = r"""
import sys
def fail(package, what):
    print(package + "\t" + what); sys.exit(1)
try:
    import gi
except ImportError as e:
    fail("python3-gi", str(e))
try:
    import numpy
except ImportError as e:
    fail("python3-numpy", str(e))
try:
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
except (ImportError, ValueError) as e:
    fail("gir1.2-gstreamer-1.0", str(e))
try:
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GstRtsp, GstRtspServer
except (ImportError, ValueError) as e:
    fail("gir1.2-gst-rtsp-server-1.0", str(e))
Gst.init(None)
for element, package in [
    ("appsrc", "gstreamer1.0-plugins-base"),
    ("jpegenc", "gstreamer1.0-plugins-good"),
    ("rtph264pay", "gstreamer1.0-plugins-good"),
    ("rtph265pay", "gstreamer1.0-plugins-good"),
    ("rtpjpegpay", "gstreamer1.0-plugins-good"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("x265enc", "gstreamer1.0-plugins-bad"),
]:
    if Gst.ElementFactory.find(element) is None:
        fail(package, "GStreamer element " + element + " not found")
print("ok")
"""

_gstreamer_ok = False


def stop_process(process: subprocess.Popen, paused: bool = False) -> None:
    """SIGTERM, then SIGKILL after 5 s; close its pipes. `paused`: it may be SIGSTOPped
    (a stopped process does not act on SIGTERM until continued)."""
    if process.poll() is None:
        if paused:
            process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5.0)
    for stream in (process.stdin, process.stdout, process.stderr):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass


def require_gstreamer() -> None:
    """Raise RuntimeError naming the missing Debian package if the simulator cannot run."""
    global _gstreamer_ok
    if _gstreamer_ok:
        return
    hint = "install it with `make debian-deps` (or apt-get install)"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        raise RuntimeError(f"camera simulator needs Debian's {SYSTEM_PYTHON} (package python3); {hint}")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    try:
        result = subprocess.run([SYSTEM_PYTHON, "-c", _CHECK_SCRIPT], capture_output=True,
                                text=True, timeout=30, env=env)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RuntimeError(f"camera simulator: cannot run {SYSTEM_PYTHON}: {error}") from error
    if result.returncode != 0 or result.stdout.strip() != "ok":
        first = (result.stdout.strip().splitlines() or [""])[0]
        if "\t" in first:
            package, what = first.split("\t", 1)
            raise RuntimeError(
                f"camera simulator needs the Debian package {package} ({what}); {hint}")
        raise RuntimeError(f"camera simulator: GStreamer check failed: "
                           f"{result.stderr.strip()[-500:] or first}")
    _gstreamer_ok = True
