"""The relay's side of a node's NATS connection: publishing the access units and health of
the cameras this node pulls, and feeding the relay sources (ingest/source/remote.py) with
those of the cameras other nodes pull. Which node pulls what is server/cluster/node.py's
business; the messages themselves are server/cluster/relay.py's.

Everything here runs on the event loop, but for `RelayPublisher` (in camera workers'
threads), which hands each message over with `send_threadsafe`.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
from collections.abc import Callable, Iterable

import nats

from ingest.camera.worker import CameraWorker
from ingest.source.remote import RelayFeeds
from server.cluster.kv import quietly
from server.cluster.relay import (HEALTH, MAX_UNIT, UNITS, WANT, Assembler, HealthBoard, RelayPublisher,
                                  Wants, health_of)

OUTBOX_UNITS = 512  # units waiting for the loop to publish them, at most
HEADROOM = 1024  # of NATS's max_payload, for the subject and headers of a relayed part


class RelayLink:
    def __init__(self, name: str, feeds: RelayFeeds, lease_seconds: float,
                 pulled_here: Callable[[str], bool], known: Callable[[str], bool]) -> None:
        self.name = name
        self.feeds = feeds
        self._pulled_here = pulled_here  # this node holds the camera's lease
        self._known = known              # the camera is in the config
        self._loop = asyncio.get_running_loop()
        self._nc: nats.NATS | None = None
        self.wants = Wants()
        self.health = HealthBoard(lease_seconds)  # cameras others pull, as they say
        self.dropped_messages = 0            # malformed messages from NATS
        self.published: dict[str, int] = {}  # units relayed from here, per camera
        self._too_big = 0                    # units over NATS's max_payload, counted
        self._publishers: dict[str, RelayPublisher] = {}
        self._assemblers: dict[str, Assembler] = {}  # units relayed in parts, by camera
        self._subscriptions: dict[str, object] = {}
        self.closing = False
        self._outbox: collections.deque[tuple[str, bytes, dict[str, str]]] = collections.deque(maxlen=OUTBOX_UNITS)
        self._outbox_ready = asyncio.Event()
        self._waking = False
        self._sender: asyncio.Task | None = None
        feeds.on_change = lambda camera_id, reading: self._loop.call_soon_threadsafe(
            self._reading_changed, camera_id, reading)

    async def async_start(self, nc: nats.NATS) -> None:
        self._nc = nc
        self._sender = asyncio.create_task(self._send_forever())
        await nc.subscribe(WANT + ">", cb=self._on_want)
        await nc.subscribe(HEALTH + ">", cb=self._on_health)
        for camera_id in self.feeds.cameras():
            self._reading_changed(camera_id, True)

    def stop(self) -> None:
        self.closing = True
        if self._sender is not None:
            self._sender.cancel()

    @property
    def units_too_big(self) -> int:
        return self._too_big + sum(p.dropped_oversize for p in list(self._publishers.values()))

    def worker_started(self, camera_id: str, worker: CameraWorker) -> None:
        """A worker of a camera this node pulls: what it receives is relayed from now on."""
        part_size = self._nc.max_payload - HEADROOM if self._nc else MAX_UNIT
        publisher = RelayPublisher(camera_id, self._send_threadsafe, self.wants, part_size=part_size)
        self._publishers[camera_id] = publisher
        worker.add_tap(publisher)

    async def async_announce(self, workers: Iterable[tuple[str, CameraWorker]]) -> None:
        """Every renew period: the cameras this node's viewers want in full, and the health
        of the ones it pulls (`workers`)."""
        for camera_id in self.feeds.wanted_in_full():
            await self._nc.publish(WANT + camera_id, self.name.encode())
        for camera_id, worker in workers:
            await self._nc.publish(HEALTH + camera_id, json.dumps(health_of(worker)).encode())

    def camera_health(self, camera_id: str) -> dict | None:
        """The camera as the node pulling it last said (state, reason, codec...), if
        another node pulls it and said so within a lease."""
        return None if self._pulled_here(camera_id) else self.health.latest(camera_id)

    # -- publishing ----------------------------------------------------------------------------

    def _send_threadsafe(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        """From a camera worker's thread: into the outbox, bounded (a loop that falls behind
        loses the oldest units: their readers wait for the next keyframe). The loop is woken
        once for what gathers meanwhile, not once per unit."""
        self._outbox.append((subject, data, headers))
        if not self._waking:
            self._waking = True
            try:
                self._loop.call_soon_threadsafe(self._outbox_ready.set)
            except RuntimeError:
                pass  # the loop is closing

    async def _send_forever(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            self._waking = False  # before draining: a unit added from now on wakes us again
            while self._outbox:
                subject, data, headers = self._outbox.popleft()
                if self._nc is None or not self._nc.is_connected or self.closing:
                    continue
                if len(data) + HEADROOM > self._nc.max_payload:  # parts are cut below it: not expected
                    self._too_big += 1
                    continue
                camera_id = subject[len(UNITS):]
                if "p" not in headers or headers["p"].startswith("0/"):
                    self.published[camera_id] = self.published.get(camera_id, 0) + 1
                try:
                    await self._nc.publish(subject, data, headers=headers)
                except Exception:  # noqa: BLE001 - NATS away: the unit is lost, readers resync
                    pass

    # -- reading -------------------------------------------------------------------------------

    def _reading_changed(self, camera_id: str, reading: bool) -> None:
        """A relay source here started or stopped reading a camera."""
        if self._nc is None:
            return  # subscribed when the node starts
        current = self._subscriptions.pop(camera_id, None)
        if current is not None:
            asyncio.ensure_future(quietly(current.unsubscribe()))
        self._assemblers[camera_id] = Assembler()
        if reading:
            async def subscribe() -> None:
                self._subscriptions[camera_id] = await self._nc.subscribe(
                    UNITS + camera_id, cb=functools.partial(self._on_unit, camera_id))
            asyncio.ensure_future(subscribe())

    async def _on_unit(self, camera_id: str, message) -> None:
        try:
            relayed = self._assemblers.setdefault(camera_id, Assembler()).add(message.headers, message.data)
        except ValueError:
            self.dropped_messages += 1
            return
        if relayed is not None:
            self.feeds.put(camera_id, relayed)

    async def _on_want(self, message) -> None:
        camera_id = message.subject[len(WANT):]
        if self._pulled_here(camera_id):
            self.wants.heard(camera_id)

    async def _on_health(self, message) -> None:
        camera_id = message.subject[len(HEALTH):]
        if self._pulled_here(camera_id) or not self._known(camera_id):
            return
        if not self.health.heard(camera_id, message.data):
            self.dropped_messages += 1
