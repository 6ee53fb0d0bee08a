"""The journal of a cluster, on the SQLite side: this node's changes to tell the other nodes,
and their rows written here (server/cluster/journal.py carries them over NATS).

This node's own rows leave their changes in `journal_changes` (SQLite triggers, schema 3):
an 'entry' when a row is written, a 'close' when a view ends. They stay there until told,
so a node that dies or is cut off tells them when it comes back. Another node's row is
written with its name and its id there (origin "node:id", unique), so a message heard
twice writes once. Messages come from the network: each is checked before it is written.

Every function runs on the journal's thread: `await journal.async_in_db(function, ...)`.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from typing import Any

from server.audit.rows import LASTING_SQL, _unique

# A row's fields as they travel, with what each may hold.
_TEXT = {"kind": 40, "user_name": 200, "role": 40, "address": 64, "user_agent": 300,
         "target_kind": 40, "target": 200, "output": 40, "close_reason": 40}
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
MAX_LIST = 1000  # cameras or communes of one row


def pending_changes(connection: sqlite3.Connection, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """This node's changes not told yet, oldest first: (the last change's id, messages).
    A change whose row the retention purge already removed has nothing left to tell."""
    records = connection.execute(
        "SELECT c.id AS change_id, c.op, j.* FROM journal_changes c LEFT JOIN journal j ON j.id = c.entry_id "
        "ORDER BY c.id LIMIT ?", (limit,)).fetchall()
    messages = []
    for record in records:
        if record["kind"] is None:
            continue
        if record["op"] == "close":
            messages.append({"op": "close", "id": record["id"], "end_time": record["end_time"],
                             "close_reason": record["close_reason"], "bytes_sent": record["bytes_sent"]})
        else:
            message = {"op": "entry", "id": record["id"], "time": record["time"],
                       "cameras": json.loads(record["cameras"]), "communes": json.loads(record["communes"]),
                       "detail": json.loads(record["detail"]), "end_time": record["end_time"],
                       "bytes_sent": record["bytes_sent"]}
            message.update({field: record[field] for field in _TEXT})
            messages.append(message)
    return (records[-1]["change_id"] if records else 0), messages


def forget_changes(connection: sqlite3.Connection, upto: int) -> None:
    connection.execute("DELETE FROM journal_changes WHERE id <= ?", (upto,))


def check(node: str, message: Any) -> dict[str, Any]:
    """A message from another node, checked; ValueError if it is malformed."""
    if not _NAME.fullmatch(node) or not isinstance(message, dict):
        raise ValueError("not a journal message")
    op, entry_id = message.get("op"), message.get("id")
    if op not in ("entry", "close") or not isinstance(entry_id, int) or not 0 < entry_id < 2**62:
        raise ValueError("bad op or id")
    for field, limit in _TEXT.items():
        value = message.get(field)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise ValueError(f"bad {field}")
    for field in ("time", "end_time"):
        value = message.get(field)
        if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value)):
            raise ValueError(f"bad {field}")
    if message.get("bytes_sent") is not None and not isinstance(message["bytes_sent"], int):
        raise ValueError("bad bytes_sent")
    if op == "entry":
        if not isinstance(message.get("time"), (int, float)) or not message.get("kind") \
                or message.get("user_name") is None or message.get("role") is None:
            raise ValueError("an entry without its kind, time or user")
        for field in ("cameras", "communes"):
            values = message.get(field)
            if not isinstance(values, list) or len(values) > MAX_LIST or not all(
                    isinstance(v, str) and len(v) <= 200 for v in values):
                raise ValueError(f"bad {field}")
        detail = message.get("detail")
        if not isinstance(detail, dict) or len(json.dumps(detail)) > 4096:
            raise ValueError("bad detail")
    elif message.get("end_time") is None:
        raise ValueError("a close without its end")
    return message


def apply(connection: sqlite3.Connection, node: str, messages: list[dict[str, Any]]) -> None:
    """Write checked messages of `node`, in their order, in one transaction."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        for message in messages:
            origin = f"{node}:{message['id']}"
            if message["op"] == "close":
                _close(connection, origin, message["end_time"], message.get("close_reason") or "closed",
                       message.get("bytes_sent"))
                continue
            row = {field: message.get(field) for field in _TEXT}
            row.update(time=message["time"], end_time=message.get("end_time"), node=node, origin=origin,
                       user_agent=row["user_agent"] or "", address=row["address"] or "",
                       bytes_sent=message.get("bytes_sent"),
                       duration=None if message.get("end_time") is None
                       else max(0.0, message["end_time"] - message["time"]),
                       cameras=json.dumps(_unique(message["cameras"])),
                       communes=json.dumps(_unique(message["communes"])), detail=json.dumps(message["detail"]))
            cursor = connection.execute(
                f"INSERT OR IGNORE INTO journal ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})", row)
            if cursor.rowcount:
                entry = cursor.lastrowid
                connection.executemany("INSERT INTO journal_camera (entry_id, camera) VALUES (?, ?)",
                                       [(entry, camera) for camera in _unique(message["cameras"])])
                connection.executemany("INSERT INTO journal_commune (entry_id, commune) VALUES (?, ?)",
                                       [(entry, commune) for commune in _unique(message["communes"])])
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _close(connection: sqlite3.Connection, origin: str, end: float, reason: str, bytes_sent: int | None) -> None:
    values = {"end": end, "reason": reason, "bytes": bytes_sent, "origin": origin}
    ending = ("UPDATE journal SET end_time = :end, duration = MAX(0.0, :end - time), close_reason = :reason{} "
              "WHERE origin = :origin AND {} AND (end_time IS NULL OR close_reason = 'node_lost')")
    # Only views count bytes (a trigger refuses them on any other row).
    connection.execute(ending.format(", bytes_sent = :bytes", "kind = 'view'"), values)
    connection.execute(ending.format("", f"{LASTING_SQL} AND kind <> 'view'"), values)


def close_rows_of_lost_nodes(connection: sqlite3.Connection, live: list[str], at: float) -> int:
    """Views (and runs, camera periods) other nodes opened that are still open here, of nodes
    no longer live: closed as 'node_lost' (the node died with them); their node tells their
    true end if it comes back."""
    marks = ", ".join("?" * len(live))
    cursor = connection.execute(
        "UPDATE journal SET end_time = ?, duration = MAX(0.0, ? - time), close_reason = 'node_lost' "
        f"WHERE {LASTING_SQL} AND end_time IS NULL AND origin IS NOT NULL AND node NOT IN ({marks})",
        (at, at, *live))
    return cursor.rowcount
