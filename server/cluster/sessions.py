"""Browser sessions shared by the nodes of a cluster: a login on one node is valid on every
node, and a session ended on one (logout, an admin, a changed password, idle expiry) ends
on every node, with the views it opened there.

The sessions live in a JetStream key-value bucket (`vigie_sessions`, file storage: they
survive a restart of NATS), keyed by the SHA-256 digest of their token (never the token),
with the principal's name, the fingerprint of the credential that made them, and times.
Every node watches the bucket and keeps its own copy (server/access/sessions.py), so a
request never waits for NATS; a cookie this node has not heard of yet (the browser came
straight from the node that made it) is looked up once in the bucket. A node adopts a
session only if its principal exists here with the same credential, as at a restart.

The bucket's TTL (twice the idle time) removes sessions every node forgot; a session in
use is told again every `tell_every` seconds, well within it.
"""

from __future__ import annotations

import asyncio
import json
import logging

import nats.errors
from nats.js.api import StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from server.access.auth import Auth
from server.access.sessions import Session
from server.cluster.kv import open_bucket, quietly

logger = logging.getLogger(__name__)

BUCKET = "vigie_sessions"
SECRETS = "vigie_secrets"   # values every node must share (the Digest nonce secret)
PENDING_MAX = 10_000        # sessions waiting to be told (coalesced by key): bounded
QUIET_SECONDS = 120.0       # a watch that heard nothing this long is made again
MAX_VALUE = 2048


class SharedSessions:
    def __init__(self, auth: Auth) -> None:
        self._auth = auth
        self._kv = None
        self._pending: dict[str, Session | None] = {}  # key: session to put, None: delete
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.dropped = 0  # malformed entries

    async def async_start(self, js, replicas: int = 1) -> None:
        store = self._auth.sessions
        self._kv = await open_bucket(js, BUCKET, 2 * store.idle_seconds, replicas, StorageType.FILE)
        secrets = await open_bucket(js, SECRETS, None, replicas, StorageType.FILE)
        self._auth.nonce_secret = await _shared_secret(secrets, "digest-nonce", self._auth.nonce_secret)
        store.replica = self
        for key, session in store.entries():  # restored from this node's file
            self._pending[key] = session
        self._tasks = [asyncio.create_task(self._tell_forever()), asyncio.create_task(self._watch_forever()),
                       asyncio.create_task(self._keep_alive_forever())]

    async def async_stop(self) -> None:
        self._auth.sessions.replica = None
        await self._tell()  # what is left, if NATS is there
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- SessionReplica: this node's changes, told in the background -----------------------

    def created(self, key: str, session: Session) -> None:
        self._queue(key, session)

    def used(self, key: str, session: Session) -> None:
        self._queue(key, session)

    def ended(self, keys: list[str]) -> None:
        for key in keys:
            self._queue(key, None)

    def _queue(self, key: str, session: Session | None) -> None:
        if key not in self._pending and len(self._pending) >= PENDING_MAX:
            return  # NATS away for long: the oldest news is kept, the TTL cleans up
        self._pending[key] = session
        self._wake.set()

    async def async_told(self, token: str, timeout: float = 2.0) -> None:
        """Wait until a new session is in the bucket (a login answers once every node can
        find its cookie), at most `timeout`."""
        key = self._auth.sessions.digest(token)
        try:
            async with asyncio.timeout(timeout):
                while key in self._pending:
                    await asyncio.sleep(0.01)
        except TimeoutError:
            logger.warning("cluster: a new session is not shared yet (NATS slow or away)")

    async def _tell_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._tell()
            except (nats.errors.Error, OSError) as error:
                logger.debug("cluster: sessions not told yet (%s)", error)
                await asyncio.sleep(1.0)
                self._wake.set()

    async def _tell(self) -> None:
        while self._pending:
            key = next(iter(self._pending))
            session = self._pending[key]
            told = None if session is None else _value(session)
            if told is None:
                await quietly(self._kv.delete(key))
            else:
                await self._kv.put(key, told)
            # Not queued again meanwhile (the same session, used again, is told again).
            if self._pending.get(key, False) is session and (session is None or _value(session) == told):
                del self._pending[key]

    async def _keep_alive_forever(self) -> None:
        """Sessions watching here are in use however long no request came."""
        store = self._auth.sessions
        while True:
            await asyncio.sleep(store.tell_every)
            for key, session in store.in_use():
                self._queue(key, session)

    # -- the other nodes' changes --------------------------------------------------------

    async def async_look_up(self, token: str) -> bool:
        """A cookie this node does not know: its session from the bucket, if there is one
        (the watch brings it within milliseconds; the browser may be quicker)."""
        key = self._auth.sessions.digest(token)
        try:
            entry = await self._kv.get(key)
        except (KeyNotFoundError, nats.errors.Error, OSError):
            return False
        return self._heard(key, entry.value)

    async def _watch_forever(self) -> None:
        while True:
            try:
                watcher = await self._kv.watchall()
                while True:
                    try:
                        entry = await watcher.updates(timeout=QUIET_SECONDS)
                    except nats.errors.TimeoutError:
                        break
                    if entry is None:
                        continue  # the values there were are all in
                    if entry.key in self._pending:
                        continue  # ours, not told yet: ours is newer
                    if entry.operation in ("DEL", "PURGE"):
                        self._auth.sessions.forget(entry.key)
                    else:
                        self._heard(entry.key, entry.value)
                await quietly(watcher.stop())
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - NATS away: watch again when back
                logger.debug("cluster: watch of the sessions interrupted (%s)", error)
                await asyncio.sleep(1.0)

    def _heard(self, key: str, value: bytes | None) -> bool:
        try:
            if not value or len(value) > MAX_VALUE:
                raise ValueError("empty or too long")
            fields = json.loads(value)
            name, credential = str(fields["name"]), str(fields["credential"])
            created, last_seen = float(fields["created"]), float(fields["last_seen"])
            address, user_agent = str(fields.get("address", ""))[:64], str(fields.get("user_agent", ""))
        except (ValueError, KeyError, TypeError):
            self.dropped += 1
            return False
        store = self._auth.sessions
        current = self._auth.directory.current(name)
        if current is None or not credential or current[1] != credential:
            store.forget(key)  # made with a password or token this node no longer accepts
            return False
        return store.adopt(key, current[0], created, last_seen, address, credential, user_agent)


def _value(session: Session) -> bytes:
    return json.dumps({"name": session.principal.name, "created": session.created, "last_seen": session.last_seen,
                       "address": session.address, "credential": session.credential,
                       "user_agent": session.user_agent}).encode()


async def _shared_secret(kv, name: str, mine: bytes) -> bytes:
    """A secret every node uses: the first node's, kept in a bucket (file storage)."""
    try:
        await kv.create(name, mine)
        return mine
    except KeyWrongLastSequenceError:  # already there: another node's
        entry = await kv.get(name)
        return bytes(entry.value) if entry.value and len(entry.value) >= 32 else mine
