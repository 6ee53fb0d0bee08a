"""A wall of synthetic cameras, end to end through a real server process (no RTSP)."""

import http.client
import re
import socket
import time

import cv2
import numpy as np

from ingest.picture.layout import CellSpec
from tests.support.mjpeg import cell_stamp

CONFIG = """
server: {listen: "127.0.0.1:{port}"}
communes:
  - {id: nord, name: Nord}
  - {id: sud, name: Sud}
cameras:
  - {id: c1, name: Un, commune: nord, url: "synthetic://c1?width=640&height=360&fps=15&tag=11"}
  - {id: c2, name: Deux, commune: nord, url: "synthetic://c2?width=640&height=480&fps=15&tag=12"}
  - {id: c3, name: Trois, commune: sud, url: "synthetic://c3?width=640&height=360&fps=15&tag=13"}
  - {id: c4, name: Quatre, commune: sud, url: "synthetic://c4?width=360&height=640&fps=15&tag=14"}
walls:
  - {id: w, name: Mur, size: 1280x720, fps: 10, layout: 2x2, cameras: [c1, c2, c3, c4]}
"""
SOURCES = {11: (640, 360), 12: (640, 480), 13: (640, 360), 14: (360, 640)}


def test_each_cell_shows_its_own_camera_at_the_wall_rate(vigie):
    server = vigie(CONFIG)
    frames = server.read_mjpeg("/walls/w/mjpeg", 4.0)
    steady = [f for f in frames if f.received_wall >= frames[0].received_wall + 1.0]
    span = steady[-1].received_wall - steady[0].received_wall
    assert (len(steady) - 1) / span >= 8.5, f"{len(steady)} frames in {span:.1f} s"
    last = steady[-1].gray()
    assert last.shape == (720, 1280)
    for index, tag in enumerate((11, 12, 13, 14)):
        row, column = divmod(index, 2)
        stamp = cell_stamp(last, CellSpec(None, row, column), (2, 2), SOURCES[tag])
        assert stamp is not None and stamp.tag == tag, f"cell {index}: {stamp}"
        assert stamp.age_ms() < 2000


def test_single_camera_stream_snapshot_and_status(vigie):
    server = vigie(CONFIG)
    frames = server.read_mjpeg("/cameras/c2/mjpeg", 2.0)
    assert len(frames) >= 5
    gray = frames[-1].gray()
    # a 4:3 camera is letterboxed, never stretched: its stamp reads back at its own aspect
    stamp = cell_stamp(gray, CellSpec(None, 0, 0), (1, 1), SOURCES[12])
    assert stamp is not None and stamp.tag == 12
    cameras = {camera["id"]: camera for camera in server.get_json("/api/cameras")}
    assert set(cameras) == {"c1", "c2", "c3", "c4"}
    assert cameras["c2"]["state"] == "live" and cameras["c2"]["width"] == 640
    assert cameras["c2"]["height"] == 480


def test_slow_viewer_does_not_slow_another(vigie):
    server = vigie(CONFIG)
    slow = server.reader("/walls/w/mjpeg", read_delay=1.0)  # takes one frame a second
    fast = server.reader("/walls/w/mjpeg")
    time.sleep(5.0)
    fast.stop()
    slow.stop()
    steady = [f for f in fast.frames if f.received_wall >= fast.frames[0].received_wall + 1.0]
    rate = (len(steady) - 1) / (steady[-1].received_wall - steady[0].received_wall)
    assert rate >= 8.5, f"fast viewer got {rate:.1f} fps next to a slow one"
    assert len(slow.frames) <= 7
    status = server.get_json("/api/status")
    assert status["walls"][0]["dropped_frames"] > 0
    # The governor samples the load once a second: the wall's four cameras are watched.
    assert status["load"]["watched_cameras"] == 4, status["load"]


def test_sigterm_closes_viewers_and_exits_zero(vigie):
    server = vigie(CONFIG)
    reader = server.reader("/walls/w/mjpeg")
    time.sleep(1.5)
    code, seconds = server.terminate()
    reader.stop()
    assert code == 0, server.log()
    assert seconds < 10
    assert len(reader.frames) > 0


def test_http_1_0_viewer_gets_the_stream_without_chunked_framing(vigie):
    """Browsers (HTTP/1.1) get the parts in chunked framing; an HTTP/1.0 client (old
    players, some recorders) gets the bare parts, delimited by the connection."""
    server = vigie(CONFIG)
    host, port = server.base_url.removeprefix("http://").split(":")
    request = ["GET /walls/w/mjpeg HTTP/1.0", f"Host: {host}:{port}"]
    request += [f"{name}: {value}" for name, value in server.headers.items()]
    data = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(request) + "\r\n\r\n").encode())
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            data += sock.recv(1 << 20)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head[:200]
    assert b"chunked" not in head.lower() and b"multipart/x-mixed-replace" in head
    parts = []
    for match in re.finditer(rb"--\w+\r\nContent-Type: image/jpeg\r\nContent-Length: (\d+)\r\n"
                             rb"(?:[\w-]+: [^\r]*\r\n)*\r\n", body):
        start, length = match.end(), int(match.group(1))
        if start + length <= len(body):
            assert body[start + length : start + length + 2] == b"\r\n"
            parts.append(body[start : start + length])
    assert len(parts) >= 5, len(parts)
    gray = cv2.imdecode(np.frombuffer(parts[-1], np.uint8), cv2.IMREAD_GRAYSCALE)
    stamp = cell_stamp(gray, CellSpec(None, 0, 0), (2, 2), SOURCES[11])
    assert stamp is not None and stamp.tag == 11


def test_head_on_a_stream_answers_its_headers_and_opens_no_view(vigie):
    """HEAD (a monitoring probe, a link checker) gets the stream's headers and an empty
    body at once; it opens no view, so it is neither journaled nor counted."""
    server = vigie(CONFIG)
    host, port = server.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.request("HEAD", "/walls/w/mjpeg", headers=server.headers)
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("multipart/x-mixed-replace")
    assert response.read() == b""
    connection.close()
    assert server.get_json("/api/status")["open_views"] == 0
    assert server.get_json("/api/audit?kind=view") == []
