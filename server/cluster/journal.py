"""One journal for the whole cluster: every node publishes its journal's changes to a
JetStream stream (`VIGIE_JOURNAL`, file storage, kept as long as the journal's retention),
and every node writes the other nodes' changes into its own SQLite journal in stream order,
so `/api/audit` on any node lists every view and event, whichever node served it.

Nothing is lost when a node dies: a change stays in the node's own journal until NATS has
acknowledged it (server/audit/replica.py), and is told when the node comes back; the views
it had open are closed as 'node_lost' by the others meanwhile, then take their true end
when it tells it. A node that joins reads the stream from its start: the whole journal of
the retention period. A malformed message is dropped and counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from server.audit import AuditJournal
from server.audit.replica import apply, check, close_rows_of_lost_nodes, forget_changes, pending_changes
from server.cluster.node import ClusterNode

logger = logging.getLogger(__name__)

STREAM = "VIGIE_JOURNAL"
SUBJECT = "vigie.journal."  # + the node's name
BATCH = 200
POLL_SECONDS = 0.5
MAX_MESSAGE = 64 * 1024


class JournalLink:
    def __init__(self, node: ClusterNode, journal: AuditJournal) -> None:
        self._node = node
        self._journal = journal
        self._tasks: list[asyncio.Task] = []
        self.dropped = 0     # malformed messages
        self.published = 0   # changes of this node acknowledged by NATS
        self.applied = 0     # other nodes' changes written here

    async def async_start(self) -> None:
        js = self._node.jetstream()
        config = StreamConfig(name=STREAM, subjects=[SUBJECT + "*"], storage=StorageType.FILE,
                              max_age=self._journal.retention_days * 86400.0, duplicate_window=120.0,
                              num_replicas=self._node.settings.replicas)
        try:
            await js.stream_info(STREAM)
        except NotFoundError:
            await js.add_stream(config)
        durable = f"journal_{self._node.name}"
        self._subscription = await js.pull_subscribe(
            SUBJECT + "*", durable=durable, stream=STREAM,
            config=ConsumerConfig(durable_name=durable, deliver_policy=DeliverPolicy.ALL,
                                  ack_policy=AckPolicy.EXPLICIT, max_ack_pending=10 * BATCH))
        self._tasks = [asyncio.create_task(self._publish_forever()), asyncio.create_task(self._read_forever()),
                       asyncio.create_task(self._close_lost_forever())]

    async def async_stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _publish_forever(self) -> None:
        js, subject = self._node.jetstream(), SUBJECT + self._node.name
        while True:
            try:
                upto, messages = await self._journal.async_in_db(pending_changes, BATCH)
                for message in messages:
                    await js.publish(subject, json.dumps(message).encode(), timeout=5,
                                     headers={"Nats-Msg-Id": f"{self._node.name}:{message['op']}:{message['id']}"})
                    self.published += 1
                if upto:
                    await self._journal.async_in_db(forget_changes, upto)
                if len(messages) == BATCH:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - NATS away: the changes wait in SQLite
                logger.debug("cluster: journal not published yet (%s)", error)
                await asyncio.sleep(1.0)
            await asyncio.sleep(POLL_SECONDS)

    async def _read_forever(self) -> None:
        while True:
            try:
                batch = await self._subscription.fetch(BATCH, timeout=1.0)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - NATS away: read on when back
                logger.debug("cluster: journal not read (%s)", error)
                await asyncio.sleep(1.0)
                continue
            by_node: dict[str, list[dict]] = {}
            order: list[str] = []
            for message in batch:
                node = message.subject[len(SUBJECT):]
                if node == self._node.name:
                    continue  # written here already
                try:
                    if len(message.data) > MAX_MESSAGE:
                        raise ValueError("too long")
                    checked = check(node, json.loads(message.data))
                except ValueError:
                    self.dropped += 1
                    continue
                if node not in by_node:
                    order.append(node)
                by_node.setdefault(node, []).append(checked)
            try:
                for node in order:  # each node's changes in their order
                    await self._journal.async_in_db(apply, node, by_node[node])
                    self.applied += len(by_node[node])
            except Exception:  # noqa: BLE001 - not acknowledged: delivered again
                logger.exception("cluster: the journal could not write other nodes' changes")
                await asyncio.sleep(1.0)
                continue
            for message in batch:
                try:
                    await message.ack()
                except Exception:  # noqa: BLE001 - delivered again: written once (origin)
                    pass

    async def _close_lost_forever(self) -> None:
        """Views of nodes that vanished are closed here (a node that left in order told
        their ends itself)."""
        started = time.monotonic()
        lease = self._node.settings.lease_seconds
        checked: list[str] | None = None  # the live nodes at the last pass (the first runs at once)
        while True:
            await asyncio.sleep(self._node.settings.renew_seconds)
            if time.monotonic() - started < 2 * lease or not self._node.connected:
                continue  # the other nodes' heartbeats are not all in yet, or unknown
            live = self._node.live_nodes()
            if live == checked:
                continue  # nobody vanished since
            try:
                closed = await self._journal.async_in_db(close_rows_of_lost_nodes, live, time.time())
            except Exception:  # noqa: BLE001 - tried again next period
                logger.exception("cluster: views of lost nodes not closed")
                continue
            checked = live
            if closed:
                logger.info("cluster: %d view(s) of nodes that vanished closed as node_lost", closed)
