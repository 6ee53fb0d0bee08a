"""The journal of camera health: each stream outage (offline, stalled) and each picture
condition (ingest/camera/picture_health.py) of the cameras this node pulls, written with its
start and, once over, its end. What availability is computed from (availability.py).

Once a second, on the event loop, the cameras' statuses (plain `Observation`s made by the
app from the workers: this package imports no ingest code) are compared with the periods
open here; only a change writes. A period belongs to an incident (a random key): a stream
outage that goes from offline to stalled stays one incident, and so does one cut by a
restart of Vigie (the period ended at the last sign of life goes on under the same key) or
by the camera moving to another node of a cluster (the new node takes the incident the old
one ended, or still has open, in the replicated journal).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from server.audit.journal import AuditJournal
from server.audit.rows import PICTURE_KIND, RUN_KIND, STREAM_KIND

logger = logging.getLogger(__name__)

OBSERVE_INTERVAL = 1.0  # seconds between looks at the cameras' statuses
ALIVE_INTERVAL = 10.0   # seconds between signs of life: at most this much of a crash is counted as run
CARRY_FOR = 120.0       # seconds after a start during which an incident cut by the restart goes on
DOWN_STATES = frozenset({"offline", "stalled"})

Key = tuple[str, str, str]  # (camera, kind, state)


@dataclass(frozen=True)
class Observation:
    """What a camera's status says now, in plain values."""

    camera: str
    commune: str
    stream: str                                   # live | stalled | offline | connecting
    stream_since: float                           # wall time the stream state began
    conditions: tuple[tuple[str, float], ...]     # raised picture conditions, with their start
    ended: tuple[tuple[str, float, float], ...]   # cleared ones: (condition, since, until)


@dataclass(frozen=True)
class Incident:
    key: str      # random, the same on every period of the incident
    since: float  # when its first period began


@dataclass
class _Open:
    entry_id: int
    start: float
    incident: Incident


def new_incident(since: float) -> Incident:
    return Incident(secrets.token_hex(8), since)


def previous_run_end(connection: sqlite3.Connection) -> float | None:
    """When this node's previous run ended (a crash: at its last sign of life; a stop: at
    the stop); its open periods ended then too (journal.py)."""
    previous = connection.execute(  # the newest run is this one (journal.py writes it at open)
        "SELECT end_time FROM journal WHERE kind = ? AND kind <> 'view' AND origin IS NULL "
        "ORDER BY id DESC LIMIT 1 OFFSET 1", (RUN_KIND,)).fetchone()
    return previous["end_time"] if previous is not None else None


def continued_incident(connection: sqlite3.Connection, key: Key, start: float,
                       previous_end: float | None) -> Incident | None:
    """The incident a new period of `key` goes on with, if the last period of that camera
    and state ended only because Vigie stopped seeing the camera:
    - another node still has it open (its end not told yet), or ended it as 'unobserved'
      or 'node_lost' at most CARRY_FOR seconds before `start` (the camera moved: a failover
      does not split an outage);
    - this node ended it when its previous run ended (`previous_end`, given only just after
      a start: an upgrade or a crash does not split an outage either).
    A later period of the same state that ended normally means the problem was over."""
    camera, kind, state = key
    row = connection.execute(
        "SELECT time, end_time, close_reason, origin, json_extract(detail, '$.incident') AS incident, "
        "json_extract(detail, '$.incident_since') AS since FROM journal "
        "WHERE id IN (SELECT entry_id FROM journal_camera WHERE camera = ?) AND kind = ? AND kind <> 'view' "
        "AND json_extract(detail, '$.state') = ? ORDER BY time DESC LIMIT 1", (camera, kind, state)).fetchone()
    if row is None or not isinstance(row["incident"], str):
        return None
    end, reason, elsewhere = row["end_time"], row["close_reason"], row["origin"] is not None
    goes_on = (end is None and elsewhere) \
        or (reason in ("unobserved", "node_lost") and end >= start - CARRY_FOR) \
        or (reason in ("server_restart", "shutdown") and not elsewhere and end == previous_end)
    if not goes_on:
        return None
    return Incident(row["incident"], row["since"] if isinstance(row["since"], (int, float)) else row["time"])


