"""Test-side readers: MJPEG streams, snapshots, and stamps per wall cell."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

import cv2
import numpy as np

from ingest.picture.layout import CellSpec, cell_rect, letterbox
from ingest.picture.stamp import Stamp, read_stamp


@dataclass
class ReceivedFrame:
    received_wall: float  # time.time() when the whole JPEG had arrived
    jpeg: bytes

    def gray(self) -> np.ndarray:
        image = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert image is not None, "not a JPEG"
        return image


class MjpegReader:
    """Reads a multipart MJPEG stream in a thread; keeps every frame with its arrival time."""

    def __init__(self, url: str, read_delay: float = 0.0, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.frames: list[ReceivedFrame] = []
        self.error: Exception | None = None
        self._read_delay = read_delay
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._connection: http.client.HTTPConnection | None = None

    def start(self) -> "MjpegReader":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        sock = self._connection.sock if self._connection is not None else None
        if sock is not None:  # None once the server closed the stream
            try:
                sock.shutdown(2)
            except OSError:
                pass
        self._thread.join(5)

    def _run(self) -> None:
        parts = urlsplit(self.url)
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
        try:
            self._connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                                     headers=self.headers)
            response = self._connection.getresponse()
            if response.status != 200:
                raise AssertionError(f"{self.url}: HTTP {response.status}")
            while not self._stop.is_set():
                length = None
                line = response.readline()
                if not line:
                    break
                while line.strip() == b"" or line.startswith(b"--"):
                    line = response.readline()
                    if not line:
                        return
                while line.strip():
                    name, _, value = line.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                    line = response.readline()
                assert length is not None, "part without Content-Length"
                jpeg = response.read(length)
                self.frames.append(ReceivedFrame(time.time(), jpeg))
                if self._read_delay:
                    time.sleep(self._read_delay)
        except Exception as error:  # noqa: BLE001 - reported to the test
            if not self._stop.is_set():
                self.error = error
        finally:
            self._connection.close()

    def frames_between(self, start: float, end: float) -> list[ReceivedFrame]:
        return [frame for frame in self.frames if start <= frame.received_wall < end]


def read_for(url: str, seconds: float, headers: dict[str, str] | None = None) -> list[ReceivedFrame]:
    reader = MjpegReader(url, headers=headers).start()
    time.sleep(seconds)
    reader.stop()
    if reader.error:
        raise reader.error
    return reader.frames


def cell_stamp(gray: np.ndarray, cell: CellSpec, grid: tuple[int, int],
               source_size: tuple[int, int]) -> Stamp | None:
    """Read the stamp of the camera shown in one cell of a wall image."""
    height, width = gray.shape
    rect = cell_rect(cell, grid[0], grid[1], width, height)
    content = letterbox(*source_size, rect.width, rect.height)
    region = gray[rect.y + content.y : rect.y + content.y + content.height,
                  rect.x + content.x : rect.x + content.x + content.width]
    return read_stamp(region)


def get_json(url: str, timeout: float = 10.0, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def fetch(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Any request; returns (status, headers, body) without raising on 4xx/5xx or redirects."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""),
                           body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def login(base_url: str, user: str, password: str) -> dict[str, str]:
    """Log in with JSON; returns the headers (Cookie) that carry the session."""
    status, headers, body = fetch("POST", base_url + "/login",
                                 json.dumps({"user": user, "password": password}).encode(),
                                 {"Content-Type": "application/json"})
    assert status == 200, f"login {user}: {status} {body[:200]!r}"
    cookie = headers["set-cookie"].split(";", 1)[0]
    return {"Cookie": cookie}


def wait_until(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail with `message` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}; last: {last!r}")


def first_frame(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> ReceivedFrame:
    """The first frame of an MJPEG stream, then hang up."""
    reader = MjpegReader(url, headers=headers).start()
    try:
        wait_until(lambda: reader.frames or reader.error, timeout, interval=0.05,
                   message=f"a frame from {url}")
    finally:
        reader.stop()
    if reader.error and not reader.frames:
        raise reader.error
    return reader.frames[0]
