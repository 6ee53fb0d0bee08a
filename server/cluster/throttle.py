"""The login throttle of a cluster: failed logins counted on every node at once, so a guesser
spreading attempts over the nodes (a load balancer does it for them) gets no more tries than
against one node.

The failures of a user name and of an address are entries of a JetStream key-value bucket
(`vigie_throttle`, memory storage, the throttle's window as TTL), keyed by a hash of the
name or the address (no name in NATS's keys), each a list of failure times (wall clock: the
nodes' clocks are kept by NTP). An attempt is reserved as server/access/sessions.py's
LoginThrottle does, before the password is checked, by compare-and-set: concurrent attempts
on every node are serialised by the bucket, so no more than the free attempts reach the
password check. When the bucket is too busy to answer, the attempt waits (never let through).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from server.access.sessions import LoginThrottle
from server.cluster.kv import open_bucket

logger = logging.getLogger(__name__)

BUCKET = "vigie_throttle"
TRIES = 60          # compare-and-set rounds before an attempt is told to wait
BUSY_WAIT = 1.0     # seconds an attempt waits when the bucket stayed too busy
MAX_STAMPS = 64


class SharedThrottle:
    def __init__(self, rules: LoginThrottle) -> None:
        self._rules = rules  # free attempts, delays, window: the local throttle's
        self._kv = None
        self._tasks: set[asyncio.Task] = set()

    async def async_start(self, js, replicas: int = 1) -> None:
        self._kv = await open_bucket(js, BUCKET, self._rules.window, replicas)

    async def async_reserve(self, user: str, address: str) -> tuple[float, float]:
        keys = [_key(name) for name in LoginThrottle.keys(user, address)]
        for _ in range(TRIES):
            now = time.time()
            entries = [await self._read(key, now) for key in keys]
            wait = max(self._rules.wait(stamps, now) for stamps, _ in entries)
            if wait > 0:
                return wait, 0.0
            if not await self._write(keys[0], entries[0], now):
                continue  # another attempt was counted meanwhile: look again
            for _ in range(TRIES):  # the address's count, whatever the name's said
                if await self._write(keys[1], await self._read(keys[1], now), now):
                    break
            return 0.0, now
        return BUSY_WAIT, 0.0

    def succeeded(self, user: str, address: str, stamp: float) -> None:
        """A right password: the name's failures are forgotten, the address's reservation
        for this attempt taken back (in the background)."""
        user_key, address_key = (_key(name) for name in LoginThrottle.keys(user, address))
        self._background(self._forget(user_key, None), self._forget(address_key, stamp))

    def cancelled(self, user: str, address: str, stamp: float) -> None:
        self._background(*(self._forget(_key(name), stamp) for name in LoginThrottle.keys(user, address)))

    # -- the bucket ----------------------------------------------------------------------

    async def _read(self, key: str, now: float) -> tuple[list[float], int]:
        """The recent failures under `key` and the entry's revision (0: none)."""
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return [], 0
        try:
            stamps = [float(s) for s in json.loads(entry.value or b"[]")][-MAX_STAMPS:]
        except (ValueError, TypeError):
            stamps = []  # not ours: counted afresh
        return [s for s in stamps if s >= now - self._rules.window], entry.revision

    async def _write(self, key: str, entry: tuple[list[float], int], now: float) -> bool:
        stamps, revision = entry
        value = json.dumps([*stamps, now][-MAX_STAMPS:]).encode()
        try:
            if revision:
                await self._kv.update(key, value, last=revision)
            else:
                await self._kv.create(key, value)
            return True
        except KeyWrongLastSequenceError:  # update() or create() of a key counted meanwhile
            return False

    async def _forget(self, key: str, stamp: float | None) -> None:
        for _ in range(TRIES):
            try:
                if stamp is None:
                    await self._kv.delete(key)
                    return
                stamps, revision = await self._read(key, time.time())
                if not revision or stamp not in stamps:
                    return
                stamps.remove(stamp)
                await self._kv.update(key, json.dumps(stamps).encode(), last=revision)
                return
            except KeyWrongLastSequenceError:
                continue
            except Exception as error:  # noqa: BLE001 - the failure stays counted: safe side
                logger.debug("login throttle: a reservation not taken back (%s)", error)
                return

    def _background(self, *operations) -> None:
        for operation in operations:
            task = asyncio.ensure_future(operation)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def _key(name: str) -> str:
    return "t" + hashlib.sha256(name.encode()).hexdigest()[:40]
