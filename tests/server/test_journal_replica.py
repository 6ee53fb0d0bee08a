"""A cluster's journal on real SQLite files (server/audit/replica.py): what one node tells is
written once by another, a dead node's views close and take their true end later, and the
messages, network input, are fuzzed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.audit import AuditJournal, Client
from server.audit.replica import apply, check, close_rows_of_lost_nodes, forget_changes, pending_changes

OPERATOR = Client(user="agent.dupont", role="operator", address="10.0.0.7", user_agent="Firefox/128.0")


@pytest.fixture
async def pair(tmp_path: Path):
    journals = {name: AuditJournal(tmp_path / f"{name}.sqlite3", node=name) for name in ("a", "b")}
    for journal in journals.values():
        await journal.async_open()
    yield journals
    for journal in journals.values():
        await journal.async_close()


async def tell(source: AuditJournal, target: AuditJournal, node: str) -> int:
    """What `source` has to tell, written into `target` (as the stream would); returns how many."""
    upto, messages = await source.async_in_db(pending_changes, 100)
    await target.async_in_db(apply, node, [check(node, json.loads(json.dumps(m))) for m in messages])
    await source.async_in_db(forget_changes, upto)
    return len(messages)


async def test_a_node_s_views_and_events_are_written_once_elsewhere(pair) -> None:
    a, b = pair["a"], pair["b"]
    view = await a.async_view_opened(OPERATOR, target_kind="camera", target_id="cam1", cameras=["cam1"],
                                     communes=["Vence"], output="mjpeg")
    await a.async_event("login", OPERATOR)
    assert await tell(a, b, "a") == 3  # a's run (since its start), the view, the login
    assert await tell(a, b, "a") == 0  # told once, then forgotten
    await a.async_view_closed(view, "closed", bytes_sent=1234)
    assert await tell(a, b, "a") == 1
    rows = await b.async_query()
    assert {(r["kind"], r["node"]) for r in rows} == {("view", "a"), ("login", "a")}
    [seen] = [r for r in rows if r["kind"] == "view"]
    assert (seen["end"] is not None, seen["close_reason"], seen["bytes_sent"], seen["cameras"]) == (
        True, "closed", 1234, ["cam1"])
    # b's own copy of a's rows is never told back: b has only its own run to tell.
    _, told_back = await b.async_in_db(pending_changes, 100)
    assert [(m["kind"], m["target"]) for m in told_back] == [("vigie_run", "b")]
    # A message heard twice (redelivered) is written once.
    _, again = await a.async_in_db(pending_changes, 100)
    await b.async_in_db(apply, "a", [check("a", {"op": "entry", "id": view, "time": 1.0, "kind": "view",
                                                 "user_name": "x", "role": "operator", "cameras": [],
                                                 "communes": [], "detail": {}})])
    assert len(await b.async_query(kinds=["view"])) == 1 and again == []


async def test_a_lost_node_s_open_views_close_then_take_their_true_end(pair) -> None:
    a, b = pair["a"], pair["b"]
    view = await a.async_view_opened(OPERATOR, target_kind="wall", target_id="w", cameras=["c1", "c2"],
                                     communes=["Vence"], output="ws")
    await tell(a, b, "a")
    assert await b.async_in_db(close_rows_of_lost_nodes, ["a", "b"], 1e10) == 0  # a is live
    assert await b.async_in_db(close_rows_of_lost_nodes, ["b"], 2e9) == 2  # the view and a's run
    [run] = [r for r in await b.async_query(kinds=["vigie_run"]) if r["node"] == "a"]
    assert (run["node"], run["close_reason"], run["end"]) == ("a", "node_lost", 2e9)
    [lost] = await b.async_query(kinds=["view"])
    assert (lost["close_reason"], lost["end"]) == ("node_lost", 2e9)
    await a.async_view_closed(view, "server_restart")
    await tell(a, b, "a")
    [true_end] = await b.async_query(kinds=["view"])
    assert true_end["close_reason"] == "server_restart" and true_end["end"] < 2e9
    # And a view ends once: a second close changes nothing.
    await b.async_in_db(apply, "a", [check("a", {"op": "close", "id": view, "end_time": 3e9,
                                                 "close_reason": "late"})])
    assert (await b.async_query(kinds=["view"]))[0]["close_reason"] == "server_restart"
    with pytest.raises(sqlite3.IntegrityError):  # the journal's own rule holds
        await b.async_in_db(lambda c: c.execute("UPDATE journal SET end_time = 1 WHERE kind = 'view'"))


async def test_alone_no_change_waits_for_a_cluster(tmp_path: Path) -> None:
    journal = AuditJournal(tmp_path / "alone.sqlite3")
    await journal.async_open()
    try:
        for _ in range(3):
            await journal.async_event("login", OPERATOR)
        await journal.async_purge()
        assert await journal.async_in_db(pending_changes, 100) == (0, [])
    finally:
        await journal.async_close()


field_value = st.one_of(st.none(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.text(max_size=50),
                        st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                                   st.integers(), max_size=3))
message = st.dictionaries(st.sampled_from(["op", "id", "time", "end_time", "kind", "user_name", "role", "address",
                                           "user_agent", "target", "cameras", "communes", "detail",
                                           "close_reason", "bytes_sent", "zz"]),
                          field_value, max_size=12) | st.sampled_from([None, [], "x", 3])
entry = st.fixed_dictionaries({"op": st.just("entry"), "id": st.integers(1, 50), "time": st.floats(0, 2e9),
                               "kind": st.sampled_from(["view", "login"]), "user_name": st.text(max_size=20),
                               "role": st.text(min_size=1, max_size=10), "cameras": st.lists(st.text(max_size=8),
                                                                                            max_size=4),
                               "communes": st.lists(st.text(max_size=8), max_size=2), "detail": st.just({})})
close = st.fixed_dictionaries({"op": st.just("close"), "id": st.integers(1, 50), "end_time": st.floats(0, 2e9),
                               "close_reason": st.sampled_from(["closed", "node_lost"])})


@settings(max_examples=300, deadline=None)
@given(node=st.text(max_size=70), value=message)
def test_any_message_is_checked_or_refused_with_a_value_error(node: str, value) -> None:
    try:
        checked = check(node, value)
    except ValueError:
        return
    assert checked["op"] in ("entry", "close") and isinstance(checked["id"], int)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(entry | close, max_size=30))
def test_any_sequence_of_checked_messages_is_written_without_breaking_the_journal(tmp_path: Path, messages) -> None:
    import asyncio
    import tempfile

    async def run() -> None:
        journal = AuditJournal(Path(tempfile.mkdtemp(dir=tmp_path)) / "fuzz.sqlite3", node="b")
        await journal.async_open()
        try:
            await journal.async_in_db(apply, "a", [check("a", m) for m in messages])
            rows = await journal.async_query(limit=1000)
            assert len(rows) == len({m["id"] for m in messages if m["op"] == "entry"})  # once each
            assert all(r["node"] == "a" for r in rows)
        finally:
            await journal.async_close()
    asyncio.run(run())
