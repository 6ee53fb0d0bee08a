"""The viewing journal: who viewed which camera or wall, when, from where, and for how long.

French law asks a supervision centre to trace every viewing of its cameras, so the journal
is append-only: a row is written once, a view gets its end filled in exactly once, and rows
leave only by the retention purge. SQLite triggers refuse any other change.

SQLite blocks, and the event loop must not, so every statement runs on one dedicated worker
thread. One thread also serialises the writes and keeps the connection on the thread that
made it. Each call commits before it returns (WAL, synchronous=NORMAL): a `kill -9` loses no
committed row; only a power cut may lose the last few. Views left open by a dead process
are closed at the next start with reason 'server_restart'.

Cameras and communes of a row live in side tables as well as in the row, so that a filter
on "cam1" matches that exact camera and never "cam10".
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from server.audit.schema import MIGRATIONS as _MIGRATIONS, SCHEMA_VERSION
from server.audit.rows import (HEALTH_KINDS, LASTING_KINDS, LASTING_SQL, RUN_KIND, VIEW_KIND, Client, DetailValue,
                               JournalRow, _entry, _json, _row, _safe_detail, _unique)

logger = logging.getLogger(__name__)

VIEW_TARGETS = frozenset({"wall", "camera", "mosaic"})
QUERY_LIMIT_MAX = 100_000
_T = TypeVar("_T")

# What a purge may delete: views (and other lasting rows) that ended and events, both older
# than the cutoff.
# Planned works (and their cancellation) are kept until the works end, however long after
# they were declared (server/audit/incidents.py).
_PURGEABLE = (f"(CASE WHEN {LASTING_SQL} THEN end_time IS NOT NULL AND end_time < :cutoff "
              "WHEN kind IN ('works_planned', 'works_cancelled') "
              "THEN MAX(time, COALESCE(json_extract(detail, '$.end'), 0)) < :cutoff "
              "ELSE time < :cutoff END)")
# Vigie itself, on the rows it writes of its own accord (runs, camera health).
SYSTEM = Client("vigie", "system", "", "")
class AuditError(Exception):
    """The journal cannot record: not opened, already closed, or a newer schema on disk."""


class AuditJournal:
    """The append-only journal in one SQLite file. Methods named async_* run on the loop;
    methods named _db_* run on the worker thread only and own the connection."""

    def __init__(self, path: str | os.PathLike[str], retention_days: int = 90, node: str = "") -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self.path = Path(path)
        self.retention_days = retention_days
        self.node = node  # in a cluster, this node's name: on every row it writes
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigie-audit")
        self._connection: sqlite3.Connection | None = None  # worker thread only
        self._opened = False
        self._closed = False

    # -- loop side -----------------------------------------------------------------------

    async def async_open(self) -> int:
        """Create or migrate the journal, close the views a dead process left open, purge.
        Returns how many views were closed with reason 'server_restart'."""
        if self._opened or self._closed:
            raise AuditError("the audit journal is opened once")
        now = time.time()
        restarted = await self._async_run(self._db_open, now)
        self._opened = True
        purged = await self._async_run(self._db_purge, now)
        logger.info("audit journal %s open: %d view(s) closed after restart, %d row(s) purged",
                    self.path, restarted, purged)
        return restarted

    async def async_close(self) -> None:
        """Close the views still open with reason 'shutdown', then the database and thread.
        Safe to call twice, and before open."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._opened:
                closed = await self._async_run(self._db_shutdown, time.time())
                logger.info("audit journal closed: %d view(s) ended by shutdown", closed)
        finally:
            # The join is quick (the queue is empty) but still not done on the loop.
            await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)

    async def async_view_opened(self, client: Client, *, target_kind: str, target_id: str,
                                cameras: Sequence[str], communes: Sequence[str],
                                output: str) -> int:
        """Record that a view starts now; returns its id for `async_view_closed`.

        If the caller is cancelled while the row is being written, the view is closed with
        reason 'cancelled' once written, since nobody else will ever know its id."""
        self._check_open()
        if target_kind not in VIEW_TARGETS:
            raise ValueError(f"unknown view target kind {target_kind!r}")
        row = _entry(VIEW_KIND, client, time.time(), target_kind=target_kind, target=target_id,
                     output=output, detail=None)
        future = self._submit(self._db_insert, row, _unique(cameras), _unique(communes))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(self._close_orphan_view)
            raise

    async def async_view_closed(self, view_id: int, reason: str = "closed",
                                bytes_sent: int | None = None) -> None:
        """Fill in the end and duration of a view. Idempotent: only the first close counts,
        and after `async_close` (which ended the view as 'shutdown') it does nothing."""
        if self._closed:
            logger.debug("audit journal closed; view %d was ended by the shutdown", view_id)
            return
        self._check_open()
        await self._async_run(self._db_close_view, view_id, time.time(), reason, bytes_sent)

    async def async_event(self, kind: str, client: Client, *, target: str | None = None,
                          cameras: Sequence[str] = (), communes: Sequence[str] = (),
                          detail: Mapping[str, DetailValue] | None = None) -> None:
        """Record a one-off event: login, login_failed, logout, snapshot, wall_change,
        config_reload, access_denied..."""
        self._check_open()
        if not kind or kind == VIEW_KIND:
            raise ValueError(f"invalid event kind {kind!r}")
        row = _entry(kind, client, time.time(), target_kind=None, target=target, output=None,
                     detail=_safe_detail(detail))
        await self._async_run(self._db_insert, row, _unique(cameras), _unique(communes))

    async def async_period_opened(self, kind: str, camera: str, commune: str, *, state: str,
                                  start: float, incident: str, incident_since: float) -> int:
        """A camera's stream outage or picture condition that began at `start` (a wall time,
        possibly past: conditions are raised after holding), of the incident `incident`
        begun at `incident_since` (earlier when a restart cut it); returns its id."""
        self._check_open()
        if kind not in LASTING_KINDS or kind in (VIEW_KIND, RUN_KIND):
            raise ValueError(f"not a camera period kind: {kind!r}")
        row = _entry(kind, SYSTEM, start, target_kind="camera", target=camera, output=None,
                     detail={"state": state, "incident": incident, "incident_since": incident_since})
        return await self._async_run(self._db_insert, row, [camera], [commune])

    async def async_period_closed(self, entry_id: int, end: float, reason: str = "closed") -> None:
        """The end of a camera period (or of a run); only the first end counts."""
        self._check_open()
        await self._async_run(self._db_end_lasting, end, reason, entry_id)

    async def async_alive(self, now: float | None = None) -> None:
        """This node's sign of life: where a run cut short by a crash is ended at its next
        start (time after it is unknown, not an outage)."""
        self._check_open()
        await self._async_run(self._db_alive, time.time() if now is None else now)

    async def async_query(self, *, user: str | None = None, camera: str | None = None,
                          commune: str | None = None, since: float | None = None,
                          until: float | None = None, kinds: Sequence[str] | None = None,
                          limit: int = 1000, offset: int = 0) -> list[JournalRow]:
        """Views and events, newest first. `since`/`until` keep rows overlapping the range:
        a view counts if it was open at any moment of it, an open view until now. Camera
        health and runs (HEALTH_KINDS) come only when `kinds` names them."""
        self._check_open()
        if not 1 <= limit <= QUERY_LIMIT_MAX or offset < 0:
            raise ValueError(f"limit must be 1..{QUERY_LIMIT_MAX} and offset >= 0")
        if isinstance(kinds, str):
            raise TypeError("kinds is a sequence of kinds, not one string")
        if kinds is not None and not kinds:
            return []
        clauses: list[str] = []
        params: list[Any] = []
        if user is not None:
            clauses.append("user_name = ?")
            params.append(user)
        if camera is not None:
            clauses.append("id IN (SELECT entry_id FROM journal_camera WHERE camera = ?)")
            params.append(camera)
        if commune is not None:
            clauses.append("id IN (SELECT entry_id FROM journal_commune WHERE commune = ?)")
            params.append(commune)
        if since is not None:
            clauses.append(f"(CASE WHEN {LASTING_SQL} THEN end_time IS NULL OR end_time >= ? "
                           "ELSE time >= ? END)")
            params += [since, since]
        if until is not None:
            clauses.append("time <= ?")
            params.append(until)
        if kinds is not None:
            clauses.append(f"kind IN ({', '.join('?' * len(kinds))})")
            params += list(kinds)
        else:  # the viewing journal: camera health and runs only when asked for by kind
            clauses.append(f"kind NOT IN ({', '.join('?' * len(HEALTH_KINDS))})")
            params += list(HEALTH_KINDS)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT * FROM journal {where} ORDER BY time DESC, id DESC LIMIT ? OFFSET ?"
        return await self._async_run(self._db_select, sql, (*params, limit, offset))

    async def async_purge(self, now: float | None = None) -> int:
        """Delete the views that ended and the events older than `retention_days` before
        `now`; returns how many rows went. Open views are kept whatever their age."""
        self._check_open()
        return await self._async_run(self._db_purge, time.time() if now is None else now)

    async def async_in_db(self, job: Callable[..., _T], *args: Any) -> _T:
        """Run `job(connection, *args)` on the journal's thread (server/audit/replica.py)."""
        self._check_open()
        return await self._async_run(lambda *a: job(self._db(), *a), *args)

    def _check_open(self) -> None:
        if not self._opened or self._closed:
            raise AuditError("the audit journal is not open")

    def _submit(self, job: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        return asyncio.get_running_loop().run_in_executor(self._executor, job, *args)

    async def _async_run(self, job: Callable[..., _T], *args: Any) -> _T:
        """Run `job` on the worker thread. Shielded: a cancelled caller must not cancel a
        queued write (the executor drops a job whose future is cancelled before it starts)."""
        return await asyncio.shield(self._submit(job, *args))

    def _close_orphan_view(self, future: asyncio.Future[int]) -> None:
        if future.cancelled() or future.exception() is not None or self._closed:
            return
        closing = self._submit(self._db_close_view, future.result(), time.time(), "cancelled")
        closing.add_done_callback(_log_failure)

    # -- worker thread -------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise AuditError("the audit journal database is not open")
        return self._connection

    def _db_open(self, now: float) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Personal data: owner-only. SQLite gives the -wal and -shm files the same mode.
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        # isolation_level=None: autocommit, every statement outside BEGIN commits at once.
        connection = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            connection.row_factory = sqlite3.Row
            if connection.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise AuditError(f"cannot put {self.path} in WAL mode")
            connection.execute("PRAGMA synchronous = NORMAL")
            self._connection = connection
            self._db_migrate()
            if not self.node:  # alone: no cluster reads the changes (see _db_purge)
                connection.execute("DELETE FROM journal_changes")
            views = self._db_end_open_views(now, "server_restart")
            # Runs and camera periods a crash left open end at the last sign of life.
            alive = connection.execute("SELECT at FROM node_alive WHERE node = ?", (self.node,)).fetchone()
            self._db_end_lasting(alive[0] if alive else now, "server_restart")
            self._db_insert(_entry(RUN_KIND, SYSTEM, now, target_kind=None, target=self.node or None,
                                   output=None, detail=None), [], [])
            self._db_alive(now)
            return views
        except BaseException:
            self._connection = None
            connection.close()
            raise

    def _db_migrate(self) -> None:
        connection = self._db()
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise AuditError(f"{self.path} has schema {version}, newer than this Vigie "
                             f"({SCHEMA_VERSION})")
        for step in range(version, SCHEMA_VERSION):
            # executescript() commits first, so the step and its version go in one script.
            connection.executescript(f"BEGIN IMMEDIATE; {_MIGRATIONS[step]}; "
                                     f"PRAGMA user_version = {step + 1}; COMMIT;")
            logger.info("audit journal %s migrated to schema %d", self.path, step + 1)

    def _db_end_open_views(self, now: float, reason: str) -> int:
        cursor = self._db().execute(
            "UPDATE journal SET end_time = :now, duration = MAX(0.0, :now - time), "
            "close_reason = :reason WHERE kind = 'view' AND end_time IS NULL AND origin IS NULL",
            {"now": now, "reason": reason})
        return cursor.rowcount

    def _db_end_lasting(self, at: float, reason: str, entry_id: int | None = None) -> None:
        """A run or camera period still open (`entry_id`), or all of this node's, ended at
        `at` (never before their start)."""
        which = "id = :id" if entry_id is not None else "origin IS NULL"
        self._db().execute(
            "UPDATE journal SET end_time = MAX(time, :at), duration = MAX(0.0, :at - time), "
            f"close_reason = :reason WHERE {which} AND {LASTING_SQL} AND kind <> 'view' AND end_time IS NULL",
            {"at": at, "reason": reason, "id": entry_id})

    def _db_alive(self, now: float) -> None:
        self._db().execute("INSERT INTO node_alive (node, at) VALUES (?, ?) "
                           "ON CONFLICT (node) DO UPDATE SET at = excluded.at", (self.node, now))

    def _db_shutdown(self, now: float) -> int:
        try:
            self._db_end_lasting(now, "shutdown")
            return self._db_end_open_views(now, "shutdown")
        finally:
            self._db().close()
            self._connection = None

    def _db_insert(self, row: dict[str, Any], cameras: list[str], communes: list[str]) -> int:
        connection = self._db()
        row = {**row, "cameras": _json(cameras), "communes": _json(communes), "node": self.node}
        with _transaction(connection):
            columns = ", ".join(row)  # our own keys, from _entry; values are bound
            cursor = connection.execute(
                f"INSERT INTO journal ({columns}) VALUES ({', '.join(':' + k for k in row)})", row)
            entry_id = cursor.lastrowid
            assert entry_id is not None
            connection.executemany("INSERT INTO journal_camera (entry_id, camera) VALUES (?, ?)",
                                   [(entry_id, camera) for camera in cameras])
            connection.executemany("INSERT INTO journal_commune (entry_id, commune) VALUES (?, ?)",
                                   [(entry_id, commune) for commune in communes])
        return entry_id

    def _db_close_view(self, view_id: int, now: float, reason: str,
                       bytes_sent: int | None = None) -> None:
        cursor = self._db().execute(
            "UPDATE journal SET end_time = :now, duration = MAX(0.0, :now - time), "
            "close_reason = :reason, bytes_sent = :bytes "
            "WHERE id = :id AND kind = 'view' AND end_time IS NULL",
            {"now": now, "reason": reason, "id": view_id, "bytes": bytes_sent})
        if cursor.rowcount == 0:
            logger.debug("view %d already closed or unknown", view_id)

    def _db_select(self, sql: str, params: tuple[Any, ...]) -> list[JournalRow]:
        return [_row(record) for record in self._db().execute(sql, params)]

    def _db_purge(self, now: float) -> int:
        connection = self._db()
        cutoff = {"cutoff": now - self.retention_days * 86400.0}
        with _transaction(connection):
            for side in ("journal_camera", "journal_commune"):
                connection.execute(f"DELETE FROM {side} WHERE entry_id IN "
                                   f"(SELECT id FROM journal WHERE {_PURGEABLE})", cutoff)
            purged = connection.execute(f"DELETE FROM journal WHERE {_PURGEABLE}", cutoff).rowcount
            # Changes are for the other nodes of a cluster (server/audit/replica.py): alone,
            # nobody reads them; in a cluster, one whose row is gone has nothing to tell.
            connection.execute("DELETE FROM journal_changes" if not self.node else
                               "DELETE FROM journal_changes WHERE entry_id NOT IN (SELECT id FROM journal)")
            return purged


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT on an autocommit connection; ROLLBACK on error."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.connection.execute("COMMIT" if kind is None else "ROLLBACK")


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("audit write failed", exc_info=future.exception())


# -- export ------------------------------------------------------------------------------

