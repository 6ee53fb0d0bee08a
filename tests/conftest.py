"""Shared fixtures: a real Vigie server process on a free port."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def missing_component(problem: str) -> NoReturn:
    """A component the test needs is not on this machine: a failure in CI (CI=true), where
    everything must be installed, a skip elsewhere."""
    if IN_CI:
        pytest.fail(problem)
    pytest.skip(problem)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


TEST_PASSWORDS = {"admin": "admin-Pw-7c1e", "operator": "operator-Pw-52ab"}


@functools.cache
def password_hash(password: str) -> str:
    from server.access.secrets import hash_password

    return hash_password(password)


def users_yaml(police: dict[str, list[str]] | None = None) -> str:
    """A `users:` section: admin, operator, and police users {name: [communes]}.

    Police passwords are `<name>-Pw`."""
    lines = ["users:"]
    for name, password in TEST_PASSWORDS.items():
        lines.append(f'  - {{name: {name}, role: {name}, password_hash: "{password_hash(password)}"}}')
    for name, communes in (police or {}).items():
        lines.append(f'  - {{name: {name}, role: police, communes: [{", ".join(communes)}], '
                     f'password_hash: "{password_hash(name + "-Pw")}"}}')
    return "\n".join(lines) + "\n"


@dataclass
class VigieProcess:
    process: subprocess.Popen
    base_url: str
    log_path: Path
    headers: dict[str, str] = field(default_factory=dict)  # the admin's session

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get_json(self, path: str, headers: dict[str, str] | None = None):
        from tests.support.mjpeg import get_json

        return get_json(self.base_url + path, headers=self.headers if headers is None else headers)

    def read_mjpeg(self, path: str, seconds: float, headers: dict[str, str] | None = None):
        from tests.support.mjpeg import read_for

        return read_for(self.base_url + path, seconds, self.headers if headers is None else headers)

    def reader(self, path: str, read_delay: float = 0.0, headers: dict[str, str] | None = None):
        from tests.support.mjpeg import MjpegReader

        return MjpegReader(self.base_url + path, read_delay,
                           self.headers if headers is None else headers).start()

    def login(self) -> None:
        """Log in as the standard admin (argon2: ~0.3 s): `headers` then carry the session."""
        from tests.support.mjpeg import login

        self.headers = login(self.base_url, "admin", TEST_PASSWORDS["admin"])

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
                ready_timeout: float = 20.0, port: int | None = None,
                login: bool = True, host: str = "127.0.0.1") -> VigieProcess:
    """Start `vigie serve` on a free port ({port} in the text) of `host` ({host} in the text,
    if it listens elsewhere than 127.0.0.1); log in as admin (unless `login` is false: call
    `.login()` later).

    A config without a `users:` section gets the standard admin and operator."""
    port = port or free_port(host)
    config_text = config_text.replace("{host}", host)
    if "\nusers:" not in config_text:
        config_text = config_text.rstrip("\n") + "\n" + users_yaml()
    if "\nrtsp:" not in config_text:  # every server its own RTSP and UDP ports
        from server.cli import free_tcp_port, free_udp_pair

        config_text = (config_text.rstrip("\n") + f'\nrtsp: {{listen: "127.0.0.1:{free_tcp_port("127.0.0.1")}", '
                       f'udp_ports: "{(first := free_udp_pair("127.0.0.1"))}-{first + 1}"}}\n')
    folder = tmp_path / f"vigie-{port}"  # its own folder: config, log, journal, sessions
    folder.mkdir(exist_ok=True)  # a restart on the same port finds its journal and sessions
    config_path = folder / "vigie.yaml"
    config_path.write_text(config_text.replace("{port}", str(port)))
    log_path = folder / "vigie.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--config", str(config_path)],
        cwd=REPO, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    base_url = f"http://{host}:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"vigie exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(base_url + "/readyz", timeout=1) as response:
                if response.status == 200:
                    server = VigieProcess(process, base_url, log_path)
                    if login:
                        server.login()
                    return server
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
    from tests.support.camsim import CameraSimulator, require_gstreamer

    try:
        require_gstreamer()
    except RuntimeError as error:
        missing_component(str(error))
    started = []

    def _start(mounts, port: int = 0):
        simulator = CameraSimulator(mounts, port=port).start()
        started.append(simulator)
        return simulator

    yield _start
    for simulator in started:
        simulator.stop()
