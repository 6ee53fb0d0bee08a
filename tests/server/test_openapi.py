"""The OpenAPI document is served, and a schemathesis run against it finds no 5xx."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import users_yaml
from tests.support.mjpeg import fetch

CONFIG = ('server: {listen: "127.0.0.1:{port}"}\ncommunes: [{id: a, name: A}, {id: b, name: B}]\ncameras:\n'
          '  - {id: c1, name: C1, commune: a, url: "synthetic://c1?width=320&height=180&fps=5&tag=1"}\n'
          '  - {id: c2, name: C2, commune: b, url: "synthetic://c2?width=320&height=180&fps=5&tag=2"}\n'
          "walls:\n  - {id: w, name: W, size: 640x180, fps: 5, layout: 2x1, cameras: [c1, c2]}\n"
          + users_yaml({"agent": ["a"]}))


def test_schemathesis_finds_no_server_error(vigie):
    server = vigie(CONFIG)
    status, _, body = fetch("GET", server.base_url + "/api/openapi.json", headers=server.headers)
    assert status == 200 and b'"openapi": "3.0.3"' in body
    runner = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert runner, "schemathesis is a test dependency (requirements.lock)"
    result = subprocess.run(
        [runner, "run", server.base_url + "/api/openapi.json", "--checks", "not_a_server_error",
         "--header", f"Cookie: {server.headers['Cookie'].split(': ', 1)[-1]}",
         "--max-examples", "25", "--exclude-path", "/logout",
         "--exclude-operation-id", "end_sessions",  # would end the session it runs with "--request-timeout", "15",
         "--phases", "examples,coverage,fuzzing", "--suppress-health-check", "all"],
        capture_output=True, text=True, timeout=240, cwd=Path(server.log_path).parent,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
    report = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    generated = re.search(r"(\d+) generated", result.stdout)
    assert generated and int(generated.group(1)) >= 100, report  # it really exercised the API
    code, _ = server.terminate()
    assert code == 0
    assert "Traceback" not in server.log(), server.log()[-3000:]
