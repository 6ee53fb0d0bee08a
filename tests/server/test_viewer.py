"""The viewer in a real browser (Debian's Chromium through Playwright, never a downloaded one).

One server on a fixed port (the last test restarts it under the same address), small
synthetic cameras (320x180 at 10 fps) in three communes, and what people do with it: log in
through the form and watch a wall (H.264 over the WebSocket into Media Source Extensions,
or the JPEG and MJPEG fallbacks), open a camera from a cell, see only their commune (police),
edit a wall while another screen follows, lose the connection or the server and come back.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request

import numpy as np
import pytest

from server.access.secrets import hash_token, new_token
from tests.support.browser import (VIEWPORT, Traffic, assert_plays, cell_pictures, chromium, form_login,
                           sample_playback, stage_picture, wait_live)
from tests.conftest import TEST_PASSWORDS, free_port, start_vigie, users_yaml
from tests.support.mjpeg import wait_until

COMMUNES = {"nordville": "Nordville", "sudbourg": "Sudbourg", "estval": "Estval"}
CAMERAS = {  # id: (commune, name, stamp tag)
    "cam-nord-1": ("nordville", "Beffroi", 1),
    "cam-nord-2": ("nordville", "Lavoir", 2),
    "cam-sud-1": ("sudbourg", "Phare", 3),
    "cam-sud-2": ("sudbourg", "Digue", 4),
    "cam-est-1": ("estval", "Moulin", 5),
}
POLICE = {"police-nord": ["nordville"]}
KIOSK_TOKEN = new_token()
CENTRE = ["cam-nord-1", "cam-nord-2", "cam-sud-1", "cam-sud-2"]  # wall `centre`, 2x2


def viewer_config() -> str:
    communes = "".join(f"  - {{id: {cid}, name: {name}}}\n" for cid, name in COMMUNES.items())
    cameras = "".join(
        f'  - {{id: {cid}, name: "{name}", commune: {commune}, '
        f'url: "synthetic://{cid}?width=320&height=180&fps=10&tag={tag}"}}\n'
        for cid, (commune, name, tag) in CAMERAS.items())
    return (
        'server: {listen: "127.0.0.1:{port}"}\n'
        f"communes:\n{communes}"
        f"cameras:\n{cameras}"
        "walls:\n"
        f"  - {{id: centre, name: Centre, size: 960x540, fps: 10, layout: 2x2, cameras: [{', '.join(CENTRE)}]}}\n"
        "  - {id: nord, name: Nord, size: 640x180, fps: 10, layout: 2x1, communes: [nordville],"
        " cameras: [cam-nord-1, cam-nord-2]}\n"
        f'kiosks:\n  - {{id: hall, wall: centre, token_hash: "{hash_token(KIOSK_TOKEN)}"}}\n'
        + users_yaml(POLICE)
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("viewer")
    port = free_port()
    process = start_vigie(viewer_config(), folder, port=port)
    process.folder, process.port = folder, port
    wait_until(lambda: all(c["state"] == "live" for c in process.get_json("/api/cameras")), 15,
               message="cameras live")
    holder = {"server": process}
    yield holder
    current = holder["server"]
    if current.process.poll() is None:
        current.terminate()


@pytest.fixture(scope="module")
def browser():
    with chromium() as instance:
        yield instance


@pytest.fixture
def new_page(browser):
    """Factory: a page in its own context (its own cookies), closed after the test."""
    contexts = []

    def _new():
        context = browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        return page

    yield _new
    for context in contexts:
        context.close()


def put_wall(server, wall_id: str, body: dict) -> dict:
    request = urllib.request.Request(server.base_url + f"/api/walls/{wall_id}", method="PUT",
                                     data=json.dumps(body).encode(),
                                     headers={**server.headers, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def cell_names(page) -> list[str]:
    return page.eval_on_selector_all(".cell", "cells => cells.map(c => c.querySelector('.cell-name')?.textContent ?? '')")


# -- 1. log in, watch a wall ---------------------------------------------------------------
def test_wall_plays_after_form_login(server, new_page):
    server = server["server"]
    page = new_page()
    form_login(page, server.base_url, "operator", TEST_PASSWORDS["operator"], "/walls/centre")
    info = wait_live(page)
    mse = page.evaluate("() => MediaSource.isTypeSupported('video/mp4; codecs=\"avc1.42E01F\"')")
    assert info["mode"] == ("fmp4" if mse else "jpeg"), info  # the WebSocket, not the fallback
    samples = sample_playback(page, 10)
    assert_plays(samples)
    if info["mode"] == "fmp4":
        lag = page.evaluate("() => { const v = document.querySelector('video');"
                            " return v.buffered.end(v.buffered.length - 1) - v.currentTime; }")
        assert lag < 1.5, f"{lag:.2f} s behind the live edge"
    # The labels follow the wall's cells, in order.
    assert cell_names(page) == [CAMERAS[c][1] for c in CENTRE]
    assert page.locator("#conn").get_attribute("data-state") == "live"
    # The picture is the wall: four cells, each with a picture of its own.
    picture = stage_picture(page)
    assert picture.std() > 20, "blank video area"
    cells = cell_pictures(picture, 2, 2)
    assert all(cell.std() > 15 for cell in cells), [round(float(c.std()), 1) for c in cells]
    for i in range(4):
        for j in range(i + 1, 4):
            a, b = cells[i], cells[j][:cells[i].shape[0], :cells[i].shape[1]]
            diff = np.abs(a[:b.shape[0], :b.shape[1]].astype(int) - b.astype(int)).mean()
            assert diff > 3, f"cells {i} and {j} look the same"
    assert not page.errors, page.errors


# -- 2. a cell opens the camera ------------------------------------------------------------
def test_cell_opens_camera_view_with_stats(server, new_page):
    server = server["server"]
    page = new_page()
    form_login(page, server.base_url, "operator", TEST_PASSWORDS["operator"], "/walls/centre")
    wait_live(page)
    page.click('.cell[data-camera="cam-sud-1"]')
    page.wait_for_url(re.compile(r"/cameras/cam-sud-1"))
    wait_live(page)
    assert_plays(sample_playback(page, 3))
    stats = page.locator("#stats")
    assert stats.locator('[data-stat="codec"]').inner_text() == "synthetic"
    assert stats.locator('[data-stat="resolution"]').inner_text() == "320 × 180"
    assert stats.locator('[data-stat="state"]').inner_text() == "en direct"
    assert stats.locator('[data-stat="commune"]').inner_text() == "Sudbourg"
    age = stats.locator('[data-stat="frame_age"]').inner_text()
    assert re.fullmatch(r"\d+,\d s", age), age
    # A synthetic camera has no clock of its own to be behind: shown as unknown.
    assert stats.locator('[data-stat="behind"]').inner_text() == "—"
    assert page.locator("h1").inner_text() == "Phare"
    page.keyboard.press("Escape")
    page.wait_for_url(server.base_url + "/walls/centre")
    wait_live(page)
    assert not page.errors, page.errors


def test_jpeg_and_mjpeg_transports_play(server, new_page):
    """The transports for browsers without H.264 in MSE (JPEG over the same socket) and
    without the socket (plain MJPEG): each plays."""
    server = server["server"]
    page = new_page()
    form_login(page, server.base_url, "operator", TEST_PASSWORDS["operator"], "/walls/nord?transport=jpeg")
    assert wait_live(page)["mode"] == "jpeg"
    assert_plays(sample_playback(page, 3))
    assert page.locator("img.live-image").get_attribute("src").startswith("blob:")
    page.goto(server.base_url + "/walls/nord?transport=mjpeg")
    assert wait_live(page)["mode"] == "mjpeg"
    assert page.locator("img.live-image").get_attribute("src") == "/walls/nord/mjpeg"
    assert stage_picture(page).std() > 20
    assert not page.errors, page.errors


# -- 3. police: their commune and nothing else ---------------------------------------------
def test_police_sees_only_their_cameras(server, new_page):
    server = server["server"]
    page = new_page()
    traffic = Traffic().attach(page)
    form_login(page, server.base_url, "police-nord", "police-nord-Pw", "/")
    # home: walls and cameras, stills loaded
    page.wait_for_selector(".camera-cards .card-still.has-still")
    page.wait_for_selector(".wall-cards .card-still.has-still")
    home_text = page.inner_text("body")
    assert "Beffroi" in home_text and "Lavoir" in home_text
    walls = page.eval_on_selector_all(".wall-cards a.card", "links => links.map(a => a.dataset.wall)")
    assert sorted(walls) == ["commune-nordville", "nord"]
    texts = [home_text]
    # a wall, then a camera from it
    page.click('.wall-cards a[data-wall="nord"]')
    page.wait_for_url(server.base_url + "/walls/nord")
    wait_live(page)
    assert cell_names(page) == ["Beffroi", "Lavoir"]
    assert page.locator("#edit-toggle").count() == 0, "police must not get edit controls"
    page.wait_for_timeout(2500)  # a camera poll and state refresh
    texts.append(page.inner_text("body"))
    page.click('.cell[data-camera="cam-nord-2"]')
    page.wait_for_url(re.compile("/cameras/cam-nord-2"))
    wait_live(page)
    texts.append(page.inner_text("body"))
    # next wall with the keyboard from the wall view: only their walls cycle
    page.keyboard.press("Escape")
    page.wait_for_url(server.base_url + "/walls/nord")
    wait_live(page)
    page.keyboard.press("ArrowRight")  # switches in place (history.pushState): no page load
    page.wait_for_function("() => location.pathname === '/walls/commune-nordville'")
    wait_live(page)
    texts.append(page.inner_text("body"))

    foreign_ids = [cid for cid, (commune, _, _) in CAMERAS.items() if commune not in POLICE["police-nord"]]
    foreign_words = foreign_ids + [CAMERAS[c][1] for c in foreign_ids] + ["Sudbourg", "Estval", "sudbourg", "estval"]
    everything_seen = texts + traffic.texts + traffic.urls
    leaks = sorted({word for word in foreign_words for text in everything_seen if word in text})
    assert not leaks, f"police-nord saw {leaks}"
    assert any("/ws" in url for url in traffic.urls), "no live view was opened"
    assert any("cam-nord-1" in url for url in traffic.urls)
    # and typing a foreign camera's address shows nothing of it
    page.goto(server.base_url + "/cameras/cam-sud-1")
    page.wait_for_selector(".message")
    assert "pas accessible" in page.inner_text(".message")
    assert page.locator("video, .live-image").count() == 0
    assert not page.errors, page.errors


def test_police_screen_says_why_when_its_wall_gains_a_foreign_camera(server, new_page, tmp_path):
    """The server closes the view (4003): the screen drops the picture and says why, in
    French (and English), instead of freezing or retrying."""
    server = server["server"]
    page = new_page()
    form_login(page, server.base_url, "police-nord", "police-nord-Pw", "/walls/nord")
    wait_live(page)
    try:
        put_wall(server, "nord", {"layout": "2x1", "cameras": ["cam-nord-1", "cam-sud-1"]})
        page.wait_for_function("() => window.vigiePlayer.info().state === 'forbidden'", timeout=10_000)
        overlay = page.inner_text("#overlay")
        assert "pas accessibles" in overlay and "arrêté" in overlay, overlay
        assert page.get_attribute("#conn", "data-state") == "forbidden"
        page.screenshot(path=os.environ.get("VIGIE_SHOT", str(tmp_path / "forbidden.png")))
        page.wait_for_timeout(3000)  # no retry: still stopped, nothing of cam-sud-1 shown
        assert page.evaluate("() => window.vigiePlayer.info().state") == "forbidden"
        assert "Phare" not in page.inner_text("body")
        page.evaluate("async () => (await import('/assets/i18n.js')).setLang('en')")
        page.wait_for_function("() => document.getElementById('overlay').textContent.includes('may not see')",
                               timeout=5000)
        page.evaluate("async () => (await import('/assets/i18n.js')).setLang('fr')")
    finally:
        put_wall(server, "nord", {"layout": "2x1", "cameras": ["cam-nord-1", "cam-nord-2"]})
    assert not page.errors, page.errors


# -- 4. an operator edits a wall; another screen follows ------------------------------------
def test_operator_changes_a_cell_and_other_screens_follow(server, new_page):
    server = server["server"]
    operator, watcher = new_page(), new_page()
    sockets = []
    watcher.on("websocket", lambda ws: sockets.append(ws.url))
    form_login(watcher, server.base_url, "admin", TEST_PASSWORDS["admin"], "/walls/centre")
    form_login(operator, server.base_url, "operator", TEST_PASSWORDS["operator"], "/walls/centre")
    wait_live(operator)
    wait_live(watcher)
    try:
        operator.click("#edit-toggle")
        operator.click('.cell[data-cell="1"]')
        operator.select_option("#cell-camera", "cam-est-1")
        operator.wait_for_function("() => document.querySelector('.status-line')?.textContent === 'Mur mis à jour.'")
        watcher.wait_for_function(
            "() => document.querySelector('.cell[data-cell=\"1\"] .cell-name')?.textContent === 'Moulin'",
            timeout=10_000)
        assert cell_names(watcher) == ["Beffroi", "Moulin", "Phare", "Digue"]
        assert server.get_json("/api/walls/centre")["cells"][1]["camera"] == "cam-est-1"
        # a layout change: the other screen redraws its grid, and its video follows the
        # server's new encoder (a new timeline: a fresh MediaSource) without reconnecting
        before = watcher.evaluate("() => window.vigiePlayer.info()")
        operator.click('.layout-choices button[data-layout="1x1"]')
        watcher.wait_for_function("() => document.querySelectorAll('.cell').length === 1", timeout=10_000)
        assert cell_names(watcher) == ["Beffroi"]
        if before["mode"] == "fmp4":
            watcher.wait_for_function(f"() => window.vigiePlayer.info().timelines > {before['timelines']}"
                                      " && document.querySelector('video').currentTime > 0.5", timeout=10_000)
        assert_plays(sample_playback(watcher, 2))
        assert len(sockets) == 1, f"the screen reconnected: {sockets}"  # it followed on its socket
        assert not operator.errors and not watcher.errors, operator.errors + watcher.errors
    finally:
        put_wall(server, "centre", {"layout": "2x2", "cameras": CENTRE})


# -- 5. the connection drops, then the server restarts: the page comes back by itself ------
def test_page_reconnects_when_the_socket_drops_or_stalls(server, new_page):
    """The socket closes under the page (proxied by the test, the server stays up): the page
    says so, waits its back-off, reconnects on its own and plays again. Then the socket
    stays open but nothing comes any more: the page notices the stall and reconnects too."""
    server = server["server"]
    page = new_page()
    sockets = []
    frozen = set()  # sockets whose server-to-page traffic the test stopped

    def proxy(route):
        index = len(sockets)
        sockets.append(route)
        upstream = route.connect_to_server()
        upstream.on_message(lambda message: index in frozen or route.send(message))
        route.on_message(upstream.send)

    page.route_web_socket(re.compile(r"/walls/centre/ws\?"), proxy)
    form_login(page, server.base_url, "operator", TEST_PASSWORDS["operator"], "/walls/centre")
    wait_live(page)
    page.evaluate("() => { window.vigieBeforeDrop = window.vigiePlayer; }")
    sockets[-1].close(code=1001, reason="going away")
    page.wait_for_function("() => document.querySelector('#conn')?.dataset.state === 'reconnecting'",
                           timeout=5_000)
    assert "Reconnexion" in page.inner_text("#overlay")
    wait_live(page, timeout=15)
    assert len(sockets) == 2, "one new socket, opened by the page itself"
    assert page.evaluate("() => window.vigieBeforeDrop === window.vigiePlayer"), "the page was reloaded"
    assert_plays(sample_playback(page, 3))
    # a silent socket: the watchdog gives up on it after a few seconds without a frame
    frozen.add(1)
    page.wait_for_function("() => document.querySelector('#conn')?.dataset.state === 'reconnecting'",
                           timeout=10_000)
    wait_live(page, timeout=15)
    assert len(sockets) == 3
    assert_plays(sample_playback(page, 2))
    assert page.evaluate("() => window.vigieBeforeDrop === window.vigiePlayer"), "the page was reloaded"
    assert not page.errors, page.errors


# -- 6. the server restarts: the page comes back by itself ------------------------------------
def test_page_reconnects_after_server_restart(server, new_page):
    old = server["server"]
    page, kiosk = new_page(), new_page()
    kiosk.goto(f"{old.base_url}/kiosk?token={KIOSK_TOKEN}")  # a wall screen, no chrome
    kiosk.wait_for_url(old.base_url + "/walls/centre?kiosk=1")
    assert kiosk.locator(".page-header").is_hidden()
    form_login(page, old.base_url, "admin", TEST_PASSWORDS["admin"], "/walls/centre")
    wait_live(page)
    wait_live(kiosk)
    page.evaluate("() => { window.vigieBeforeRestart = window.vigiePlayer; }")
    code, _ = old.terminate()
    assert code == 0
    page.wait_for_function("() => document.querySelector('#conn')?.dataset.state === 'reconnecting'",
                           timeout=10_000)
    assert "Reconnexion" in page.inner_text("#overlay")
    started = time.monotonic()
    server["server"] = new = start_vigie(viewer_config(), old.folder, port=old.port)
    # Back by itself: sessions survive the restart, so the same page (no reload: the player
    # object is the same) and the kiosk screen play again without anyone touching them.
    page.wait_for_function("""() => location.pathname === '/login'
        || (window.vigiePlayer && window.vigiePlayer.info().state === 'live')""", timeout=25_000)
    assert not page.url.startswith(new.base_url + "/login"), "the restart ended the session"
    assert page.evaluate("() => window.vigieBeforeRestart === window.vigiePlayer")
    assert time.monotonic() - started < 20
    assert_plays(sample_playback(page, 3))
    wait_live(kiosk)
    assert_plays(sample_playback(kiosk, 2))


# -- 8. a camera late behind its link: the wall says how old its picture is ------------------
def test_wall_cell_age_counts_how_late_the_camera_is(simulators, new_page, tmp_path):
    """A real RTSP camera behind a link that delays everything 2.5 s: its cell's age is the
    picture's (decoded a moment ago, taken 2.5 s before that), not the moment it arrived."""
    from tests.support.camsim import Mount
    from tests.support.faultproxy import FaultProxy

    simulator = simulators([Mount("late", fps=10, gop=10, tag=44)])
    with FaultProxy(simulator.port) as proxy:
        config = ('server: {listen: "127.0.0.1:{port}"}\n'
                  "communes:\n  - {id: bourg, name: Le Bourg}\n"
                  f'cameras:\n  - {{id: late, name: Lavoir, commune: bourg, url: "{proxy.url("late")}"}}\n'
                  "walls:\n  - {id: w, name: W, size: 640x360, fps: 10, layout: 1x1, cameras: [late]}\n")
        server = start_vigie(config, tmp_path)
        try:
            wait_until(lambda: server.get_json("/api/cameras/late")["state"] == "live", 15,
                       message="camera live")
            page = new_page()
            form_login(page, server.base_url, "operator", TEST_PASSWORDS["operator"], "/walls/w")
            wait_live(page)
            time.sleep(1.0)  # on time first: "behind" counts from the best delay seen
            proxy.latency(2500)
            wait_until(lambda: (server.get_json("/api/cameras/late")["behind"] or 0) > 2.0, 15,
                       message="the API sees the camera 2.5 s behind")

            def cell_age() -> float:
                text = page.locator(".cell[data-camera=late] .cell-age").inner_text()
                match = re.fullmatch(r"(\d+)(?:,(\d))? s", text)
                return float(f"{match[1]}.{match[2] or 0}") if match else -1.0

            # Pictures flow again, 2.5 s late: over a few polls of the page, every age shown
            # counts the delay (the time since the last decoded frame alone reads ~0.1 s).
            time.sleep(3.0)
            ages = []
            for _ in range(8):
                ages.append(cell_age())
                time.sleep(0.5)
            assert all(2.0 <= age < 5.0 for age in ages), ages
            assert not page.errors, page.errors
        finally:
            server.terminate()


