"""Browser sessions and login throttling: in memory, bounded, with idle expiry.

Sessions survive a restart (a wall screen must come back by itself after maintenance):
`SessionFile` keeps them in a small SQLite file beside the journal, written every few
seconds and at shutdown. Session tokens are random (256 bits) and kept only as SHA-256
digests, in memory and on disk, so neither a memory dump nor the file hands out cookies.

In a cluster, a `SessionReplica` (server/cluster/sessions.py) hears every session made,
used or ended here and tells the other nodes; what they tell comes back through `adopt`,
`seen_elsewhere` and `forget`, which tell no one.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from server.access.scope import Principal


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def credential_fingerprint(secret_hash: str) -> str:
    """What a session remembers of the credential that made it: a hash of the password's
    (or token's) hash, so that a changed password or a rotated token ends the sessions it
    opened, without the session file holding anything a guess could be checked against."""
    return hashlib.sha256(b"vigie-credential\0" + secret_hash.encode()).hexdigest()[:32]


@dataclass
class Session:
    principal: Principal
    created: float
    last_seen: float
    address: str
    credential: str = ""      # credential_fingerprint() of what logged in
    user_agent: str = ""
    views: int = 0            # live views open on it: watching is activity (no idle expiry)
    told: float = 0.0         # last_seen as last told to the other nodes of a cluster


SessionRow = tuple[str, str, float, float, str, str, str]
EndedFn = Callable[[list[str]], None]


class SessionReplica(Protocol):
    """The other nodes of a cluster, told of this node's sessions (never blocking)."""

    def created(self, key: str, session: Session) -> None: ...
    def used(self, key: str, session: Session) -> None: ...
    def ended(self, keys: list[str]) -> None: ...


class SessionStore:
    """Sessions by the SHA-256 digest of their token. `on_ended(digests)` hears every
    session that ends (logout, expiry, reload, an admin ending them, eviction), so that the
    views they opened end too (server/access/views.py).

    Bounded twice: `max_sessions` in all (the least recently used without a live view goes
    first) and `max_per_principal` per user or token (that principal's oldest goes first),
    so that a kiosk token used in a loop cannot push everybody else's sessions out."""

    def __init__(self, idle_seconds: float, max_sessions: int = 10_000,
                 max_per_principal: int = 64) -> None:
        self.idle_seconds = idle_seconds
        self._max = max_sessions
        self._max_per_principal = max_per_principal
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._by_name: dict[str, OrderedDict[str, None]] = {}  # principal name -> digests, oldest first
        self.changed = False  # since the last snapshot
        self.on_ended: EndedFn | None = None
        self.replica: SessionReplica | None = None

    def _ended(self, digests: list[str], told: bool = False) -> None:
        if digests:
            self.changed = True
            if self.on_ended is not None:
                self.on_ended(digests)
            if self.replica is not None and not told:
                self.replica.ended(digests)

    @property
    def tell_every(self) -> float:
        """How often a session in use is told to the other nodes: well within the idle
        time, so that none of them expires a session used elsewhere."""
        return min(60.0, self.idle_seconds / 4)

    def _add(self, key: str, session: Session) -> None:
        self._sessions[key] = session
        self._by_name.setdefault(session.principal.name, OrderedDict())[key] = None

    def _pop(self, key: str) -> Session | None:
        session = self._sessions.pop(key, None)
        if session is not None:
            keys = self._by_name.get(session.principal.name)
            if keys is not None:
                keys.pop(key, None)
                if not keys:
                    del self._by_name[session.principal.name]
        return session

    def create(self, principal: Principal, address: str, credential: str = "",
               user_agent: str = "") -> str:
        token = secrets.token_urlsafe(32)
        now = time.time()
        key = _digest(token)
        self._add(key, Session(principal, now, now, address, credential, user_agent[:300], told=now))
        self.changed = True
        if self.replica is not None:
            self.replica.created(key, self._sessions[key])
        evicted = []
        own = self._by_name[principal.name]
        while len(own) > self._max_per_principal:
            oldest = next((k for k in own if k != key and self._sessions[k].views <= 0),
                          next(iter(own)))
            self._pop(oldest)
            evicted.append(oldest)
        while len(self._sessions) > self._max:
            evicted.append(self._evict_one(keep=key))
        self._ended(evicted)
        return token

    def _evict_one(self, keep: str) -> str:
        """The least recently used session goes, unless it has a live view open (a wall
        screen watching for days): then the next one, looking at a bounded number."""
        victim = None
        for index, (key, session) in enumerate(self._sessions.items()):
            if key != keep and (session.views <= 0 or index >= 1_000):
                victim = key
                break
        if victim is None:
            victim = next(key for key in self._sessions if key != keep)
        self._pop(victim)
        return victim

    def get(self, token: str) -> Session | None:
        """The session of a cookie's token, refreshed; None if unknown or expired."""
        return self.get_by_digest(_digest(token))

    def get_by_digest(self, key: str, touch: bool = True) -> Session | None:
        session = self._sessions.get(key)
        if session is None:
            return None
        now = time.time()
        if now - session.last_seen > self.idle_seconds and session.views <= 0:
            self._pop(key)
            self._ended([key])
            return None
        if touch:
            session.last_seen = now
            self.changed = True  # saved within seconds, so idle expiry survives a restart too
            self._sessions.move_to_end(key)
            if self.replica is not None and now - session.told >= self.tell_every:
                session.told = now
                self.replica.used(key, session)
        return session

    def entries(self) -> list[tuple[str, Session]]:
        return list(self._sessions.items())

    def in_use(self) -> list[tuple[str, Session]]:
        """Sessions with a live view here (watching is activity: told to the other nodes
        as used, however long no request came)."""
        return [(key, session) for key, session in self._sessions.items() if session.views > 0]

    # -- what the other nodes of a cluster tell ----------------------------------------------

    def adopt(self, key: str, principal: Principal, created: float, last_seen: float, address: str,
              credential: str, user_agent: str) -> bool:
        """A session made on another node; False if it is already idle. Bounded like the
        sessions made here (the oldest go, told to no one: they stay valid elsewhere)."""
        if key in self._sessions:
            self.seen_elsewhere(key, last_seen)
            return True
        if time.time() - last_seen > self.idle_seconds:
            return False
        self._add(key, Session(principal, created, last_seen, address, credential, user_agent[:300],
                               told=last_seen))
        self.changed = True
        while len(self._sessions) > self._max:
            evicted = self._evict_one(keep=key)
            self._ended([evicted], told=True)
        return True

    def seen_elsewhere(self, key: str, last_seen: float) -> None:
        session = self._sessions.get(key)
        if session is not None and last_seen > session.last_seen:
            session.last_seen = session.told = last_seen
            self.changed = True

    def forget(self, key: str) -> None:
        """A session another node ended (logout, an admin, a changed password)."""
        if self._pop(key) is not None:
            self._ended([key], told=True)

    @staticmethod
    def digest(token: str) -> str:
        return _digest(token)

    def drop(self, token: str) -> None:
        key = _digest(token)
        if self._pop(key) is not None:
            self._ended([key])

    def _keys_of(self, user: str) -> list[str]:
        """Digests of a user's sessions (names compare without case, as at login)."""
        return [key for name, keys in self._by_name.items() if name.lower() == user.lower()
                for key in keys]

    def list(self, user: str | None = None) -> list[Session]:
        if user is None:
            return list(self._sessions.values())
        return [self._sessions[key] for key in self._keys_of(user)]

    def end_user(self, user: str) -> int:
        """End every session of one user (an admin's DELETE /api/sessions?user=)."""
        keys = self._keys_of(user)
        for key in keys:
            self._pop(key)
        self._ended(keys)
        return len(keys)

    def snapshot(self) -> list[SessionRow]:
        """(digest, principal name, created, last seen, address, credential, user agent)."""
        self.changed = False
        return [(key, s.principal.name, s.created, s.last_seen, s.address, s.credential,
                 s.user_agent) for key, s in self._sessions.items()]

    def restore(self, rows, current: Callable[[str], tuple[Principal, str] | None]) -> int:
        """Bring back saved sessions whose principal still exists with the same credential
        (`current(name)`: its principal and credential fingerprint now)."""
        now = time.time()
        for key, name, created, last_seen, address, credential, user_agent in rows:
            now_valid = current(name)
            if (now_valid is not None and credential and now_valid[1] == credential
                    and now - last_seen <= self.idle_seconds):
                self._add(key, Session(now_valid[0], created, last_seen, address, credential,
                                       user_agent or ""))
        return len(self._sessions)

    def retain(self, still_valid: Callable[[Session], bool]) -> int:
        """Drop sessions that are no longer valid (after a reload). Returns how many."""
        stale = [key for key, session in self._sessions.items() if not still_valid(session)]
        for key in stale:
            self._pop(key)
        self._ended(stale)
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
        return max(self.wait(self._recent(key, now), now) for key in self.keys(user, address))

    @staticmethod
    def keys(user: str, address: str) -> tuple[str, str]:
        return f"user:{user.lower()}", f"addr:{address}"

    def wait(self, failures: Sequence[float], now: float) -> float:
        """Seconds an attempt must wait after these recent failures (times within the window)."""
        excess = len(failures) - self.free_attempts
        if excess < 0:
            return 0.0
        return max(0.0, failures[-1] + min(self.max_delay, 2.0 ** excess) - now)

    def failed(self, user: str, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key in (f"user:{user.lower()}", f"addr:{address}"):
            self._failures.setdefault(key, deque(maxlen=64)).append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._evict_one(now)

    def _evict_one(self, now: float) -> None:
        """Forget the least recently failed key that is not held back now: decoys from
        thousands of addresses must not push a locked user's failures out. Looks at a
        bounded number; if all of those are held back, the oldest goes."""
        for index, (key, failures) in enumerate(self._failures.items()):
            recent = sum(1 for moment in failures if moment >= now - self.window)
            if recent < self.free_attempts or index >= 256:
                del self._failures[key]
                return
        self._failures.popitem(last=False)

    def reserve(self, user: str, address: str, now: float | None = None) -> tuple[float, float]:
        """Start an attempt: (seconds to wait, 0) if it must wait, else (0, its stamp). The
        attempt counts as a failure from now on, before the password is checked: counted
        after the (slow) check, 60 concurrent guesses all passed the check before the
        first failure was recorded. `succeeded` takes the reservation back."""
        now = time.monotonic() if now is None else now
        wait = self.retry_after(user, address, now)
        if wait > 0:
            return wait, 0.0
        self.failed(user, address, now)
        return 0.0, now

    def cancel(self, user: str, address: str, stamp: float) -> None:
        """Take back a reservation that was neither right nor wrong (a Digest answer to an
        expired nonce: the client retries at once with a fresh one)."""
        for key in (f"user:{user.lower()}", f"addr:{address}"):
            failures = self._failures.get(key)
            if failures is not None:
                try:
                    failures.remove(stamp)
                except ValueError:
                    pass

    def succeeded(self, user: str, address: str | None = None, stamp: float | None = None) -> None:
        """A right password: the user's failures are forgotten, and the address's
        reservation for this attempt (not its other failures) is taken back."""
        self._failures.pop(f"user:{user.lower()}", None)
        failures = self._failures.get(f"addr:{address}") if address is not None else None
        if failures is not None and stamp is not None:
            try:
                failures.remove(stamp)
            except ValueError:
                pass


class SessionFile:
    """Sessions on disk (SQLite, mode 0600): digests, names, credential fingerprints, times."""

    COLUMNS = ("digest", "name", "created", "last_seen", "address", "credential", "user_agent")

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        connection = sqlite3.connect(self.path)
        if fresh:
            os.chmod(self.path, 0o600)
        columns = [row[1] for row in connection.execute("pragma table_info(sessions)")]
        if columns and tuple(columns) != self.COLUMNS:
            # Sessions saved before they remembered their credential cannot be tied to
            # one: they are dropped (everyone logs in once more).
            connection.execute("drop table sessions")
        connection.execute("create table if not exists sessions (digest text primary key, "
                           "name text not null, created real, last_seen real, address text, "
                           "credential text not null, user_agent text)")
        return connection

    def load(self) -> list[SessionRow]:
        connection = self._connect()
        try:
            return connection.execute(f"select {', '.join(self.COLUMNS)} from sessions").fetchall()
        finally:
            connection.close()

    def save(self, rows: list[SessionRow]) -> None:
        connection = self._connect()
        try:
            with connection:
                connection.execute("delete from sessions")
                connection.executemany("insert into sessions values (?, ?, ?, ?, ?, ?, ?)", rows)
        finally:
            connection.close()
