"""The viewing journal on a real SQLite file: records, filters, export, retention, crash."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.audit import AuditError, AuditJournal, Client, rows_to_csv
from server.audit.journal import _MIGRATIONS, SCHEMA_VERSION
from server.access.scope import Role

REPO = Path(__file__).resolve().parents[2]
DAY = 86400.0

OPERATOR = Client(user="agent.dupont", role="operator", address="10.0.0.7",
                  user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
POLICE = Client(user="pm.vence", role="police", address="10.0.1.20", user_agent="Chrome/126")
KIOSK = Client(user="kiosk:mur-centre", role="kiosk", address="10.0.2.3", user_agent="kiosk")


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[AuditJournal]:
    journal = AuditJournal(tmp_path / "audit" / "journal.sqlite3")
    assert await journal.async_open() == 0
    yield journal
    await journal.async_close()


async def open_camera(journal: AuditJournal, client: Client, camera: str, commune: str,
                      output: str = "mjpeg") -> int:
    return await journal.async_view_opened(client, target_kind="camera", target_id=camera,
                                           cameras=[camera], communes=[commune], output=output)


async def tick() -> float:
    """A distinct timestamp strictly between the rows written before and after it."""
    await asyncio.sleep(0.002)
    mark = time.time()
    await asyncio.sleep(0.002)
    return mark


async def test_view_is_recorded_with_who_what_where_and_how_long(journal: AuditJournal) -> None:
    before = time.time()
    view_id = await journal.async_view_opened(
        OPERATOR, target_kind="wall", target_id="mur-centre", cameras=["cam1", "cam2"],
        communes=["Vence", "Saint-Jeannet"], output="ws")
    [open_row] = await journal.async_query()
    assert open_row["end"] is None and open_row["duration"] is None
    await asyncio.sleep(0.2)
    await journal.async_view_closed(view_id)

    [row] = await journal.async_query()
    assert row["id"] == view_id and row["kind"] == "view"
    assert (row["user"], row["role"], row["address"], row["user_agent"]) == (
        "agent.dupont", "operator", "10.0.0.7", OPERATOR.user_agent)
    assert (row["target_kind"], row["target"], row["output"]) == ("wall", "mur-centre", "ws")
    assert row["cameras"] == ["cam1", "cam2"]
    assert row["communes"] == ["Vence", "Saint-Jeannet"]
    assert before <= row["time"] < row["end"] <= time.time()
    assert row["close_reason"] == "closed"
    assert 0.19 <= row["duration"] < 1.5
    assert row["duration"] == pytest.approx(row["end"] - row["time"])


async def test_view_closed_once_and_rows_cannot_be_edited(journal: AuditJournal) -> None:
    view_id = await open_camera(journal, OPERATOR, "cam1", "Vence")
    await journal.async_view_closed(view_id, "viewer_gone")
    [first] = await journal.async_query()
    await asyncio.sleep(0.01)
    await journal.async_view_closed(view_id, "closed")
    await journal.async_view_closed(999_999)  # unknown: nothing to do
    assert await journal.async_query() == [first]
    assert first["close_reason"] == "viewer_gone"

    with sqlite3.connect(journal.path) as connection:
        for sql in ("UPDATE journal SET user_name = 'someone.else'",
                    "UPDATE journal SET end_time = 0",
                    "UPDATE journal_camera SET camera = 'cam9'"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only|closed once"):
                connection.execute(sql)
    connection.close()


async def test_bytes_sent_are_written_with_the_end_once(journal: AuditJournal) -> None:
    """RTSP sessions journal the bytes they sent; like the rest of a view, once, at its end."""
    view_id = await open_camera(journal, OPERATOR, "cam1", "Vence", output="rtsp-tcp")
    await journal.async_view_closed(view_id, "closed", bytes_sent=123_456)
    [row] = await journal.async_query()
    assert row["bytes_sent"] == 123_456 and row["close_reason"] == "closed"
    other = await open_camera(journal, OPERATOR, "cam2", "Vence")
    with sqlite3.connect(journal.path) as connection:
        for sql in ("UPDATE journal SET bytes_sent = 1",  # after the end: refused
                    f"UPDATE journal SET bytes_sent = 1 WHERE id = {other}"):  # before it: too
            with pytest.raises(sqlite3.IntegrityError, match="closed once"):
                connection.execute(sql)
    connection.close()
    assert "bytes_sent" in rows_to_csv(await journal.async_query()).splitlines()[0]


async def test_a_journal_of_the_first_schema_is_migrated_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(f"BEGIN; {_MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
        connection.execute("INSERT INTO journal (kind, time, user_name, role, address, user_agent) "
                           "VALUES ('login', ?, 'old.user', 'admin', '10.0.0.1', 'ua')", (time.time(),))
    connection.close()
    journal = AuditJournal(path)
    await journal.async_open()
    try:
        [old] = await journal.async_query(since=0)
        assert (old["user"], old["bytes_sent"]) == ("old.user", None)
    finally:
        await journal.async_close()


async def test_events_of_each_kind(journal: AuditJournal) -> None:
    kinds = ["login", "login_failed", "logout", "snapshot", "wall_change", "config_reload",
             "access_denied"]
    for kind in kinds:
        await journal.async_event(kind, OPERATOR, target=f"target-{kind}", cameras=["cam3"],
                                  communes=["Vence"], detail={"kind": kind, "n": 2, "ok": True,
                                                              "ratio": 0.5, "none": None})
    rows = await journal.async_query()
    assert [row["kind"] for row in rows] == kinds[::-1]
    for row in rows:
        assert row["target"] == f"target-{row['kind']}"
        assert row["detail"] == {"kind": row["kind"], "n": 2, "ok": True, "ratio": 0.5,
                                 "none": None}
        assert row["end"] is None and row["duration"] is None and row["output"] is None
        assert row["cameras"] == ["cam3"] and row["user"] == "agent.dupont"
    with pytest.raises(ValueError):
        await journal.async_event("view", OPERATOR)


async def test_stored_values_are_bounded_and_plain(journal: AuditJournal) -> None:
    client = Client(user="pm.vence", role=Role.POLICE, address="10.0.1.20", user_agent="x" * 5000)
    await journal.async_event("login", client, detail={"method": "form", "password": "hunter2"})
    [row] = await journal.async_query()
    assert len(row["user_agent"]) == 300
    assert row["role"] == "police"
    assert row["detail"] == {"method": "form"}
    assert b"hunter2" not in Path(journal.path).read_bytes()
    assert b"hunter2" not in Path(f"{journal.path}-wal").read_bytes()


async def test_filters_are_exact_and_newest_first(journal: AuditJournal) -> None:
    one = await open_camera(journal, OPERATOR, "cam1", "Vence")
    ten = await open_camera(journal, POLICE, "cam10", "Saint-Jeannet")
    await journal.async_event("snapshot", POLICE, target="cam1", cameras=["cam1"],
                              communes=["Vence"])
    await journal.async_event("login", KIOSK)
    await journal.async_view_opened(KIOSK, target_kind="wall", target_id="mur-centre",
                                    cameras=["cam10", "cam2"], communes=["Saint-Jeannet"],
                                    output="mjpeg")
    await journal.async_view_closed(one)

    async def ids(**filters: object) -> list[tuple[str, str]]:
        return [(row["kind"], row["user"]) for row in await journal.async_query(**filters)]

    assert len(await journal.async_query()) == 5
    times = [row["time"] for row in await journal.async_query()]
    assert times == sorted(times, reverse=True)
    assert await ids(camera="cam1") == [("snapshot", "pm.vence"), ("view", "agent.dupont")]
    assert await ids(camera="cam10") == [("view", "kiosk:mur-centre"), ("view", "pm.vence")]
    assert await ids(camera="cam") == []
    assert await ids(camera="%") == []
    assert await ids(commune="Vence") == [("snapshot", "pm.vence"), ("view", "agent.dupont")]
    assert await ids(commune="Saint") == []
    assert await ids(user="pm.vence") == [("snapshot", "pm.vence"), ("view", "pm.vence")]
    assert await ids(user="pm") == []
    assert await ids(kinds=["login", "snapshot"]) == [("login", "kiosk:mur-centre"),
                                                      ("snapshot", "pm.vence")]
    assert await ids(kinds=[]) == []
    assert await ids(user="pm.vence", camera="cam10", kinds=["view"]) == [("view", "pm.vence")]
    assert [row["id"] for row in await journal.async_query(camera="cam10")][-1] == ten

    everything = await journal.async_query()
    assert await journal.async_query(limit=2) == everything[:2]
    assert await journal.async_query(limit=2, offset=2) == everything[2:4]
    assert await journal.async_query(offset=4) == everything[4:]
    assert await journal.async_query(offset=10) == []
    with pytest.raises(ValueError):
        await journal.async_query(limit=0)


async def test_time_range_keeps_rows_overlapping_it(journal: AuditJournal) -> None:
    long_view = await open_camera(journal, OPERATOR, "cam1", "Vence")   # open through the range
    await journal.async_event("login", POLICE)                          # before the range
    short_view = await open_camera(journal, POLICE, "cam2", "Vence")    # ends before the range
    await journal.async_view_closed(short_view)
    since = await tick()
    await journal.async_event("snapshot", POLICE, cameras=["cam1"])     # inside
    still_open = await open_camera(journal, KIOSK, "cam3", "Vence")     # starts inside, open
    until = await tick()
    await journal.async_event("logout", POLICE)                         # after the range
    await journal.async_view_closed(long_view)

    inside = await journal.async_query(since=since, until=until)
    assert [row["kind"] for row in inside] == ["view", "snapshot", "view"]
    assert [inside[0]["id"], inside[2]["id"]] == [still_open, long_view]
    after = await journal.async_query(since=until)
    assert {row["kind"] for row in after} == {"logout", "view"}
    assert {row["id"] for row in after if row["kind"] == "view"} == {long_view, still_open}
    before = await journal.async_query(until=since)
    assert [row["kind"] for row in before] == ["view", "login", "view"]


async def test_csv_export_quotes_and_defuses_formulas(journal: AuditJournal) -> None:
    nasty = Client(user='=HYPERLINK("http://evil")', role="operator", address="10.0.0.9",
                   user_agent='Agent, "quoted"\nsecond line')
    await journal.async_event("wall_change", nasty, target="+33 mur", cameras=["-cam", "cam2"],
                              communes=["@Vence"], detail={"note": "a,b"})
    await journal.async_event("login", Client("-", "anonymous", "10.0.0.1", "curl"))
    text = rows_to_csv(await journal.async_query())

    lines = list(csv.reader(io.StringIO(text)))
    header, anonymous, row = lines
    assert header[:3] == ["id", "kind", "time"]
    assert {"end", "duration", "close_reason", "user", "role", "address", "user_agent",
            "target_kind", "target", "output", "cameras", "communes", "detail"} <= set(header)
    cell = dict(zip(header, row))
    assert cell["kind"] == "wall_change"
    assert cell["user"] == '\'=HYPERLINK("http://evil")'
    assert cell["user_agent"] == 'Agent, "quoted"\nsecond line'
    assert cell["target"] == "'+33 mur"
    assert cell["cameras"] == "'-cam;cam2"
    assert cell["communes"] == "'@Vence"
    assert cell["detail"] == '{"note":"a,b"}'
    assert cell["end"] == "" and cell["duration"] == ""
    assert float(cell["time"]) > 0
    assert dict(zip(header, anonymous))["user"] == "-"
    assert '"Agent, ""quoted""\nsecond line"' in text
    assert rows_to_csv([]).count("\n") == 1


async def test_purge_removes_only_rows_past_retention(journal: AuditJournal) -> None:
    old_view = await open_camera(journal, OPERATOR, "cam1", "Vence")
    await journal.async_view_closed(old_view)
    await journal.async_event("login", OPERATOR, cameras=["cam1"], communes=["Vence"])
    forgotten_open = await open_camera(journal, POLICE, "cam2", "Vence")
    spanning = await open_camera(journal, POLICE, "cam3", "Vence")
    cutoff = await tick()
    await journal.async_view_closed(spanning)
    await journal.async_event("logout", OPERATOR)

    assert await journal.async_purge(now=cutoff + 90 * DAY) == 2
    kept = await journal.async_query()
    assert {row["id"] for row in kept if row["kind"] == "view"} == {forgotten_open, spanning}
    assert [row["kind"] for row in kept if row["kind"] != "view"] == ["logout"]
    assert await journal.async_query(camera="cam1") == []
    with sqlite3.connect(journal.path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM journal_camera").fetchone() == (2,)
    connection.close()
    assert await journal.async_purge() == 0
    assert await journal.async_purge(now=time.time() + 365 * DAY) == 2  # the open view stays
    assert [row["id"] for row in await journal.async_query()] == [forgotten_open]


async def test_reopen_keeps_rows_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "journal.sqlite3"
    journal = AuditJournal(path)
    with pytest.raises(AuditError):
        await journal.async_event("login", OPERATOR)
    assert await journal.async_open() == 0
    await open_camera(journal, OPERATOR, "cam1", "Vence")
    await journal.async_close()
    with pytest.raises(AuditError):
        await journal.async_event("login", OPERATOR)
    await journal.async_view_closed(1)  # after shutdown: already ended, nothing to do

    assert path.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()

    again = AuditJournal(path)
    assert await again.async_open() == 0
    [row] = await again.async_query()
    assert row["close_reason"] == "shutdown" and row["end"] is not None
    await again.async_close()


async def test_kill_9_loses_nothing_and_open_views_close_at_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "tests" / "support" / "audit_crash_child.py"), str(path),
        cwd=REPO, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), timeout=10)
        assert line.startswith(b"READY"), line
        first_id = int(line.split()[1])
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    journal = AuditJournal(path)
    restart = time.time()
    assert await journal.async_open() == 1
    second, first = await journal.async_query()
    await journal.async_close()
    assert first["id"] == first_id and first["close_reason"] == "closed"
    assert 0.04 <= first["duration"] < 2 and first["cameras"] == ["cam1"]
    assert second["close_reason"] == "server_restart"
    assert second["target"] == "mur-centre" and second["cameras"] == ["cam1", "cam2"]
    assert restart <= second["end"] <= time.time()
    assert second["duration"] == pytest.approx(second["end"] - second["time"])


async def test_event_loop_keeps_running_while_writes_wait(journal: AuditJournal) -> None:
    """Another connection holds the write lock, so the 200 queued writes cannot finish until
    the ticker, which needs the loop, releases it. A journal blocking the loop would stall
    the ticker until the safety timer (another thread) released the lock, and the writes
    would all be done before the ticker got its turn."""
    blocker = sqlite3.connect(journal.path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    released = threading.Lock()

    def release() -> None:
        if released.acquire(blocking=False):
            blocker.execute("COMMIT")

    safety = threading.Timer(2.0, release)
    safety.start()
    try:
        writes = [asyncio.create_task(open_camera(journal, OPERATOR, f"cam{i}", "Vence"))
                  for i in range(200)]
        ticks = 0
        while ticks < 2000:
            await asyncio.sleep(0)
            ticks += 1
        assert not any(write.done() for write in writes)
    finally:
        safety.cancel()
        release()
        blocker.close()

    ids = await asyncio.wait_for(asyncio.gather(*writes), timeout=10)
    assert len(set(ids)) == 200
    assert len(await journal.async_query()) == 200


async def test_loop_ticks_while_writes_are_queued(journal: AuditJournal) -> None:
    done = asyncio.Event()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    await asyncio.gather(*(journal.async_event("snapshot", OPERATOR, target=f"cam{i}")
                           for i in range(200)))
    done.set()
    await ticking
    assert ticks > 50
    assert len(await journal.async_query(kinds=["snapshot"])) == 200


async def test_cancelled_view_open_is_recorded_then_closed(journal: AuditJournal) -> None:
    opening = asyncio.create_task(open_camera(journal, OPERATOR, "cam1", "Vence"))
    await asyncio.sleep(0)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    deadline = time.monotonic() + 5
    while True:
        rows = await journal.async_query()
        if rows and rows[0]["end"] is not None:
            break
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.01)
    assert rows[0]["close_reason"] == "cancelled"
