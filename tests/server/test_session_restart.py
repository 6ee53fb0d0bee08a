"""Sessions survive a restart (wall screens come back by themselves), logouts too."""

from pathlib import Path

from tests.conftest import start_vigie
from tests.support.mjpeg import fetch, login

CONFIG = 'server: {listen: "127.0.0.1:{port}"}\ncommunes: [{id: a, name: A}]\n'


def test_sessions_and_logouts_survive_a_restart(tmp_path):
    first = start_vigie(CONFIG, tmp_path)
    port = int(first.base_url.rsplit(":", 1)[1])
    kept = login(first.base_url, "operator", "operator-Pw-52ab")
    ended = login(first.base_url, "operator", "operator-Pw-52ab")
    assert fetch("POST", first.base_url + "/logout", b"", ended)[0] == 200
    assert first.terminate()[0] == 0
    sessions_file = next(Path(tmp_path).glob("vigie-*/vigie-sessions.sqlite"))
    assert kept["Cookie"].split("=", 1)[1].encode() not in sessions_file.read_bytes()  # digests only
    second = start_vigie(CONFIG, tmp_path, port=port)
    try:
        assert fetch("GET", second.base_url + "/api/me", headers=kept)[0] == 200
        assert fetch("GET", second.base_url + "/api/me", headers=ended)[0] == 401
    finally:
        second.terminate()
