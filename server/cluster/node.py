"""This node in a cluster: its NATS connection and its camera leases (the relay of the
cameras it pulls, and of those it reads from others, is server/cluster/link.py's).

Leases are entries of a JetStream key-value bucket (`vigie_leases`, memory storage) whose
bucket-wide TTL is the lease: `create` claims a free camera, `update` with the last
revision renews it (compare-and-set: two nodes never both hold it), and a dead node's
entries expire by themselves. Debian's nats-server (2.9) has no per-key TTL. Live nodes
are entries of `vigie_nodes`, put every renew period. Both buckets are watched, so each
node knows every owner without asking; an entry not renewed within the lease is free.

Nothing home-made decides anything: no consensus or election of ours (DESIGN.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable

import nats
import nats.errors
import nats.js.errors
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError

from ingest.camera.worker import CameraWorker, stop_workers
from ingest.source.remote import FEEDS, RelayFeeds
from server.cluster import ownership
from server.cluster.kv import Seen, counts_elsewhere, open_bucket, quietly
from server.access.limits import ViewLimits
from server.cluster.link import RelayLink
from server.config import ClusterConfig
from server.runtime import Runtime

logger = logging.getLogger(__name__)

LEASES, NODES = "vigie_leases", "vigie_nodes"
WAKE = "vigie.cluster.wake"  # a node left or joined: look again now
EVENTS = "vigie.cluster.event."  # + a topic: a change one node made that every node makes
MAX_EVENT = 64 * 1024
HEARTBEAT_MAX = 256 * 1024  # a node's heartbeat, its open views' counts included


class ClusterNode:
    def __init__(self, settings: ClusterConfig, runtime: Runtime, web: str, rtsp: str,
                 feeds: RelayFeeds = FEEDS, tls: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self._tls = tls
        self.name = settings.node
        self.runtime = runtime
        self.web, self.rtsp = web, rtsp
        self.since = time.time()
        self.leases: dict[str, int] = {}     # cameras this node holds, by revision
        self.owners: dict[str, Seen] = {}    # every camera's owner, as watched
        self.nodes: dict[str, Seen] = {}     # live nodes' heartbeats, as watched
        self._nc: nats.NATS | None = None
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._to_restart: set[str] = set()
        self._releasing: set[str] = set()  # leases kept until this node stopped pulling them
        self._handed: set[str] = set()     # ... and stopped: their leases go next tick
        self._restart_wanted = asyncio.Event()
        self._generation = 0  # of the buckets: made again after NATS forgot them
        self._claims_after = 0.0  # monotonic time before which nothing is claimed
        self._leaving = False
        self.last_error = ""  # NATS's last complaint (a refused password, ...)
        self.journal = None  # server/cluster/journal.py's JournalLink, for /api/cluster
        # What this node does when another made a change (a reload, a wall edit), by topic:
        # set by the server's API once the node runs.
        self.handlers: dict[str, Callable[[dict], Awaitable[None]]] = {}
        self.view_limits: ViewLimits | None = None  # counted cluster-wide (set by the context)
        self._handling: set[asyncio.Task] = set()
        self._cpu_mark, self._cpu_share = (time.process_time(), time.monotonic()), 0.0
        # Pulled here: held, and not being given back.
        runtime.owns = lambda camera_id: camera_id in self.leases and camera_id not in self._releasing
        runtime.worker_started = self._worker_started
        self.relay = RelayLink(self.name, feeds, settings.lease_seconds, lambda camera_id: camera_id in self.leases,
                               lambda camera_id: runtime.config.camera(camera_id) is not None)

    async def async_start(self) -> None:
        lease = self.settings.lease_seconds
        self._nc = await nats.connect(
            self.settings.nats, name=f"vigie-{self.name}", connect_timeout=5, tls=self._tls,
            user=self.settings.user, password=self.settings.password(),
            user_credentials=self.settings.creds_path(),
            max_reconnect_attempts=-1, reconnect_time_wait=0.5,
            # A half-open link is noticed within a lease, not nats-py's default minutes.
            ping_interval=max(1, int(lease / 2)), max_outstanding_pings=2,
            error_cb=self._on_error, disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected)
        js = self._nc.jetstream()
        self._leases = await open_bucket(js, LEASES, lease, self.settings.replicas)
        self._nodes = await open_bucket(js, NODES, lease, self.settings.replicas)
        await self._nc.subscribe(WAKE, cb=self._on_wake)
        await self._nc.subscribe(EVENTS + "*", cb=self._on_event)
        await self.relay.async_start(self._nc)
        self._tasks = [asyncio.create_task(self._watch(LEASES, self.owners)),
                       asyncio.create_task(self._watch(NODES, self.nodes)),
                       asyncio.create_task(self._run()), asyncio.create_task(self._restart_forever())]
        logger.info("cluster: node %s joined through %s", self.name, ", ".join(self.settings.nats))

    async def async_stop(self) -> None:
        """SIGTERM: give every camera back at once (the others claim them on the wake-up),
        then leave."""
        self._leaving = True
        self.relay.stop()
        pending = set(self._tasks)
        for _ in range(5):  # no tick in flight. Cancelled again if a wait_for swallowed it
            for task in pending:  # (Python 3.11: a cancel that meets a completing wait)
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=1.0)
            if not pending:
                break
        # Stop pulling before the leases go: the others may claim them at once.
        pulled = [worker for camera_id in self.leases if (worker := self.runtime.workers.get(camera_id))]
        await asyncio.get_running_loop().run_in_executor(None, stop_workers, pulled)
        if self._nc is None or self._nc.is_closed:
            return
        try:
            for camera_id, revision in list(self.leases.items()):
                try:
                    await self._leases.delete(camera_id, last=revision)
                except KeyWrongLastSequenceError:
                    pass  # already another node's
            await self._nodes.delete(self.name)
            await self._nc.publish(WAKE, self.name.encode())
            await self._nc.flush(timeout=2)
            if self.leases:
                logger.info("cluster: handed over %d camera(s)", len(self.leases))
        except Exception as error:  # noqa: BLE001 - leaving anyway: the leases expire
            logger.warning("cluster: hand-over incomplete (%s); leases expire by themselves", error)
        self.leases.clear()
        await self._nc.close()

    async def _watch(self, name: str, seen: dict[str, Seen]) -> None:
        """Follow a bucket. Every node puts a heartbeat each renew period, so a watch that
        hears nothing for three leases is broken (NATS restarted): it is made again."""
        quiet = 3 * self.settings.lease_seconds
        while True:
            try:
                bucket = self._leases if name == LEASES else self._nodes
                generation = self._generation
                watcher = await bucket.watchall()
                while generation == self._generation:
                    try:
                        entry = await watcher.updates(timeout=quiet)
                    except nats.errors.TimeoutError:
                        break
                    if entry is None:
                        continue  # the initial values are all in
                    if entry.operation in ("DEL", "PURGE"):
                        seen.pop(entry.key, None)
                        self._wake.set()
                    else:
                        seen[entry.key] = Seen((entry.value or b"").decode(errors="replace")[:HEARTBEAT_MAX],
                                               time.monotonic())
                await quietly(watcher.stop())
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - NATS away: watch again when back
                logger.debug("cluster: watch of %s interrupted (%s)", name, error)
                await asyncio.sleep(0.5)

    def jetstream(self):
        return self._nc.jetstream()

    @property
    def connected(self) -> bool:
        return bool(self._nc and self._nc.is_connected)

    def live_nodes(self) -> list[str]:
        now, lease = time.monotonic(), self.settings.lease_seconds
        live = {name for name, seen in self.nodes.items() if now - seen.at <= lease}
        return sorted(live | {self.name})

    def owner(self, camera_id: str) -> str | None:
        if camera_id in self.leases:
            return self.name
        seen = self.owners.get(camera_id)
        if seen is None or time.monotonic() - seen.at > self.settings.lease_seconds:
            return None
        return seen.value

    async def _run(self) -> None:
        while not self._leaving:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - cut off from NATS: keep what we pull
                logger.warning("cluster: %s; keeping this node's cameras meanwhile", error)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._next_tick())
            except TimeoutError:
                pass

    def _count_elsewhere(self, live: list[str]) -> None:
        """Views and mosaics open on the other live nodes, as their heartbeats say."""
        views, mosaics = counts_elsewhere(seen.value for name, seen in list(self.nodes.items())
                                          if name in live and name != self.name)
        if self.view_limits is not None:
            self.view_limits.elsewhere = views
        self.runtime.mosaics_elsewhere = mosaics

    def _next_tick(self) -> float:
        """Seconds to the next tick: a renew period, or less if another node's lease goes
        stale before (a dead node's cameras are claimed the moment they can be, not up to a
        renew period later: failover within 5 s with a 3 s lease)."""
        now, lease = time.monotonic(), self.settings.lease_seconds
        stale = [seen.at + lease for seen in list(self.owners.values()) if seen.at + lease > now]
        return max(0.05, min([self.settings.renew_seconds, *(moment - now + 0.05 for moment in stale)]))

    async def _give_back(self) -> None:
        """Delete the leases of cameras this node has stopped pulling."""
        handed, self._handed = sorted(self._handed), set()
        for camera_id in handed:
            self._releasing.discard(camera_id)
            revision = self.leases.pop(camera_id, None)
            if revision is not None:
                await quietly(self._leases.delete(camera_id, last=revision))
        if handed:
            logger.info("cluster: handed over %s", ", ".join(handed))
            await self._nc.publish(WAKE, self.name.encode())

    async def _tick(self) -> None:
        try:
            await self._nodes.put(self.name, json.dumps(self.heartbeat()).encode())
        except (NotFoundError, nats.js.errors.ServiceUnavailableError, nats.js.errors.NoStreamResponseError):
            # NATS restarted and its memory buckets are gone: made again (by whichever
            # node comes first), and the leases held are claimed again by the renewals.
            js = self._nc.jetstream()
            self._leases = await open_bucket(js, LEASES, self.settings.lease_seconds, self.settings.replicas)
            self._nodes = await open_bucket(js, NODES, self.settings.lease_seconds, self.settings.replicas)
            self._generation += 1
            # Other nodes' leases and heartbeats come back with their next renewals: claim
            # nothing before they had a lease to do so, or their cameras would move for nothing.
            self._claims_after = time.monotonic() + self.settings.lease_seconds
            logger.warning("cluster: NATS had lost the buckets (restarted?): made again")
            await self._nodes.put(self.name, json.dumps(self.heartbeat()).encode())
        own = self.nodes.get(self.name)
        if time.time() - self.since > self.settings.lease_seconds and (
                own is None or time.monotonic() - own.at > 2 * self.settings.renew_seconds + 1):
            # Our own heartbeats no longer come back: the watches follow buckets NATS lost
            # (another node made them again). Watched anew.
            self._generation += 1
            self._claims_after = time.monotonic() + self.settings.lease_seconds
        await self.relay.async_announce([(camera_id, worker) for camera_id in list(self.leases)
                                         if (worker := self.runtime.workers.get(camera_id))])
        await self._give_back()
        lost = await self._renew()
        live = self.live_nodes()
        self._count_elsewhere(live)
        # Shares count the cameras some live node may pull; the ones only this node may
        # pull are its own whatever its share (ownership.py).
        reach = ownership.reachable({camera.id: camera.nodes for camera in self.runtime.config.cameras}, live)
        assignable = [camera_id for camera_id, nodes in reach.items() if nodes]
        pinned = [camera_id for camera_id in assignable if reach[camera_id] == {self.name}]
        eligible = [camera_id for camera_id in assignable if self.name in reach[camera_id]]
        free = [camera_id for camera_id in eligible if self.owner(camera_id) is None
                and time.monotonic() >= self._claims_after]
        gained = []
        for camera_id in ownership.to_claim(self.name, eligible, free, len(self.leases), len(assignable),
                                            len(live), pinned):
            try:
                self.leases[camera_id] = await self._leases.create(camera_id, self.name.encode())
                gained.append(camera_id)
                # Relayed in full from its first keyframe: a node that watched it from its
                # last owner says so again within a renew period, too late for a failover.
                self.relay.wants.heard(camera_id)
            except KeyWrongLastSequenceError:
                continue  # another node was quicker
        counts = {node: 0 for node in live}
        for camera_id in assignable:
            owner = self.owner(camera_id)
            if owner in counts:
                counts[owner] += 1
        # Given back only to a node that is short and may pull it (cameras[].nodes).
        short = {node for node, count in counts.items() if count < len(assignable) // len(live)}
        keeping = [camera_id for camera_id in self.leases
                   if camera_id not in self._releasing and camera_id in reach]
        movable = [camera_id for camera_id in keeping if reach[camera_id] & short]
        released = ownership.to_release(self.name, keeping, len(assignable), counts, movable)
        # A reload removed the camera, or took this node out of its cameras[].nodes.
        released += [camera_id for camera_id in self.leases
                     if camera_id not in self._releasing and self.name not in reach.get(camera_id, ())]
        # Given back in order: this node stops pulling first, keeping the lease meanwhile,
        # then the lease goes (_restart_forever): two nodes never pull it at once.
        self._releasing.update(released)
        for verb, group in (("claimed", gained), ("lost", lost), ("handing over", released)):
            if group:
                logger.info("cluster: %s %s", verb, ", ".join(sorted(group)))
        changed = gained + lost + released
        if changed:
            # Restarting workers takes seconds (threads joined, cameras reconnected): never
            # in this loop, whose renewals must not wait for it.
            self._to_restart.update(changed)
            self._restart_wanted.set()

    async def _restart_forever(self) -> None:
        """Apply ownership changes to the workers, one batch at a time."""
        while True:
            await self._restart_wanted.wait()
            self._restart_wanted.clear()
            batch, self._to_restart = sorted(self._to_restart), set()
            try:
                await self.runtime.async_restart_cameras(batch)
            except Exception:  # noqa: BLE001 - logged; the next change tries again
                logger.exception("cluster: restarting %s failed", ", ".join(batch))
            # No longer pulled here: their leases go at the next tick (the one writer of
            # the lease bucket: a renewal and a deletion never cross).
            self._handed.update(c for c in batch if c in self._releasing)
            if self._handed:
                self._wake.set()

    async def _renew(self) -> list[str]:
        lost = []
        for camera_id, revision in list(self.leases.items()):
            try:
                self.leases[camera_id] = await self._leases.update(camera_id, self.name.encode(), last=revision)
                continue
            except (KeyWrongLastSequenceError, NotFoundError):
                pass
            try:
                # The entry expired without anyone taking it (this node was cut off a while,
                # or NATS restarted and forgot it): claimed again, the camera goes on here.
                self.leases[camera_id] = await self._leases.create(camera_id, self.name.encode())
            except KeyWrongLastSequenceError:
                # Another node holds it now (this one was cut off longer than a lease):
                # stop pulling it; from here on it is pulled once again.
                del self.leases[camera_id]
                self._releasing.discard(camera_id)
                lost.append(camera_id)
        return lost

    def heartbeat(self) -> dict:
        # CPU share: this process's CPU seconds per second since the last heartbeat.
        cpu, now = time.process_time(), time.monotonic()
        last_cpu, last_now = self._cpu_mark
        if now - last_now > 0.5:
            self._cpu_share, self._cpu_mark = (cpu - last_cpu) / (now - last_now), (cpu, now)
        return {"node": self.name, "web": self.web, "rtsp": self.rtsp, "since": round(self.since, 3),
                "cameras": len(self.leases), "cpu": round(self._cpu_share, 3),
                "config": self.runtime.config.fingerprint(),
                # What counts against the limits cluster-wide (server/access/limits.py).
                "views": self.view_limits.counts() if self.view_limits else {},
                "mosaics": self.runtime.mosaics_held(),
                "viewers": sum(stream.viewer_count for stream in self.runtime.streams())}

    async def _on_error(self, error: Exception) -> None:
        self.last_error = str(error)[:200] or type(error).__name__
        logger.debug("cluster: NATS: %s", error)

    async def _on_disconnected(self) -> None:
        if not self._leaving:
            logger.warning("cluster: disconnected from NATS; this node's cameras and viewers go on")

    async def _on_reconnected(self) -> None:
        logger.info("cluster: reconnected to NATS")
        # As after a restart of NATS: the others' renewals come first.
        self._claims_after = time.monotonic() + self.settings.lease_seconds

    def _worker_started(self, camera_id: str, worker: CameraWorker) -> None:
        if self.runtime.owns(camera_id):  # not a relay worker: those never publish back
            self.relay.worker_started(camera_id, worker)

    async def async_tell(self, topic: str, payload: dict) -> None:
        """Tell every other node of a change made here (they make it too)."""
        if self.connected:
            await quietly(self._nc.publish(EVENTS + topic, json.dumps({**payload, "from": self.name}).encode()))

    async def _on_event(self, message) -> None:
        topic = message.subject[len(EVENTS):]
        try:
            payload = json.loads(message.data[:MAX_EVENT]) if len(message.data) <= MAX_EVENT else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or topic not in self.handlers:
            self.relay.dropped_messages += 1
            return
        if payload.get("from") == self.name:
            return
        task = asyncio.create_task(self.handlers[topic](payload))
        self._handling.add(task)
        task.add_done_callback(self._handled)

    def _handled(self, task: asyncio.Task) -> None:
        self._handling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("cluster: a change another node made failed here", exc_info=task.exception())

    async def _on_wake(self, message) -> None:
        if message.data.decode(errors="replace") != self.name:
            self._wake.set()
