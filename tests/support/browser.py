"""Helpers for tests in a real browser: Debian's Chromium driven by Playwright (never a
downloaded browser), a Vigie server on a fixed port (so it can be restarted under the same
address), form login, request recording, and picture checks on screenshots."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from tests.conftest import missing_component

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic",
                 "--autoplay-policy=no-user-gesture-required"]
VIEWPORT = {"width": 1280, "height": 720}


def require_chromium() -> None:
    """No Chromium: fail in CI (CI=true), skip elsewhere."""
    problem = None
    if not os.access(CHROMIUM, os.X_OK):
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright Python package is not installed"
    if problem:
        missing_component(problem)


@contextmanager
def chromium() -> Iterator:
    from playwright.sync_api import sync_playwright

    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# -- a server on a port that survives restarts -------------------------------------------------
# -- pages -----------------------------------------------------------------------------------
def form_login(page, base_url: str, user: str, password: str, next_path: str = "/") -> None:
    """Log in through the login form, as a person would, and land on `next_path`."""
    page.goto(f"{base_url}/login?next={next_path}")
    page.fill("#user", user)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + next_path)


def wait_live(page, timeout: float = 20.0) -> dict:
    """Wait until the page's player says it is live; returns its info()."""
    page.wait_for_function("() => window.vigiePlayer && window.vigiePlayer.info().state === 'live'",
                           timeout=timeout * 1000)
    return page.evaluate("() => window.vigiePlayer.info()")


def media_clock(page) -> float:
    """Seconds of media shown so far: the video's currentTime (fMP4), or frames shown / 10
    for pictures (JPEG, MJPEG), so both transports can be sampled the same way."""
    return page.evaluate("""() => {
        const info = window.vigiePlayer.info();
        if (info.mode === 'fmp4') return document.querySelector('video').currentTime;
        return info.frames / 10;
    }""")


def sample_playback(page, seconds: int) -> list[float]:
    """The media clock once a second for `seconds` seconds (seconds + 1 samples)."""
    samples = [media_clock(page)]
    for _ in range(seconds):
        page.wait_for_timeout(1000)
        samples.append(media_clock(page))
    return samples


def assert_plays(samples: list[float], min_rate: float = 0.6) -> None:
    """The clock moved during every second (no stall), and by about real time overall."""
    steps = [b - a for a, b in zip(samples, samples[1:])]
    assert all(step > 0.05 for step in steps), f"playback stalled: clock samples {samples}"
    assert samples[-1] - samples[0] >= min_rate * (len(samples) - 1), f"too slow: {samples}"


def stage_picture(page, selector: str = "#stage") -> np.ndarray:
    """A screenshot of the element as a BGR image."""
    png = page.locator(selector).screenshot()
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def cell_pictures(image: np.ndarray, columns: int, rows: int) -> list[np.ndarray]:
    height, width = image.shape[:2]
    return [image[r * height // rows:(r + 1) * height // rows, c * width // columns:(c + 1) * width // columns]
            for r in range(rows) for c in range(columns)]


@dataclass
class Traffic:
    """Every URL a page asked for (HTTP and WebSocket), and every text it received from the
    API and WebSockets: what a user could possibly have seen."""

    urls: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def attach(self, page) -> "Traffic":
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("response", self._response)
        page.on("websocket", self._websocket)
        return self

    def _response(self, response) -> None:
        if "json" in (response.headers.get("content-type") or ""):
            try:
                self.texts.append(response.text())
            except Exception:  # noqa: BLE001 - a body gone with its page
                pass

    def _websocket(self, ws) -> None:
        self.urls.append(ws.url)
        ws.on("framereceived", lambda payload: isinstance(payload, str) and self.texts.append(payload))
