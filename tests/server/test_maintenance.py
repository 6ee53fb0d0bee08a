"""The maintenance page in a real browser (Debian's Chromium): a real RTSP camera (GStreamer)
whose picture freezes is listed with its current picture beside its reference, an operator
acknowledges it, declares planned works and exports the month's availability as CSV; police
see their commune only, read only. Screenshots are kept in the test's folder."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from tests.conftest import TEST_PASSWORDS, users_yaml
from tests.support.browser import VIEWPORT, chromium, form_login
from tests.support.camsim import Mount
from tests.support.mjpeg import fetch, login, wait_until

FREEZE_AFTER = 8.0  # seconds after the simulator starts; the reference is accepted before
HOLD = 10.0         # a frozen picture is raised after holding this long (picture_health.py)


def _config(simulator) -> str:
    cameras = "".join(f'  - {{id: {name}, name: "{label}", commune: {commune}, url: "{simulator.url(name)}"}}\n'
                      for name, label, commune in (("gel", "Place du marché", "bourg"), ("ok", "Lavoir", "bourg"),
                                                   ("val", "Pont", "val")))
    return ('server: {listen: "127.0.0.1:{port}"}\n'
            "communes:\n  - {id: bourg, name: Le Bourg}\n  - {id: val, name: Le Val}\n"
            f"cameras:\n{cameras}" + users_yaml({"garde": ["val"], "garde-bourg": ["bourg"]}))


def _loaded(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0")


@pytest.fixture
def browser():
    with chromium() as instance:
        yield instance


def test_the_maintenance_page_lists_a_frozen_camera_and_its_acknowledgement(simulators, vigie, browser, tmp_path):
    simulator = simulators([Mount("gel", tag=71, scene="fixed", fault="freeze", fault_after=FREEZE_AFTER),
                            Mount("ok", tag=72, scene="fixed"), Mount("val", tag=73, scene="fixed")])
    started = time.monotonic()
    server = vigie(_config(simulator))
    operator = login(server.base_url, "operator", TEST_PASSWORDS["operator"])
    # The reference is the moving picture, taken before the freeze.
    wait_until(lambda: fetch("POST", server.base_url + "/api/cameras/gel/picture/reference", b"",
                             operator)[0] == 200, FREEZE_AFTER, message="reference accepted before the freeze")
    context = browser.new_context(viewport={**VIEWPORT, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    form_login(page, server.base_url, "operator", TEST_PASSWORDS["operator"], "/maintenance")
    item = page.locator('li.incident[data-camera="gel"]')
    # Listed by the page's own polling within the hold (+ checks every 2 s, + the poll).
    item.wait_for(timeout=(FREEZE_AFTER + 3 * HOLD) * 1000)
    listed_after = time.monotonic() - started
    assert item.get_attribute("data-state") == "frozen"
    assert "image gelée" in item.inner_text() and "Place du marché" in item.inner_text()
    assert page.locator("li.incident").count() == 1, "only the frozen camera has a problem"
    wait_until(lambda: _loaded(page, 'li.incident[data-camera="gel"] figure:nth-of-type(1) img')
               and _loaded(page, 'li.incident[data-camera="gel"] figure:nth-of-type(2) img'), 20,
               message="the current picture and the reference shown")
    page.screenshot(path=str(tmp_path / "maintenance-frozen.png"), full_page=True)

    # Acknowledged with a comment: shown on the page, journaled with who and when.
    item.locator("input").fill("Technicien prévenu, ticket 4521")
    item.locator("button[type=submit]").click()
    page.locator('li.incident[data-camera="gel"] .ack.done').wait_for(timeout=10000)
    assert "Acquitté par operator" in item.inner_text() and "ticket 4521" in item.inner_text()
    acks = server.get_json("/api/audit?kind=incident_ack")
    assert [(a["user"], a["detail"]["comment"], a["cameras"]) for a in acks] == [
        ("operator", "Technicien prévenu, ticket 4521", ["gel"])]

    # Planned works on the other commune, through the form.
    page.select_option("#works-target", "commune:val")
    page.fill("#works-start", time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() - 3600)))
    page.fill("#works-end", time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() + 3600)))
    page.fill("#works-reason", "Remplacement du mât")
    page.click("#works-form button[type=submit]")
    page.locator("li.works-item").wait_for(timeout=10000)
    assert "Remplacement du mât" in page.locator("#works").inner_text()

    # The month's availability, per commune, exported as CSV by the page's own link.
    page.locator('tr.commune-row[data-commune="bourg"]').wait_for(timeout=10000)
    with page.expect_download() as download:
        page.click("#csv")
    text = open(download.value.path(), encoding="utf-8").read()
    table = list(csv.DictReader(io.StringIO(text)))
    communes = {row["commune"]: row for row in table if row["scope"] == "commune"}
    assert set(communes) == {"bourg", "val"}
    assert float(communes["val"]["planned_pct"]) > 0 and communes["val"]["open_incidents"] == "0"
    assert communes["bourg"]["open_incidents"] == "1" and float(communes["bourg"]["picture_usable_pct"]) < 100
    assert [row["camera"] for row in table if row["scope"] == "camera"] == ["gel", "ok", "val"]
    # The table on the page follows the incident (its figures refresh when incidents change).
    page.wait_for_function("""() => [...document.querySelectorAll('tr.commune-row[data-commune="bourg"] td')]
                                     .at(-1)?.textContent === '1'""", timeout=10000)
    page.click('tr.commune-row[data-commune="bourg"] button.expand')
    page.locator('tr.camera-row[data-camera="gel"]').wait_for(timeout=5000)
    page.screenshot(path=str(tmp_path / "maintenance-acknowledged.png"), full_page=True)
    page.click("button.lang")
    page.locator("#problems-title", has_text="Problems now").wait_for(timeout=5000)
    assert "Acknowledged by operator" in item.inner_text() and "picture frozen" in item.inner_text()
    assert not errors, errors

    # Police: their commune only, nothing to act with. Another commune's incident answers
    # like an unknown one.
    police = context.browser.new_context(viewport=VIEWPORT).new_page()
    form_login(police, server.base_url, "garde", "garde-Pw", "/maintenance")
    police.locator('tr.commune-row[data-commune="val"]').wait_for(timeout=10000)
    assert police.locator("tr.commune-row").count() == 1 and police.locator("li.incident").count() == 0
    assert police.locator("#works-form").is_hidden() and police.locator("li.works-item button").count() == 0
    incident = server.get_json("/api/incidents")["incidents"][0]["incident"]
    garde = login(server.base_url, "garde", "garde-Pw")
    assert fetch("POST", server.base_url + f"/api/incidents/{incident}/acknowledge", b"{}", garde)[0] == 403
    # Works that cover a camera of theirs and one of another commune show them only theirs.
    both = json.dumps({"cameras": ["gel", "val"], "start": time.time(), "end": time.time() + 600,
                       "reason": "Élagage"}).encode()
    assert fetch("POST", server.base_url + "/api/works", both, operator)[0] == 201
    assert fetch("POST", server.base_url + "/api/works", both, garde)[0] == 403
    shown = json.loads(fetch("GET", server.base_url + "/api/incidents", headers=garde)[2])["works"]
    assert sorted((w["cameras"], w["communes"]) for w in shown) == [([], ["val"]), (["val"], [])], shown
    assert fetch("GET", server.base_url + "/api/availability?since=1e20&format=csv", headers=garde)[0] == 400
    bourg = login(server.base_url, "garde-bourg", "garde-bourg-Pw")
    seen = json.loads(fetch("GET", server.base_url + "/api/incidents", headers=bourg)[2])
    assert [i["camera"] for i in seen["incidents"]] == ["gel"]
    assert [(w["cameras"], w["communes"]) for w in seen["works"]] == [(["gel"], [])]
    police.screenshot(path=str(tmp_path / "maintenance-police.png"), full_page=True)
    context.close()
    print(f"frozen camera listed {listed_after:.1f} s after start (freeze at {FREEZE_AFTER:.0f} s); "
          f"screenshots in {tmp_path}")
