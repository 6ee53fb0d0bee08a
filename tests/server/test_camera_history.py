"""The journal of camera health on a real SQLite journal (server/audit/camera_history.py):
what the cameras' statuses say becomes periods with their true start and end, one incident
across a change of state and across a restart of Vigie; a crash is unknown time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from server.audit import AuditJournal
from server.audit.camera_history import CameraHistory, Incident, Observation, carried_incidents
from server.audit.incidents import open_incidents

KINDS = ["camera_stream", "camera_picture"]


def seen(camera: str, stream: str, since: float, conditions=(), ended=()) -> Observation:
    return Observation(camera, "vence", stream, since, tuple(conditions), tuple(ended))


async def periods(journal: AuditJournal) -> list[tuple]:
    rows = await journal.async_query(kinds=KINDS)
    return sorted((r["target"], r["kind"], r["detail"]["state"], r["time"], r["end"], r["close_reason"],
                   r["detail"]["incident"]) for r in rows)


async def test_outages_and_conditions_become_periods_with_their_true_times(tmp_path: Path) -> None:
    journal = AuditJournal(tmp_path / "journal.sqlite3")
    await journal.async_open()
    now: list[Observation] = []
    history = CameraHistory(journal, lambda: now)
    t = time.time() - 1000
    now[:] = [seen("cam1", "live", t), seen("cam2", "live", t)]
    await history.async_observe(t + 1)
    assert await periods(journal) == []
    # cam1 goes offline at t+10 (seen at t+12), then stalled at t+20, then live at t+30:
    # one outage, two periods, one incident. cam2's picture is covered since t+5 (raised
    # after its hold, at t+15), cleared at t+40 (told at t+70).
    now[:] = [seen("cam1", "offline", t + 10), seen("cam2", "live", t, [("covered", t + 5)])]
    await history.async_observe(t + 15)
    now[0] = seen("cam1", "stalled", t + 20)
    await history.async_observe(t + 21)
    now[0] = seen("cam1", "live", t + 30)
    now[1] = seen("cam2", "live", t, [], [("covered", t + 5, t + 40)])
    await history.async_observe(t + 70)
    rows = await periods(journal)
    assert [row[:6] for row in rows] == [
        ("cam1", "camera_stream", "offline", t + 10, t + 20, "closed"),
        ("cam1", "camera_stream", "stalled", t + 20, t + 30, "closed"),
        ("cam2", "camera_picture", "covered", t + 5, t + 40, "closed"),
    ]
    assert rows[0][6] == rows[1][6] != rows[2][6]
    # A camera no longer pulled here (moved to another node) ends its period when last seen.
    now[:] = [seen("cam1", "offline", t + 80)]
    await history.async_observe(t + 81)
    now[:] = []
    await history.async_observe(t + 90)
    [moved] = [row for row in await periods(journal) if row[3] == t + 80]
    assert moved[:6] == ("cam1", "camera_stream", "offline", t + 80, t + 90, "unobserved")
    await journal.async_close()


async def test_a_crash_is_unknown_time_and_the_incident_goes_on_after_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = AuditJournal(path)
    await journal.async_open()
    now = [seen("cam1", "offline", time.time() - 50)]
    history = CameraHistory(journal, lambda: now)
    await history.async_observe(time.time())
    alive = time.time()
    await journal.async_alive(alive)
    await asyncio.sleep(0.05)
    # A kill -9: the journal is never closed. The next start ends the run and the period at
    # the last sign of life, and starts a run of its own.
    again = AuditJournal(path)
    await again.async_open()
    [(_, _, _, start, end, reason, incident)] = await periods(again)
    assert (end, reason) == (alive, "server_restart")
    runs = sorted((r["time"], r["end"], r["close_reason"]) for r in await again.async_query(kinds=["vigie_run"]))
    assert len(runs) == 2 and runs[0][1:] == (alive, "server_restart") and runs[1][1] is None
    assert await again.async_in_db(carried_incidents) == {
        ("cam1", "camera_stream", "offline"): Incident(incident, start)}
    # Still offline after the restart: a new period of the same incident, which began
    # before the restart. A too_dark picture is journaled, but is no incident.
    now = [seen("cam1", "offline", time.time(), [("too_dark", time.time() - 40)])]
    history = CameraHistory(again, lambda: now)
    history._carried = await again.async_in_db(carried_incidents)
    history._carry_until = time.monotonic() + 60
    await history.async_observe(time.time())
    rows = await periods(again)
    stream = [row for row in rows if row[1] == "camera_stream"]
    assert len(rows) == 3 and stream[0][6] == stream[1][6] == incident and stream[1][4] is None
    [listed] = await again.async_in_db(open_incidents)
    assert (listed["incident"], listed["state"], listed["since"]) == (incident, "offline", start)
    await again.async_close()
    # A clean stop (an upgrade) ends what was open with the stop; the next start carries
    # the same incident on again, never an older one.
    closed = AuditJournal(path)
    await closed.async_open()
    assert {row[5] for row in await periods(closed)} == {"server_restart", "shutdown"}
    carried = await closed.async_in_db(carried_incidents)
    assert carried[("cam1", "camera_stream", "offline")] == Incident(incident, start)
    await closed.async_close()
    # One more start with nothing left open: nothing is carried (the crash's incident is old news).
    last = AuditJournal(path)
    await last.async_open()
    assert await last.async_in_db(carried_incidents) == {}
    await last.async_close()