def test_a_camera_whose_picture_froze_says_so_on_the_home_page(server, new_page):
    """Picture health in the viewer: a demo camera frozen on an admin's word shows "image
    gelée depuis HH:MM" on its home-page card (a camera on no wall: the other tests' walls
    keep moving pictures; the wall cells use the same words, seen in the issue 24 note's
    screenshots)."""
    from tests.support.mjpeg import fetch

    current = server["server"]
    page = new_page()
    form_login(page, current.base_url, "admin", TEST_PASSWORDS["admin"], "/")
    page.locator('[data-camera="cam-est-1"]').wait_for(timeout=15000)
    body = json.dumps({"fault": "freeze"}).encode()
    assert fetch("POST", current.base_url + "/api/demo/cameras/cam-est-1/fault", body, current.headers)[0] == 200
    try:
        # The page was open before: its in-place update shows the condition when raised.
        badge = page.locator('[data-camera="cam-est-1"] .picture-problem')
        badge.wait_for(timeout=45000)
        assert re.fullmatch(r"!?image gelée depuis \d\d:\d\d", badge.inner_text().replace("\n", "")), badge.inner_text()
        assert "null" not in page.locator("main").inner_text()
        page.goto(current.base_url + "/cameras/cam-est-1")
        assert not page.errors, page.errors
    finally:
        fetch("POST", current.base_url + "/api/demo/cameras/cam-est-1/fault", b'{"fault": null}', current.headers)
