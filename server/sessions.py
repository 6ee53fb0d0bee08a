"""Browser sessions and login throttling: in memory, bounded, with idle expiry.

Sessions survive a restart (a wall screen must come back by itself after maintenance):
`SessionFile` keeps them in a small SQLite file beside the journal, written every few
seconds and at shutdown. Session tokens are random (256 bits) and kept only as SHA-256
digests, in memory and on disk, so neither a memory dump nor the file hands out cookies.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

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
        self.changed = False  # since the last snapshot

    def create(self, principal: Principal, address: str) -> str:
        token = secrets.token_urlsafe(32)
        now = time.time()
        self._sessions[_digest(token)] = Session(principal, now, now, address)
        self.changed = True
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)  # the least recently used goes first
        return token

    def get(self, token: str) -> Session | None:
        key = _digest(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = time.time()
        if now - session.last_seen > self.idle_seconds:
            del self._sessions[key]
            self.changed = True
            return None
        session.last_seen = now
        self.changed = True  # saved within seconds, so idle expiry survives a restart too
        self._sessions.move_to_end(key)
        return session

    def drop(self, token: str) -> None:
        if self._sessions.pop(_digest(token), None) is not None:
            self.changed = True

    def snapshot(self) -> list[tuple[str, str, float, float, str]]:
        """(digest, principal name, created, last seen, address) of live sessions."""
        self.changed = False
        return [(key, s.principal.name, s.created, s.last_seen, s.address)
                for key, s in self._sessions.items()]

    def restore(self, rows, principal_of) -> int:
        """Bring back saved sessions whose principal still exists (`principal_of(name)`)."""
        now = time.time()
        for key, name, created, last_seen, address in rows:
            principal = principal_of(name)
            if principal is not None and now - last_seen <= self.idle_seconds:
                self._sessions[key] = Session(principal, created, last_seen, address)
        return len(self._sessions)

    def retain(self, still_valid) -> int:
        """Drop sessions whose principal is no longer valid (after a reload). Returns count."""
        stale = [key for key, session in self._sessions.items() if not still_valid(session.principal)]
        for key in stale:
            del self._sessions[key]
        self.changed = self.changed or bool(stale)
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


class SessionFile:
    """Sessions on disk (SQLite, mode 0600): digests, names and times only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        connection = sqlite3.connect(self.path)
        if fresh:
            os.chmod(self.path, 0o600)
        connection.execute("create table if not exists sessions (digest text primary key, "
                           "name text not null, created real, last_seen real, address text)")
        return connection

    def load(self) -> list[tuple[str, str, float, float, str]]:
        connection = self._connect()
        try:
            return connection.execute("select digest, name, created, last_seen, address "
                                      "from sessions").fetchall()
        finally:
            connection.close()

    def save(self, rows: list[tuple[str, str, float, float, str]]) -> None:
        connection = self._connect()
        try:
            with connection:
                connection.execute("delete from sessions")
                connection.executemany("insert into sessions values (?, ?, ?, ?, ?)", rows)
        finally:
            connection.close()
