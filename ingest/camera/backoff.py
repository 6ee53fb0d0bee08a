"""Reconnect delays: stepped back-off, reset after a period of stable frames; and, while
backing off, a cheap watch for a camera's return (its TCP port accepting again)."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

BACKOFF_STEPS: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_RESET_AFTER = 60.0  # seconds of frames after which the next failure starts at step one


def backoff_delay(failures: int, steps: tuple[float, ...] = BACKOFF_STEPS) -> float:
    """Delay before reconnect attempt number `failures` (1 = first failure); capped."""
    if failures <= 0:
        return 0.0
    return steps[min(failures, len(steps)) - 1]


# While backing off, a camera that went away is watched for its return: its TCP port is
# tried this often (a connect and a close: no RTSP, nothing the camera logs as a session),
# and the full attempt is made as soon as the port, refused or silent during the wait,
# accepts again. A camera whose port accepted all along failed above TCP (401, 404, a
# broken stream): its attempts stay paced by the back-off, never hammered.
PROBE_INTERVAL = 2.0
PROBE_TIMEOUT = 1.0
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}


def probe_address(url: str) -> tuple[str, int] | None:
    """Where a camera's TCP port is, for the URL schemes that have one."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        return parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:  # a port out of range: the config refuses it, this stays safe
        return None


def port_state(address: tuple[str, int], timeout: float = PROBE_TIMEOUT) -> str:
    """"open", "refused" (the host answers, the port is closed) or "silent" (no answer in
    time, no route, a name that does not resolve)."""
    try:
        with socket.create_connection(address, timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except (OSError, ValueError):  # ValueError: UnicodeError of a malformed host name
        return "silent"


def port_accepts(address: tuple[str, int], timeout: float = PROBE_TIMEOUT) -> bool:
    return port_state(address, timeout) == "open"


def wait_for_return(stop: threading.Event, delay: float, address: tuple[str, int] | None,
                    interval: float = PROBE_INTERVAL) -> bool:
    """Wait `delay` seconds (or until `stop`), probing `address` every `interval`; True when
    the port came back (seen down, then accepting) before the delay ended. Down is one
    refusal, or two silent probes in a row: one lost probe on a lossy link must not make
    a camera that refuses Vigie (401) be tried every few seconds."""
    deadline = time.monotonic() + delay
    silent = 0
    was_down = False

    def probe() -> bool:
        nonlocal silent, was_down
        state = port_state(address, min(PROBE_TIMEOUT, max(0.1, deadline - time.monotonic())))
        silent = silent + 1 if state == "silent" else 0
        was_down = was_down or state == "refused" or silent >= 2
        return state == "open"

    if address is not None:
        # Probed at once too: a camera back a moment after the attempt that failed is seen
        # down now and up at the next probe (the first periodic probe alone would find it
        # up already, as if it had been up all along).
        probe()
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if stop.wait(min(interval, remaining)) or address is None:
            continue
        if probe() and was_down:
            return True
    return False
