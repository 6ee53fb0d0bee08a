"""Journal rows: who made a request (Client), what a row holds (JournalRow), how a row is
made safe to store (bounded, plain, no secret) and how rows are exported (CSV without
formulas). Pure: no database here (journal.py writes and reads)."""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypedDict

logger = logging.getLogger(__name__)

VIEW_KIND = "view"
# Camera health (server/audit/camera_history.py): a stream outage or a picture condition of
# one camera, and a stretch of time this node ran; like views, they last and end once.
STREAM_KIND, PICTURE_KIND, RUN_KIND = "camera_stream", "camera_picture", "vigie_run"
LASTING_KINDS = (VIEW_KIND, STREAM_KIND, PICTURE_KIND, RUN_KIND)
LASTING_SQL = f"kind IN ({', '.join(repr(kind) for kind in LASTING_KINDS)})"
HEALTH_KINDS = (STREAM_KIND, PICTURE_KIND, RUN_KIND)
USER_AGENT_MAX = 300
# The journal never receives secrets; a detail key naming one is dropped, not stored.
SECRET_WORDS = ("password", "passwd", "secret")
# Cells a spreadsheet would evaluate as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


DetailValue = str | int | float | bool | None
_CSV_COLUMNS = ("id", "kind", "time", "time_utc", "end", "end_utc", "duration", "close_reason",
                "user", "role", "address", "user_agent", "target_kind", "target", "output",
                "cameras", "communes", "detail", "bytes_sent", "node")



@dataclass(frozen=True)
class Client:
    """Who made a request and from where; copied into every row it causes."""

    user: str        # user name, kiosk id ("kiosk:<id>") or "-" for anonymous
    role: str        # admin | operator | police | kiosk | anonymous | metrics
    address: str     # client IP
    user_agent: str  # truncated to USER_AGENT_MAX characters when stored


class JournalRow(TypedDict):
    """One row of `AuditJournal.async_query`: a view (kind "view") or an event."""

    id: int
    kind: str
    time: float
    end: float | None
    duration: float | None
    close_reason: str | None
    user: str
    role: str
    address: str
    user_agent: str
    target_kind: str | None
    target: str | None
    output: str | None
    cameras: list[str]
    communes: list[str]
    detail: dict[str, DetailValue]
    bytes_sent: int | None  # views that count them (RTSP), once ended
    node: str               # in a cluster, the node that served it ('' alone or this node)


def _plain(text: str) -> str:
    """An exact str: a str-based enum such as `Role.ADMIN` is stored as its value."""
    return str.__str__(text)


def _unique(names: Sequence[str]) -> list[str]:
    if isinstance(names, str):
        raise TypeError("cameras and communes are sequences of names, not one string")
    return list(dict.fromkeys(_plain(name) for name in names))


def _entry(kind: str, client: Client, now: float, *, target_kind: str | None,
           target: str | None, output: str | None,
           detail: dict[str, DetailValue] | None) -> dict[str, Any]:
    return {
        "kind": _plain(kind), "time": now,
        "user_name": _plain(client.user), "role": _plain(client.role),
        "address": _plain(client.address),
        "user_agent": _plain(client.user_agent)[:USER_AGENT_MAX],
        "target_kind": target_kind, "target": None if target is None else _plain(target),
        "output": None if output is None else _plain(output), "detail": _json(detail or {}),
    }


def _safe_detail(detail: Mapping[str, DetailValue] | None) -> dict[str, DetailValue]:
    kept: dict[str, DetailValue] = {}
    for key, value in (detail or {}).items():
        if any(word in key.lower() for word in SECRET_WORDS):
            logger.warning("audit detail %r dropped: the journal stores no secrets", key)
            continue
        kept[_plain(key)] = value
    return kept


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _row(record: sqlite3.Row) -> JournalRow:
    return JournalRow(
        id=record["id"], kind=record["kind"], time=record["time"], end=record["end_time"],
        duration=record["duration"], close_reason=record["close_reason"],
        user=record["user_name"], role=record["role"], address=record["address"],
        user_agent=record["user_agent"], target_kind=record["target_kind"],
        target=record["target"], output=record["output"],
        cameras=json.loads(record["cameras"]), communes=json.loads(record["communes"]),
        detail=json.loads(record["detail"]), bytes_sent=record["bytes_sent"], node=record["node"],
    )


def rows_to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows of `async_query` as CSV: a header, then one line per row; lists joined with
    ';', detail as JSON, times also in ISO 8601 UTC for the human reader. Text cells that a
    spreadsheet would run as a formula are prefixed with a single quote."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    for row in rows:
        cells = {**row, "time_utc": _iso(row.get("time")), "end_utc": _iso(row.get("end"))}
        writer.writerow([_csv_cell(cells.get(column)) for column in _CSV_COLUMNS])
    return out.getvalue()


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return repr(value)  # our own numbers; never text from a client
    if isinstance(value, list | tuple):
        text = ";".join(str(item) for item in value)
    elif isinstance(value, Mapping):
        text = _json(dict(value))
    else:
        text = str(value)
    # A lone "-" (the anonymous user) is text to every spreadsheet; leave it readable.
    if text.startswith(FORMULA_STARTS) and text != "-":
        return "'" + text
    return text
