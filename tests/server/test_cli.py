"""The `vigie` command as a user runs it: check-config, demo, and the compose deployment."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.picture.layout import CellSpec
from tests.conftest import REPO, free_port, missing_component
from tests.support.mjpeg import ReceivedFrame, cell_stamp, fetch, login

VIGIE = [sys.executable, "-m", "server.cli"]


def run_vigie(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*VIGIE, *args], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("name", ["vigie.example.yaml", "vigie.compose.yaml"])
def test_shipped_configs_are_valid(name):
    result = run_vigie("check-config", name, env={"VIGIE_CAM_MAIRIE_PASSWORD": "x-example"})
    assert result.returncode == 0, result.stderr
    assert f"{name}: OK" in result.stdout


def test_check_config_names_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("communes:\n  - {id: a, name: A}\ncameras:\n"
                   "  - {id: c, name: C, commune: a, url: 'rtsp://h/x', stale_after: 0}\n")
    result = run_vigie("check-config", str(bad))
    assert result.returncode == 2
    assert f"{bad}:4: cameras[0].stale_after:" in result.stderr


def test_demo_serves_nine_live_cameras_on_a_3x3_wall():
    port = free_port()
    process = subprocess.Popen([*VIGIE, "demo", "--port", str(port), "--rtsp-port", "0", "--password", "demo-Pw-1"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        banner = "".join(process.stdout.readline() for _ in range(11))  # logs go to stderr
        assert f"http://127.0.0.1:{port}/walls/demo/mjpeg" in banner
        rtsp_camera = next(word for word in banner.split() if word.startswith("rtsp://") and "/cameras/" in word)
        for user in ("admin", "operator", "police-st-martin", "police-les-granges", "police-val-d-orge"):
            assert user in banner
        headers = None
        deadline = time.monotonic() + 20
        tags: list = []
        while time.monotonic() < deadline:
            try:
                headers = headers or login(f"http://127.0.0.1:{port}", "operator", "demo-Pw-1")
                status, _, body = fetch("GET", f"http://127.0.0.1:{port}/walls/demo/snapshot.jpg",
                                        headers=headers)
            except OSError:
                time.sleep(0.3)
                continue
            assert status == 200, body[:200]
            gray = ReceivedFrame(time.time(), body).gray()
            assert gray.shape == (1080, 1920)
            tags = [getattr(cell_stamp(gray, CellSpec(None, i // 3, i % 3), (3, 3), (640, 360)),
                            "tag", None) for i in range(9)]
            if tags == list(range(1, 10)):
                break
            time.sleep(0.3)
        assert tags == list(range(1, 10))
        # The printed RTSP URL plays with a demo user's printed password (Digest).
        with_user = rtsp_camera.replace("rtsp://", "rtsp://admin:demo-Pw-1@")
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                                "-of", "csv=p=0", with_user], capture_output=True, text=True, timeout=60)
        assert probe.stdout.strip() == "h264,640,360", probe.stderr
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(10)
    assert code == 0


def test_compose_file_is_valid():
    compose = shutil.which("docker-compose")
    if compose is None:
        missing_component("docker-compose (Debian package docker-compose) is missing")
    result = subprocess.run([compose, "-f", "docker-compose.yml", "config", "-q"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_installed_command_serves_the_viewer_from_any_folder(tmp_path):
    """As installed (the console script, started elsewhere than the checkout), the server
    finds the viewer through its package, not through the current folder or source paths."""
    command = Path(sys.executable).with_name("vigie")
    if not command.exists():
        missing_component(f"{command}: the project is not installed in this environment (make install)")
    port = free_port()
    process = subprocess.Popen([str(command), "demo", "--port", str(port), "--rtsp-port", "0", "--password", "demo-Pw-1"],
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status, headers, body = fetch("GET", f"http://127.0.0.1:{port}/login")
                break
            except OSError:
                time.sleep(0.2)
        assert process.poll() is None, process.stderr.read()[-2000:]
        assert status == 200 and headers["content-type"].startswith("text/html") and b"<form" in body
        status, _, script = fetch("GET", f"http://127.0.0.1:{port}/assets/login.js")
        assert status == 200 and script
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)


def test_a_busy_rtsp_port_is_a_clear_error(tmp_path):
    """The RTSP port taken by another program: exit 2 with what to change, no traceback."""
    import socket

    from tests.conftest import users_yaml

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        config = tmp_path / "vigie.yaml"
        config.write_text(f'server: {{listen: "127.0.0.1:{free_port()}"}}\n'
                          f'rtsp: {{listen: "127.0.0.1:{busy}"}}\ncommunes: [{{id: a, name: A}}]\n'
                          f'audit: {{path: "{tmp_path}/audit.sqlite"}}\n' + users_yaml())
        result = subprocess.run([*VIGIE, "serve", "--config", str(config)], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"RTSP: cannot listen on 127.0.0.1:{busy}" in result.stderr and "rtsp.listen" in result.stderr
    assert "Traceback" not in result.stderr
