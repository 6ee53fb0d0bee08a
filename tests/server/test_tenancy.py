"""Communes as tenants: login, roles, isolation, the viewing journal, privacy masks, secrets.

One real server (module scope) with synthetic cameras whose stamps carry a tag per camera:
any JPEG a user receives can be read back to tell which cameras it shows.
"""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.picture.layout import CellSpec, cell_rect, letterbox
from ingest.picture.stamp import read_stamp
from server.access.secrets import hash_token, new_token
from server.web.static import resolve_static
from tests.conftest import REPO, password_hash, start_vigie, users_yaml
from tests.support.mjpeg import fetch, first_frame, login, wait_until

SOURCE = (320, 180)
CAMERAS = {  # id: (commune, tag)
    "n1": ("nord", 1), "n2": ("nord", 2), "s1": ("sud", 3), "s2": ("sud", 4), "e1": ("est", 5),
}
KIOSK_TOKEN = new_token()
METRICS_TOKEN = new_token()
POLICE = {"police-nord": ["nord"], "police-sud-est": ["sud", "est"]}


def tenancy_config() -> str:
    cameras = "".join(
        f'  - {{id: {cid}, name: "Caméra {cid}", commune: {commune}, '
        f'url: "synthetic://{cid}?width={SOURCE[0]}&height={SOURCE[1]}&fps=10&tag={tag}"}}\n'
        for cid, (commune, tag) in CAMERAS.items())
    return (
        'server: {listen: "127.0.0.1:{port}"}\n'
        "communes:\n  - {id: nord, name: Nord}\n  - {id: sud, name: Sud}\n  - {id: est, name: Est}\n"
        f"cameras:\n{cameras}"
        "walls:\n"
        "  - {id: centre, name: Centre, size: 960x360, fps: 5, layout: 3x2, cameras: [n1, n2, s1, s2, e1]}\n"
        "  - {id: nord-sud, name: Nord-Sud, size: 640x360, fps: 5, layout: 2x2, cameras: [n1, n2, s1, s2]}\n"
        f'kiosks:\n  - {{id: hall, wall: centre, token_hash: "{hash_token(KIOSK_TOKEN)}"}}\n'
        f'metrics:\n  token_hash: "{hash_token(METRICS_TOKEN)}"\n'
        + users_yaml(POLICE)
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = start_vigie(tenancy_config(), tmp_path_factory.mktemp("tenancy"))
    process.police = {name: login(process.base_url, name, name + "-Pw") for name in POLICE}
    process.operator = login(process.base_url, "operator", "operator-Pw-52ab")
    wait_until(lambda: all(c["state"] == "live" for c in process.get_json("/api/cameras")), 10,
               message="cameras live")
    yield process
    process.terminate()


def get_once(url: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
    """(status, content type, body); for an MJPEG stream the body is its first JPEG."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                           headers=headers)
        response = connection.getresponse()
        content_type = response.getheader("Content-Type", "")
        if response.status != 200 or not content_type.startswith("multipart/"):
            return response.status, content_type, response.read()
        length = None
        while True:
            line = response.readline()
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            if line in (b"\r\n", b"\n") and length is not None:
                return 200, "image/jpeg", response.read(length)
    finally:
        connection.close()


def tags_in(jpeg: bytes, cells: list[CellSpec], grid: tuple[int, int]) -> list[int | None]:
    gray = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert gray is not None
    height, width = gray.shape
    tags = []
    for cell in cells:
        rect = cell_rect(cell, grid[0], grid[1], width, height)
        content = letterbox(*SOURCE, rect.width, rect.height)
        region = gray[rect.y + content.y: rect.y + content.y + content.height,
                      rect.x + content.x: rect.x + content.x + content.width]
        stamp = read_stamp(region)
        tags.append(stamp.tag if stamp else None)
    return tags


def strings_in(value) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(strings_in(k) | strings_in(v) for k, v in value.items())) if value else set()
    if isinstance(value, list):
        return set().union(*(strings_in(v) for v in value)) if value else set()
    return set()


# -- isolation, property-based ---------------------------------------------------------------
CAMERA_IDS = [*CAMERAS, "zz", "N1", "n1%20", "s1,n1", "..", "n1%2f..", "s1%00", ""]
WALL_IDS = ["centre", "nord-sud", "commune-nord", "commune-sud", "commune-est", "nope", "..%2fcentre"]
REQUESTS = st.one_of(
    st.just(("json", "/api/cameras", None)),
    st.just(("json", "/api/walls", None)),
    st.just(("json", "/api/status", None)),
    st.just(("json", "/api/audit", None)),
    st.just(("json", "/metrics", None)),
    st.sampled_from(CAMERA_IDS).map(lambda c: ("json", f"/api/cameras/{c}", None)),
    st.sampled_from(WALL_IDS).map(lambda w: ("json", f"/api/walls/{w}", None)),
    st.sampled_from(CAMERA_IDS).map(lambda c: ("camera", f"/cameras/{c}/snapshot.jpg", c)),
    st.sampled_from(CAMERA_IDS).map(lambda c: ("camera", f"/cameras/{c}/mjpeg", c)),
    st.sampled_from(WALL_IDS).map(lambda w: ("wall", f"/walls/{w}/snapshot.jpg", w)),
    st.sampled_from(WALL_IDS).map(lambda w: ("wall", f"/walls/{w}/mjpeg", w)),
    # sockets: a plain GET is refused before any upgrade; 404 for what is not theirs
    st.sampled_from(CAMERA_IDS).map(lambda c: ("socket", f"/cameras/{c}/ws", c)),
    st.sampled_from(WALL_IDS).map(lambda w: ("socket", f"/walls/{w}/ws?format=jpeg", w)),
    st.tuples(st.lists(st.sampled_from(CAMERA_IDS[:6]), min_size=1, max_size=4),
              st.sampled_from(["", "2x2", "1x4", "4x1"]), st.sampled_from(["snapshot.jpg", "mjpeg"]))
    .map(lambda t: ("mosaic", f"/mosaic/{t[2]}?" + urlencode(
        {"cameras": ",".join(t[0]), **({"layout": t[1]} if t[1] else {})}), t)),
)


@settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=st.sampled_from(sorted(POLICE)), request=REQUESTS)
def test_police_never_receive_a_byte_of_a_foreign_camera(server, user, request):
    kind, path, subject = request
    own_communes = set(POLICE[user])
    own = {cid for cid, (commune, _) in CAMERAS.items() if commune in own_communes}
    foreign = set(CAMERAS) - own
    own_tags = {CAMERAS[cid][1] for cid in own}
    status, content_type, body = get_once(server.base_url + path, server.police[user])
    assert status < 500 or status == 503, (path, status, body[:200])
    if status != 200:
        assert json.loads(body)["error"]  # every refusal is JSON
        if kind == "socket" and subject not in own and not str(subject).startswith("commune-"):
            assert status == 404
        return
    if content_type.startswith("application/json"):
        strings = strings_in(json.loads(body))
        assert not strings & foreign, (path, strings & foreign)
        assert not strings & {"sud", "est", "nord"} - own_communes
        return
    assert content_type.startswith("image/jpeg"), content_type
    if kind == "camera":
        assert subject in own
        assert tags_in(body, [CellSpec(None, 0, 0)], (1, 1)) == [CAMERAS[subject][1]]
    elif kind == "wall":
        wall = server.get_json(f"/api/walls/{subject}")  # its layout, read as admin
        columns, rows = (int(v) for v in wall["layout"].split("x"))
        cells = [CellSpec(None, c["row"], c["column"], c["rows"], c["columns"]) for c in wall["cells"]]
        tags = tags_in(body, cells, (columns, rows))
        assert {tag for tag in tags if tag is not None} <= own_tags, (subject, tags)
    else:
        cameras, layout, _ = subject
        assert set(cameras) <= own
        assert not set(cameras) & foreign


def test_foreign_camera_answers_exactly_like_an_unknown_one(server):
    headers = server.police["police-nord"]
    for template in ("/api/cameras/{}", "/cameras/{}/snapshot.jpg", "/cameras/{}/mjpeg",
                     "/mosaic/snapshot.jpg?cameras={}"):
        foreign = fetch("GET", server.base_url + template.format("s1"), headers=headers)
        unknown = fetch("GET", server.base_url + template.format("does-not-exist"), headers=headers)
        assert foreign[0] == unknown[0] == 404
        assert foreign[2] == unknown[2]


def test_police_see_their_commune_wall_and_cameras_only(server):
    walls = server.get_json("/api/walls", headers=server.police["police-nord"])
    assert [wall["id"] for wall in walls] == ["commune-nord"]
    assert [cell["camera"] for cell in walls[0]["cells"] if cell["camera"]] == ["n1", "n2"]
    cameras = server.get_json("/api/cameras", headers=server.police["police-sud-est"])
    assert [camera["id"] for camera in cameras] == ["s1", "s2", "e1"]
    # an operator wall with one foreign camera is refused as a whole
    status, _, _ = fetch("GET", server.base_url + "/walls/nord-sud/snapshot.jpg",
                         headers=server.police["police-nord"])
    assert status == 404


def test_admins_and_operators_see_everything(server):
    for headers in (server.headers, server.operator):
        assert [c["id"] for c in server.get_json("/api/cameras", headers=headers)] == list(CAMERAS)
        walls = {wall["id"] for wall in server.get_json("/api/walls", headers=headers)}
        assert walls == {"centre", "nord-sud", "commune-nord", "commune-sud", "commune-est"}


def test_identical_ad_hoc_mosaics_share_one_compositor(server):
    path = "/mosaic/mjpeg?cameras=n1,n2&layout=2x1"
    first = server.reader(path, headers=server.police["police-nord"])
    second = server.reader(path, headers=server.operator)
    try:
        wait_until(lambda: len(first.frames) > 2 and len(second.frames) > 2, 10, message="frames")
        mosaics = [m for m in server.get_json("/api/status")["mosaics"] if m["viewers"]]
        assert len(mosaics) == 1 and mosaics[0]["viewers"] == 2
        assert tags_in(first.frames[-1].jpeg, [CellSpec(None, 0, 0), CellSpec(None, 0, 1)], (2, 1)) == [1, 2]
    finally:
        first.stop()
        second.stop()


# -- authentication --------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/cameras", "/api/walls", "/api/status", "/metrics", "/api/audit",
                                  "/api/me", "/walls/centre/mjpeg", "/walls/centre/snapshot.jpg",
                                  "/cameras/n1/snapshot.jpg", "/mosaic/mjpeg?cameras=n1",
                                  "/assets/anything.js"])
def test_without_a_session_only_public_routes_answer(server, path):
    status, headers, body = fetch("GET", server.base_url + path)
    assert status == 401 and json.loads(body) == {"error": "authentication required"}


def test_public_routes_and_browser_redirect(server):
    for path in ("/healthz", "/readyz", "/login", "/assets/login.css", "/assets/login.js"):
        assert fetch("GET", server.base_url + path)[0] == 200, path
    status, headers, _ = fetch("GET", server.base_url + "/walls/centre", headers={"Accept": "text/html"})
    assert status == 303 and headers["location"] == "/login?next=/walls/centre"


def test_form_login_sets_a_strict_cookie_and_never_redirects_off_site(server):
    form = urlencode({"user": "operator", "password": "operator-Pw-52ab", "next": "/walls/centre"})
    form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, _ = fetch("POST", server.base_url + "/login", form.encode(), form_headers)
    assert status == 303 and headers["location"] == "/walls/centre"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    behind_tls = {**form_headers, "X-Forwarded-Proto": "https"}
    form = urlencode({"user": "operator", "password": "operator-Pw-52ab", "next": "//evil.example/x"})
    status, headers, _ = fetch("POST", server.base_url + "/login", form.encode(), behind_tls)
    assert headers["location"] == "/" and "Secure" in headers["set-cookie"]


def test_cross_site_state_changes_are_refused(server):
    body = json.dumps({"user": "admin", "password": "admin-Pw-7c1e"}).encode()
    for extra in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        status, _, answer = fetch("POST", server.base_url + "/login", body,
                                  {"Content-Type": "application/json", **extra})
        assert status == 403 and json.loads(answer)["error"] == "cross-site request refused"
    status, _, _ = fetch("POST", server.base_url + "/logout", b"", {**server.operator, "Origin": "http://evil.example"})
    assert status == 403
    assert fetch("GET", server.base_url + "/api/me", headers=server.operator)[0] == 200


def test_logout_ends_the_session(server):
    headers = login(server.base_url, "police-nord", "police-nord-Pw")
    assert fetch("GET", server.base_url + "/api/me", headers=headers)[0] == 200
    assert fetch("POST", server.base_url + "/logout", b"", headers)[0] == 200
    assert fetch("GET", server.base_url + "/api/me", headers=headers)[0] == 401


def test_metrics_need_an_admin_or_the_metrics_token(server):
    url = server.base_url + "/metrics"
    assert fetch("GET", url, headers=server.police["police-nord"])[0] == 403
    assert fetch("GET", url, headers=server.operator)[0] == 403
    assert fetch("GET", url, headers=server.headers)[0] == 200
    status, _, body = fetch("GET", url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert status == 200 and b'vigie_camera_up{camera="n1",commune="nord"} 1' in body
    assert fetch("GET", url, headers={"Authorization": "Bearer wrong"})[0] == 401
    scraper = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert server.get_json("/api/cameras", headers=scraper) == []


def test_kiosk_token_opens_its_wall_and_nothing_else(server):
    bearer = {"Authorization": f"Bearer {KIOSK_TOKEN}"}
    status, content_type, jpeg = get_once(server.base_url + "/walls/centre/snapshot.jpg", bearer)
    assert status == 200 and content_type == "image/jpeg"
    for path in ("/walls/nord-sud/snapshot.jpg", "/cameras/n1/snapshot.jpg", "/cameras/n1/mjpeg",
                 "/walls/commune-nord/mjpeg", "/api/walls/nord-sud"):
        assert fetch("GET", server.base_url + path, headers=bearer)[0] == 404, path
    # its labels: names and states of the cameras on its wall, and only those
    assert [c["id"] for c in server.get_json("/api/cameras", headers=bearer)] == ["n1", "n2", "s1", "s2", "e1"]
    assert server.get_json("/api/cameras/e1", headers=bearer)["state"] == "live"
    # a wall screen that cannot send headers trades its token for a session
    status, headers, _ = fetch("POST", server.base_url + "/login", json.dumps({"token": KIOSK_TOKEN}).encode(),
                               {"Content-Type": "application/json"})
    assert status == 200
    session = {"Cookie": headers["set-cookie"].split(";")[0]}
    assert server.get_json("/api/me", headers=session)["wall"] == "centre"


def test_wrong_passwords_are_slowed_down_and_journaled(vigie):
    server = vigie('server: {listen: "127.0.0.1:{port}"}\ncommunes: [{id: a, name: A}]\n' + users_yaml({"agent": ["a"]}))
    body = lambda password: json.dumps({"user": "agent", "password": password}).encode()  # noqa: E731
    json_headers = {"Content-Type": "application/json"}
    for _ in range(5):
        assert fetch("POST", server.base_url + "/login", body("nope"), json_headers)[0] == 401
    status, headers, answer = fetch("POST", server.base_url + "/login", body("agent-Pw"), json_headers)
    assert status == 429 and int(headers["retry-after"]) >= 1  # even the right password waits
    assert "retry" in json.loads(answer)["error"]
    events = server.get_json("/api/audit?kind=login_failed&user=agent")
    reasons = [event["detail"]["reason"] for event in events]
    assert reasons.count("bad credentials") == 5 and reasons.count("throttled") == 1
    assert all(event["address"] == "127.0.0.1" for event in events)


# -- journal ---------------------------------------------------------------------------------
def test_views_are_journaled_with_their_duration(server):
    started = time.time()
    reader = server.reader("/walls/centre/mjpeg", headers={**server.operator, "User-Agent": "mur-3/1.0"})
    time.sleep(2.0)
    reader.stop()

    def closed_view():
        rows = server.get_json(f"/api/audit?kind=view&user=operator&since={started}")
        return [row for row in rows if row["target"] == "centre" and row["end"]]
    row = wait_until(closed_view, 5, message="the view closed in the journal")[0]
    assert 1.5 <= row["duration"] <= 4.0
    assert row["output"] == "mjpeg" and row["role"] == "operator" and row["user_agent"] == "mur-3/1.0"
    assert row["cameras"] == ["n1", "n2", "s1", "s2", "e1"] and row["communes"] == ["est", "nord", "sud"]
    by_camera = server.get_json(f"/api/audit?camera=e1&since={started}")
    assert any(r["id"] == row["id"] for r in by_camera)
    status, headers, csv = fetch("GET", server.base_url + f"/api/audit?format=csv&since={started}",
                                 headers=server.headers)
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert csv.decode().splitlines()[0].startswith("id,kind,time")
    assert fetch("GET", server.base_url + "/api/audit", headers=server.police["police-nord"])[0] == 403
    assert fetch("GET", server.base_url + "/api/audit?since=yesterday", headers=server.headers)[0] == 400


def test_snapshots_and_logins_are_journaled(server):
    started = time.time()
    get_once(server.base_url + "/cameras/n2/snapshot.jpg", server.police["police-nord"])
    login(server.base_url, "police-nord", "police-nord-Pw")
    rows = wait_until(lambda: server.get_json(f"/api/audit?user=police-nord&since={started}"), 5)
    kinds = {row["kind"] for row in rows}
    assert {"snapshot", "login"} <= kinds
    snapshot = next(row for row in rows if row["kind"] == "snapshot")
    assert snapshot["cameras"] == ["n2"] and snapshot["communes"] == ["nord"]


# -- privacy masks ---------------------------------------------------------------------------
MASK = [[0.0, 0.25], [0.5, 0.25], [0.5, 1.0], [0.0, 1.0]]  # the lower-left quarter and more


def test_masks_are_filled_before_any_output_sees_the_pixels(vigie):
    server = vigie(
        'server: {listen: "127.0.0.1:{port}"}\ncommunes: [{id: a, name: A}]\ncameras:\n'
        f'  - {{id: m, name: M, commune: a, url: "synthetic://m?width=640&height=360&fps=10&tag=9", '
        f"privacy_masks: [{json.dumps(MASK)}]}}\n"
        "walls:\n  - {id: w, name: W, size: 1280x720, fps: 5, layout: 2x2, cameras: [m]}\n")
    wait_until(lambda: server.get_json("/api/cameras/m")["state"] == "live", 10, message="camera live")
    takes = {
        "camera snapshot": (lambda: get_once(server.base_url + "/cameras/m/snapshot.jpg", server.headers)[2], (1, 1)),
        "camera stream": (lambda: first_frame(server.base_url + "/cameras/m/mjpeg", server.headers).jpeg, (1, 1)),
        "wall snapshot": (lambda: get_once(server.base_url + "/walls/w/snapshot.jpg", server.headers)[2], (2, 2)),
        "wall stream": (lambda: first_frame(server.base_url + "/walls/w/mjpeg", server.headers).jpeg, (2, 2)),
        "mosaic": (lambda: get_once(server.base_url + "/mosaic/snapshot.jpg?cameras=m&layout=2x2",
                                    server.headers)[2], (2, 2)),
    }
    for name, (take, grid) in takes.items():
        # A view just started may show the camera's "connecting" card first (no camera
        # pixels at all, so nothing to mask): the picture is judged once it shows.
        deadline = time.monotonic() + 10
        while True:
            gray = cv2.imdecode(np.frombuffer(take(), np.uint8), cv2.IMREAD_GRAYSCALE)
            rect = cell_rect(CellSpec(None, 0, 0), *grid, gray.shape[1], gray.shape[0])
            content = letterbox(640, 360, rect.width, rect.height)
            x0, y0 = rect.x + content.x, rect.y + content.y
            w, h = content.width, content.height
            if read_stamp(gray[y0: y0 + h, x0: x0 + w]) is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # inside the mask, away from its edges and from the label band at the bottom
        masked = gray[y0 + int(h * 0.32): y0 + int(h * 0.8), x0 + int(w * 0.03): x0 + int(w * 0.45)]
        visible = gray[y0 + int(h * 0.32): y0 + int(h * 0.8), x0 + int(w * 0.55): x0 + int(w * 0.97)]
        assert masked.max() <= 24, f"{name}: masked area not black (max {masked.max()})"
        assert visible.mean() > 40, f"{name}: the rest of the picture should show"
        assert read_stamp(gray[y0: y0 + h, x0: x0 + w]).tag == 9, name  # the right camera


# -- static files ----------------------------------------------------------------------------
@pytest.mark.parametrize("path", [
    "/assets/%2e%2e/login.html", "/assets/%2e%2e/%2e%2e/pyproject.toml", "/assets/..%2f..%2fvigie.example.yaml",
    "/assets/..%5c..%5cpyproject.toml", "/assets/%2fetc%2fpasswd", "/assets/.hidden.css",
    "/assets/login.css%00.js", "/assets/../../server/access/auth.py",
])
def test_static_traversal_is_refused(server, path):
    status, _, body = fetch("GET", server.base_url + path, headers=server.headers)
    assert status in (401, 404), (path, status)
    assert b"import" not in body and b"[project]" not in body and b"root:" not in body


def test_static_links_are_refused(tmp_path):
    root = tmp_path / "viewer"
    (root / "assets").mkdir(parents=True)
    (root / "assets" / "app.css").write_text("body{}")
    secret = tmp_path / "secret.css"
    secret.write_text("secret")
    (root / "assets" / "link.css").symlink_to(secret)
    (root / "assets" / "dir").symlink_to(tmp_path)
    (root / "assets" / "inner.css").symlink_to(root / "assets" / "app.css")
    assert resolve_static(root / "assets", "app.css") == (root / "assets" / "app.css").resolve()
    for relative in ("link.css", "dir/secret.css", "inner.css", "../../secret.css", "", "./../secret.css"):
        assert resolve_static(root / "assets", relative) is None, relative


def test_a_link_in_the_viewer_folder_is_not_served(server):
    link = REPO / "viewer" / "assets" / "zz-test-link.css"
    link.symlink_to("/etc/hostname")
    try:
        status, _, _ = fetch("GET", server.base_url + "/assets/zz-test-link.css", headers=server.headers)
        assert status == 404
    finally:
        link.unlink()


# -- secrets ---------------------------------------------------------------------------------
def test_canary_secrets_appear_nowhere(vigie, tmp_path):
    camera_canary = "cAnArY-cam-5e1f"
    user_canary = "cAnArY-user-8d2b"
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    config = (
        'server: {listen: "127.0.0.1:{port}"}\ncommunes: [{id: a, name: A}]\ncameras:\n'
        f'  - {{id: locked, name: L, commune: a, url: "rtsp://127.0.0.1:{closed_port}/live", '
        "username: vigie, password_env: CANARY_CAM, stale_after: 2}\n"
        '  - {id: ok, name: OK, commune: a, url: "synthetic://ok?width=320&height=180&fps=5&tag=1"}\n'
        "walls:\n  - {id: w, name: W, size: 640x360, fps: 5, layout: 2x1, cameras: [locked, ok]}\n"
        + users_yaml().rstrip("\n")
        + f'\n  - {{name: canary, role: operator, password_hash: "{password_hash(user_canary)}"}}\n')
    server = vigie(config, env={"CANARY_CAM": camera_canary})
    base = server.base_url
    json_headers = {"Content-Type": "application/json"}
    session = login(base, "canary", user_canary)
    for user, password in (("canary", user_canary + "x"), ("admin", user_canary), (user_canary, "x"),
                           ("nobody", camera_canary)):
        fetch("POST", base + "/login", json.dumps({"user": user, "password": password}).encode(), json_headers)
    fetch("POST", base + "/login", urlencode({"user": "canary", "password": camera_canary}).encode(),
          {"Content-Type": "application/x-www-form-urlencoded"})
    wait_until(lambda: server.get_json("/api/cameras/locked")["reconnects_last_hour"] >= 2, 15,
               message="camera errors")
    config_file = Path(server.log_path).parent / "vigie.yaml"
    config_file.write_text(config_file.read_text().replace("stale_after: 2", "stale_after: 3"))
    status, _, answer = fetch("POST", base + "/api/admin/reload", b"", server.headers)
    assert status == 200 and json.loads(answer)["cameras_restarted"] == ["locked"], answer
    wait_until(lambda: server.get_json("/api/cameras/locked")["reconnects_last_hour"] >= 1, 15,
               message="camera errors after the reload")
    seen = []
    for path in ("/api/cameras", "/api/cameras/locked", "/api/status", "/api/walls", "/metrics", "/api/me",
                 "/api/audit", "/api/audit?format=csv", "/login", "/assets/login.js", "/walls/w/snapshot.jpg"):
        for headers in (server.headers, session):
            seen.append(fetch("GET", base + path, headers=headers)[2])
    code, _ = server.terminate()
    assert code == 0
    folder = Path(server.log_path).parent
    seen.append(server.log().encode())
    for journal_file in folder.glob("vigie-audit.sqlite*"):
        seen.append(journal_file.read_bytes())
    rows = sqlite3.connect(folder / "vigie-audit.sqlite").execute("select * from journal").fetchall()
    assert any("login_failed" in row for row in rows)  # the failures were journaled...
    seen.append(repr(rows).encode())
    everything = b"\n".join(seen)
    for canary in (camera_canary, user_canary):  # ...and no secret anywhere
        assert canary.encode() not in everything, canary
        assert canary.lower().encode() not in everything.lower()
    assert b"connection refused" in everything.lower()
    assert os.environ.get("CANARY_CAM") is None
