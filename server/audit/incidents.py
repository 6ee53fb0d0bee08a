"""Camera health as the maintenance side reads it from the journal: the periods, runs and
planned works of a time range (for availability.py), the incidents open now with their
acknowledgement, and the planned works in force.

Acknowledgements and planned works are journal events like any other (written with
`async_event`, so they are kept, replicated and purged with the journal):
- `incident_ack`: target the incident key, detail {comment}; the newest one counts;
- `works_planned`: target the works key, detail {start, end, reason, on_communes (the
  communes it covers whole, ";"-joined)}, with its cameras and every commune concerned in
  the row's lists;
- `works_cancelled`: target the works key.

Every function runs on the journal's thread: `await journal.async_in_db(function, ...)`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from server.audit.availability import TAMPERING, Period, Works
from server.audit.rows import PICTURE_KIND, RUN_KIND, STREAM_KIND

ACK_KIND, WORKS_KIND, WORKS_CANCELLED_KIND = "incident_ack", "works_planned", "works_cancelled"
_PERIOD_KINDS = {STREAM_KIND: "stream", PICTURE_KIND: "picture"}


@dataclass(frozen=True)
class History:
    """What availability() needs, for one time range."""

    periods: list[Period]
    works: list[Works]
    runs: list[tuple[float, float | None]]


def _period(row: sqlite3.Row) -> Period | None:
    detail = json.loads(row["detail"])
    state, incident, since = detail.get("state"), detail.get("incident"), detail.get("incident_since")
    if not isinstance(state, str) or not isinstance(incident, str):
        return None  # another node's row of a shape this one does not know
    return Period(row["target"] or "", _PERIOD_KINDS[row["kind"]], state, row["time"], row["end_time"], incident,
                  float(since) if isinstance(since, (int, float)) else None)


def history(connection: sqlite3.Connection, since: float, until: float,
            cameras: Collection[str] | None = None) -> History:
    """Periods and runs overlapping [since, until], and the works in force (all, uncancelled)."""
    period_rows = connection.execute(
        "SELECT kind, target, time, end_time, detail FROM journal WHERE kind IN (?, ?) AND kind <> 'view' "
        "AND time <= ? AND (end_time IS NULL OR end_time >= ?)", (STREAM_KIND, PICTURE_KIND, until, since))
    periods = [p for row in period_rows
               if (cameras is None or row["target"] in cameras) and (p := _period(row)) is not None]
    runs = [(row["time"], row["end_time"]) for row in connection.execute(
        "SELECT time, end_time FROM journal WHERE kind = ? AND kind <> 'view' AND time <= ? "
        "AND (end_time IS NULL OR end_time >= ?)",
        (RUN_KIND, until, since))]
    return History(periods, planned_works(connection), runs)


def planned_works(connection: sqlite3.Connection, ending_after: float | None = None) -> list[Works]:
    """Works declared and not cancelled, oldest first; only those ending after
    `ending_after` when given."""
    cancelled = {row[0] for row in connection.execute(
        "SELECT target FROM journal WHERE kind = ? AND kind <> 'view'", (WORKS_CANCELLED_KIND,))}
    works = []
    for row in connection.execute("SELECT target, cameras, communes, detail FROM journal "
                                  "WHERE kind = ? AND kind <> 'view' ORDER BY time", (WORKS_KIND,)):
        detail = json.loads(row["detail"])
        start, end, reason = detail.get("start"), detail.get("end"), detail.get("reason")
        if row["target"] in cancelled or not isinstance(start, (int, float)) \
                or not isinstance(end, (int, float)) or not isinstance(reason, str):
            continue
        if ending_after is not None and end <= ending_after:
            continue
        # The row's communes also list its cameras' (for the journal's filters); the works'
        # own communes, whose every camera they cover, are in the detail.
        on_communes = detail.get("on_communes")
        communes = frozenset(filter(None, on_communes.split(";"))) if isinstance(on_communes, str) else frozenset()
        works.append(Works(row["target"], frozenset(json.loads(row["cameras"])), communes,
                           float(start), float(end), reason))
    return works


def open_incidents(connection: sqlite3.Connection) -> list[dict[str, Any]]:
    """The incidents open now (a period still open), oldest first, with when the incident
    began (a restart included) and its newest acknowledgement. too_dark and too_bright are
    not incidents (availability.py)."""
    rows = connection.execute(
        "SELECT kind, target, time, end_time, detail, communes FROM journal "
        "WHERE kind IN (?, ?) AND end_time IS NULL AND kind <> 'view' ORDER BY time",
        (STREAM_KIND, PICTURE_KIND)).fetchall()
    incidents: dict[str, dict[str, Any]] = {}
    for row in rows:
        period = _period(row)
        if period is None or period.incident in incidents or (
                period.kind == "picture" and period.state not in TAMPERING):
            continue
        communes = json.loads(row["communes"])
        incidents[period.incident] = {
            "incident": period.incident, "camera": period.camera, "commune": communes[0] if communes else "",
            "kind": period.kind, "state": period.state, "acknowledged": None,
            "since": min(period.start, period.incident_since or period.start)}
    if not incidents:
        return []
    marks = ", ".join("?" * len(incidents))
    for ack in connection.execute(
            f"SELECT target, time, user_name, detail FROM journal WHERE kind = ? AND kind <> 'view' "
            f"AND target IN ({marks}) ORDER BY time", (ACK_KIND, *incidents)):
        incidents[ack["target"]]["acknowledged"] = {
            "user": ack["user_name"], "at": ack["time"], "comment": json.loads(ack["detail"]).get("comment", "")}
    return list(incidents.values())


def incident_camera(connection: sqlite3.Connection, incident: str) -> tuple[str, str] | None:
    """The camera and commune of an incident, or None if the journal has no such incident."""
    row = connection.execute(
        "SELECT target, communes FROM journal WHERE kind IN (?, ?) AND kind <> 'view' "
        "AND json_extract(detail, '$.incident') = ? LIMIT 1", (STREAM_KIND, PICTURE_KIND, incident)).fetchone()
    if row is None:
        return None
    communes = json.loads(row["communes"])
    return row["target"], communes[0] if communes else ""