class CameraHistory:
    def __init__(self, journal: AuditJournal, observe: Callable[[], Sequence[Observation]]) -> None:
        """`observe`: the statuses of the cameras this node pulls (in a cluster, the ones it
        holds the lease of), read on the event loop."""
        self._journal = journal
        self._observe = observe
        self._open: dict[Key, _Open] = {}
        self._previous_end: float | None = None
        self._carry_until = 0.0  # monotonic

    async def async_start(self) -> None:
        """After this node's start: incidents its previous run left open may go on."""
        self._previous_end = await self._journal.async_in_db(previous_run_end)
        # Long enough for a camera that was down to fail its first connection, and for a
        # picture condition to hold again.
        self._carry_until = time.monotonic() + CARRY_FOR

    async def async_run(self) -> None:
        """Forever: observe every OBSERVE_INTERVAL, a sign of life every ALIVE_INTERVAL."""
        await self.async_start()
        alive_at = time.monotonic()
        while True:
            try:
                await self.async_observe(time.time())
                if time.monotonic() - alive_at >= ALIVE_INTERVAL:
                    alive_at = time.monotonic()
                    await self._journal.async_alive()
            except Exception:  # noqa: BLE001 - a full disk, a locked file: logged, tried again next second
                logger.exception("camera history: could not write")
            await asyncio.sleep(OBSERVE_INTERVAL)

    async def async_observe(self, now: float) -> None:
        """One look: periods that ended are ended, new ones begin."""
        wanted: dict[Key, tuple[float, str]] = {}  # key -> (start, commune)
        seen: dict[str, Observation] = {}
        for observation in self._observe():
            seen[observation.camera] = observation
            if observation.stream in DOWN_STATES:
                wanted[(observation.camera, STREAM_KIND, observation.stream)] = (
                    observation.stream_since, observation.commune)
            for condition, since in observation.conditions:
                wanted[(observation.camera, PICTURE_KIND, condition)] = (since, observation.commune)
        going_on: dict[str, Incident] = {}  # camera -> incident of a stream outage that changes state
        for key in [key for key in self._open if key not in wanted]:
            period = self._open[key]
            camera, kind, state = key
            end, reason = _end_of(seen.get(camera), kind, state, period.start, now)
            # Forgotten only once written: a failed write is tried again at the next look.
            await self._journal.async_period_closed(period.entry_id, end, reason)
            del self._open[key]
            if kind == STREAM_KIND and reason == "closed" and any(
                    k[0] == camera and k[1] == STREAM_KIND and k not in self._open for k in wanted):
                going_on[camera] = period.incident
        previous_end = self._previous_end if time.monotonic() < self._carry_until else None
        for key, (start, commune) in wanted.items():
            if key in self._open:
                continue
            camera, kind, state = key
            start = min(start, now)
            incident = (going_on.pop(camera, None) if kind == STREAM_KIND else None) \
                or await self._journal.async_in_db(continued_incident, key, start, previous_end) \
                or new_incident(start)
            entry_id = await self._journal.async_period_opened(kind, camera, commune, state=state, start=start,
                                                               incident=incident.key,
                                                               incident_since=incident.since)
            self._open[key] = _Open(entry_id, start, incident)


def _end_of(observation: Observation | None, kind: str, state: str, start: float,
            now: float) -> tuple[float, str]:
    """When a period that is no longer seen ended, and why."""
    if observation is None:  # no longer pulled here: moved to another node, or removed
        return now, "unobserved"
    if kind == STREAM_KIND:
        return min(max(observation.stream_since, start), now), "closed"
    for condition, since, until in observation.ended:
        if condition == state and abs(since - start) < 1e-3:
            return min(until, now), "closed"
    return now, "closed"
