"""The journal of camera health on a real SQLite journal (server/audit/camera_history.py):
what the cameras' statuses say becomes periods with their true start and end, one incident
across a change of state, a restart of Vigie, and a camera moving between the nodes of a
cluster (journals replicated as server/audit/replica.py does); a crash is unknown time."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from server.audit import AuditJournal
from server.audit.camera_history import (CARRY_FOR, CameraHistory, Incident, Observation, continued_incident,
                                         previous_run_end)
from server.audit.incidents import open_incidents
from server.audit.replica import apply, check, close_rows_of_lost_nodes, forget_changes, pending_changes

KINDS = ["camera_stream", "camera_picture"]
OFFLINE, DARK = ("cam1", "camera_stream", "offline"), ("cam1", "camera_picture", "too_dark")


async def goes_on(journal: AuditJournal, key: tuple[str, str, str]) -> Incident | None:
    """The incident a period of `key` opened just after this start would go on with."""
    previous_end = await journal.async_in_db(previous_run_end)
    return await journal.async_in_db(continued_incident, key, time.time(), previous_end)


def seen(camera: str, stream: str, since: float, conditions=(), ended=()) -> Observation:
    return Observation(camera, "vence", stream, since, tuple(conditions), tuple(ended))


async def periods(journal: AuditJournal) -> list[tuple]:
    rows = await journal.async_query(kinds=KINDS)
    return [(r["target"], r["kind"], r["detail"]["state"], r["time"], r["end"], r["close_reason"],
             r["detail"]["incident"]) for r in sorted(rows, key=lambda r: (r["target"], r["kind"], r["time"], r["id"]))]


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
    assert await goes_on(again, OFFLINE) == Incident(incident, start)
    assert await goes_on(again, DARK) is None
    # Still offline after the restart: a new period of the same incident, which began
    # before the restart. A too_dark picture is journaled, but is no incident.
    now = [seen("cam1", "offline", time.time(), [("too_dark", time.time() - 40)])]
    history = CameraHistory(again, lambda: now)
    await history.async_start()
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
    assert await goes_on(closed, OFFLINE) == Incident(incident, start)
    await closed.async_close()
    # One more start with nothing left open: nothing is carried (the crash's incident is old news).
    last = AuditJournal(path)
    await last.async_open()
    assert await goes_on(last, OFFLINE) is None and await goes_on(last, DARK) is None
    await last.async_close()


async def tell(source: AuditJournal, target: AuditJournal, node: str) -> None:
    """What `source` has to tell, written into `target`, as the cluster's stream would."""
    upto, messages = await source.async_in_db(pending_changes, 1000)
    await target.async_in_db(apply, node, [check(node, json.loads(json.dumps(m))) for m in messages])
    await source.async_in_db(forget_changes, upto)


async def test_a_camera_that_moves_to_another_node_keeps_its_incident(tmp_path: Path) -> None:
    a, b, c = (AuditJournal(tmp_path / f"{name}.sqlite3", node=name) for name in "abc")
    for journal in (a, b, c):
        await journal.async_open()
    began = time.time() - 30
    on_a = [seen("cam1", "offline", began)]
    history_a = CameraHistory(a, lambda: on_a)
    await history_a.async_observe(time.time())
    # Handed over: a stops pulling it (its period ends, "unobserved"); b pulls it, still offline.
    on_a.clear()
    await history_a.async_observe(time.time())
    await tell(a, b, "a")
    await CameraHistory(b, lambda: [seen("cam1", "offline", time.time())]).async_observe(time.time())
    [(_, _, _, _, a_end, a_reason, incident)] = await periods(a)
    assert a_reason == "unobserved" and a_end is not None
    assert [row[6] for row in await periods(b)] == [incident, incident]
    [listed] = await b.async_in_db(open_incidents)
    assert (listed["incident"], listed["since"]) == (incident, began)
    # b dies with it open: c, told of b's open period, takes the incident on; so it does
    # once it has closed b's rows as node_lost.
    await tell(a, c, "a")
    await tell(b, c, "b")
    key = ("cam1", "camera_stream", "offline")
    assert await c.async_in_db(continued_incident, key, time.time(), None) == Incident(incident, began)
    await c.async_in_db(close_rows_of_lost_nodes, ["a", "c"], time.time())
    await CameraHistory(c, lambda: [seen("cam1", "offline", time.time())]).async_observe(time.time())
    assert {row[6] for row in await periods(c)} == {incident}
    # Not after CARRY_FOR: a camera back in the same state much later is a new incident.
    assert await c.async_in_db(continued_incident, key, time.time() + CARRY_FOR + 5, None) is None
    # A camera that was fine when it moved starts a new incident on its new node.
    await CameraHistory(c, lambda: [seen("cam2", "offline", time.time())]).async_observe(time.time())
    assert len({row[6] for row in await periods(c)}) == 2
    for journal in (a, b, c):
        await journal.async_close()


async def test_planned_works_outlive_the_retention_until_they_end(tmp_path: Path) -> None:
    """Works for a year, declared now, with 90 days of retention: kept (and so is their
    cancellation) until they end, then purged like the rest."""
    from server.audit import Client
    from server.audit.incidents import planned_works

    journal = AuditJournal(tmp_path / "journal.sqlite3", retention_days=90)
    await journal.async_open()
    operator = Client("operator", "operator", "10.0.0.1", "test")
    now = time.time()
    for key, end in (("aaaaaaaaaaaaaaaa", now + 365 * 86400), ("bbbbbbbbbbbbbbbb", now + 365 * 86400)):
        await journal.async_event("works_planned", operator, target=key, cameras=["cam1"],
                                  detail={"start": now, "end": end, "reason": "mât", "on_communes": ""})
    await journal.async_event("works_cancelled", operator, target="bbbbbbbbbbbbbbbb", detail={"end": now + 365 * 86400})
    await journal.async_event("login", operator)
    assert await journal.async_purge(now + 200 * 86400) == 1  # the login only
    assert [w.key for w in await journal.async_in_db(planned_works)] == ["aaaaaaaaaaaaaaaa"]
    assert await journal.async_purge(now + 456 * 86400) == 3
    await journal.async_close()
