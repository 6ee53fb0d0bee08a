"""Hot reload: only changed cameras restart, viewers stay, a bad file changes nothing."""

import json
import signal
import time
from pathlib import Path

from ingest.picture.layout import CellSpec
from tests.conftest import users_yaml
from tests.support.mjpeg import cell_stamp, fetch, login, wait_until

BASE = ('server: {listen: "127.0.0.1:PORT"}\ncommunes: [{id: a, name: A}]\ncameras:\n'
        '  - {id: one, name: One, commune: a, url: "synthetic://one?width=320&height=180&fps=10&tag=1"}\n'
        '  - {id: two, name: Two, commune: a, url: "synthetic://two?width=320&height=180&fps=10&tag=TWO"}\n'
        "EXTRA"
        "walls:\n  - {id: w, name: W, size: 640x180, fps: 10, layout: 2x1, cameras: [one, two]}\n")


def config(port: str, two_tag: int, extra: str = "") -> str:
    return (BASE.replace("PORT", port).replace("TWO", str(two_tag)).replace("EXTRA", extra)
            + users_yaml({"agent": ["a"]}))


def tags(frame) -> list:
    gray = frame.gray()
    return [getattr(cell_stamp(gray, CellSpec(None, 0, column), (2, 1), (320, 180)), "tag", None)
            for column in range(2)]


def test_reload_restarts_only_changed_cameras_and_keeps_viewers(vigie):
    server = vigie(config("{port}", 2))
    port = server.base_url.rsplit(":", 1)[1]
    path = Path(server.log_path).parent / "vigie.yaml"
    wait_until(lambda: all(c["state"] == "live" for c in server.get_json("/api/cameras")), 10)
    one_since = server.get_json("/api/cameras/one")["since"]
    reader = server.reader("/walls/w/mjpeg")
    try:
        wait_until(lambda: reader.frames and tags(reader.frames[-1]) == [1, 2], 10, message="wall")
        # An invalid file is refused with its error; nothing changes.
        path.write_text(config(port, 2).replace("fps: 10, layout", "fps: 100, layout"))
        status, _, body = fetch("POST", server.base_url + "/api/admin/reload", b"", server.headers)
        assert status == 400 and "vigie.yaml:7: walls[0].fps" in json.loads(body)["error"]
        # Camera two changes, camera three appears; one is untouched.
        three = '  - {id: three, name: Three, commune: a, url: "synthetic://t?width=320&height=180&tag=7"}\n'
        path.write_text(config(port, 5, three))
        status, _, body = fetch("POST", server.base_url + "/api/admin/reload", b"", server.headers)
        assert status == 200, body
        summary = json.loads(body)
        assert summary["cameras_restarted"] == ["two"] and summary["cameras_added"] == ["three"]
        assert summary["cameras_removed"] == [] and summary["walls_changed"] == ["commune-a"]
        frames_before = len(reader.frames)
        wait_until(lambda: tags(reader.frames[-1]) == [1, 5], 10, message="the new camera two on the wall")
        assert reader.error is None and len(reader.frames) > frames_before  # same connection
        assert server.get_json("/api/cameras/one")["since"] == one_since  # never restarted
        assert {c["id"] for c in server.get_json("/api/cameras")} == {"one", "two", "three"}
    finally:
        reader.stop()
    police = login(server.base_url, "agent", "agent-Pw")
    assert fetch("POST", server.base_url + "/api/admin/reload", b"", police)[0] == 403
    events = server.get_json("/api/audit?kind=config_reload")
    assert [e["detail"]["result"] for e in events] == ["applied", "refused"]


def test_sighup_reloads_and_a_bad_file_keeps_the_running_config(vigie):
    server = vigie(config("{port}", 2))
    port = server.base_url.rsplit(":", 1)[1]
    path = Path(server.log_path).parent / "vigie.yaml"
    path.write_text("cameras: [oops\n")
    server.process.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    assert server.process.poll() is None
    assert {c["id"] for c in server.get_json("/api/cameras")} == {"one", "two"}
    path.write_text(config(port, 2, '  - {id: four, name: Four, commune: a, url: "synthetic://f"}\n'))
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "four" in {c["id"] for c in server.get_json("/api/cameras")}, 10,
               message="camera four after SIGHUP")
    assert "config reload refused" in server.log()
