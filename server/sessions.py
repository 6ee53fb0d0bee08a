"""Browser sessions and login throttling: in memory, bounded, with idle expiry.

Sessions do not survive a restart: people log in again, which is what a supervision centre
expects after maintenance. Session tokens are random (256 bits) and kept only as SHA-256
digests, so a memory dump does not hand out live cookies.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from server.scope import Principal


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Session:
    principal: Principal
    created: float
    last_seen: float
    address: str


class SessionStore:
    def __init__(self, idle_seconds: float, max_sessions: int = 10_000) -> None:
        self.idle_seconds = idle_seconds
        self._max = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self, principal: Principal, address: str) -> str:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        self._sessions[_digest(token)] = Session(principal, now, now, address)
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)  # the least recently used goes first
        return token

    def get(self, token: str) -> Session | None:
        key = _digest(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.idle_seconds:
            del self._sessions[key]
            return None
        session.last_seen = now
        self._sessions.move_to_end(key)
        return session

    def drop(self, token: str) -> None:
        self._sessions.pop(_digest(token), None)

    def retain(self, still_valid) -> int:
        """Drop sessions whose principal is no longer valid (after a reload). Returns count."""
        stale = [key for key, session in self._sessions.items() if not still_valid(session.principal)]
        for key in stale:
            del self._sessions[key]
        return len(stale)

    def __len__(self) -> int:
        return len(self._sessions)


@dataclass
class LoginThrottle:
    """Slows down guessing: after `free_attempts` failures in `window` seconds for a user
    name or an address, each further attempt must wait, doubling up to `max_delay`."""

    window: float = 900.0
    free_attempts: int = 5
    max_delay: float = 300.0
    max_keys: int = 10_000
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] < now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def retry_after(self, user: str, address: str, now: float | None = None) -> float:
        """Seconds to wait before this attempt may be checked (0: go ahead)."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key in (f"user:{user.lower()}", f"addr:{address}"):
            failures = self._recent(key, now)
            excess = len(failures) - self.free_attempts
            if excess >= 0:
                delay = min(self.max_delay, 2.0 ** excess)
                wait = max(wait, failures[-1] + delay - now)
        return max(0.0, wait)

    def failed(self, user: str, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key in (f"user:{user.lower()}", f"addr:{address}"):
            self._failures.setdefault(key, deque(maxlen=64)).append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, user: str) -> None:
        self._failures.pop(f"user:{user.lower()}", None)
