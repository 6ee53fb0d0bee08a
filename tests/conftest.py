"""Shared fixtures: a real Vigie server process on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class VigieProcess:
    process: subprocess.Popen
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took)."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = -9
        return code, time.monotonic() - started


def start_vigie(config_text: str, tmp_path: Path, env: dict[str, str] | None = None,
                ready_timeout: float = 20.0) -> VigieProcess:
    port = free_port()
    config_path = tmp_path / "vigie.yaml"
    config_path.write_text(config_text.replace("{port}", str(port)))
    log_path = tmp_path / "vigie.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--config", str(config_path)],
        cwd=REPO, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"vigie exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(base_url + "/readyz", timeout=1) as response:
                if response.status == 200:
                    return VigieProcess(process, base_url, log_path)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"vigie not ready after {ready_timeout} s:\n{log_path.read_text()}")


@pytest.fixture
def vigie(tmp_path) -> Iterator:
    """Factory fixture: `vigie(config_text, env=...)` starts a server; all are stopped after."""
    started: list[VigieProcess] = []

    def _start(config_text: str, env: dict[str, str] | None = None) -> VigieProcess:
        server = start_vigie(config_text, tmp_path, env)
        started.append(server)
        return server

    yield _start
    for server in started:
        if server.process.poll() is None:
            server.terminate()


@pytest.fixture
def simulators() -> Iterator:
    """Factory fixture: `simulators(mounts)` starts a camera simulator; all stopped after.

    A machine without GStreamer fails the test in CI (CI=true) and skips it elsewhere.
    """
    from tests.camsim import CameraSimulator, require_gstreamer

    try:
        require_gstreamer()
    except RuntimeError as error:
        if IN_CI:
            pytest.fail(str(error))
        pytest.skip(str(error))
    started = []

    def _start(mounts, port: int = 0):
        simulator = CameraSimulator(mounts, port=port).start()
        started.append(simulator)
        return simulator

    yield _start
    for simulator in started:
        simulator.stop()
