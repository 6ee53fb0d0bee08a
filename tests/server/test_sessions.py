"""Session expiry and login throttling rules (pure, no server)."""

import time

from server.access.scope import (Principal, Role, can_view_camera, can_view_cameras, can_view_wall,
                          visible_cameras)
from server.access.sessions import LoginThrottle, SessionStore

AGENT = Principal("agent", Role.POLICE, frozenset({"nord"}))


def test_idle_session_expires_and_activity_keeps_it():
    store = SessionStore(idle_seconds=0.3)
    token = store.create(AGENT, "10.0.0.1")
    for _ in range(3):
        time.sleep(0.15)
        assert store.get(token) is not None  # each use resets the idle clock
    time.sleep(0.4)
    assert store.get(token) is None
    assert len(store) == 0


def test_session_store_is_bounded_and_forgets_least_recent():
    store = SessionStore(idle_seconds=60, max_sessions=3)
    tokens = [store.create(AGENT, "a") for _ in range(3)]
    store.get(tokens[0])
    store.create(AGENT, "a")
    assert store.get(tokens[1]) is None and store.get(tokens[0]) is not None


def test_throttle_doubles_the_wait_after_free_attempts_per_user_and_address():
    throttle = LoginThrottle(free_attempts=3)
    for second in range(3):
        assert throttle.retry_after("bob", "1.2.3.4", now=second) == 0
        throttle.failed("bob", "1.2.3.4", now=second)
    assert throttle.retry_after("bob", "9.9.9.9", now=2.5) == 0.5   # the user is throttled
    assert throttle.retry_after("eve", "1.2.3.4", now=2.5) == 0.5   # so is the address
    throttle.failed("bob", "1.2.3.4", now=3)
    assert throttle.retry_after("bob", "1.2.3.4", now=3) == 2.0
    assert throttle.retry_after("BOB", "5.5.5.5", now=2000) == 0    # the window passed
    throttle.failed("bob", "1.2.3.4", now=4)
    throttle.succeeded("bob")
    assert throttle.retry_after("bob", "5.5.5.5", now=4) == 0


def test_scope_rules_default_to_refuse():
    operator = Principal("op", Role.OPERATOR)
    kiosk = Principal("kiosk:hall", Role.KIOSK, wall="centre")
    scraper = Principal("metrics", Role.METRICS)
    assert can_view_camera(AGENT, "nord") and not can_view_camera(AGENT, "sud")
    assert not can_view_camera(AGENT, None) and not can_view_camera(operator, None)
    assert can_view_camera(operator, "sud") and not can_view_camera(kiosk, "nord")
    assert not can_view_camera(scraper, "nord")
    # police: a wall meant for one of their communes, and every camera on it theirs
    assert can_view_wall(AGENT, "w", {"nord"}, ["nord", "nord"])
    assert not can_view_wall(AGENT, "w", {"nord"}, ["nord", "sud"])
    assert not can_view_wall(AGENT, "w", set(), ["nord", "nord"])  # an operator's wall
    assert not can_view_wall(AGENT, "w", {"sud"}, ["nord"])
    assert not can_view_wall(AGENT, "w", {"nord"}, ["nord", None])  # a camera gone: refused
    assert can_view_wall(AGENT, "tour-page", {"nord", "sud"}, [])   # an empty page shows nothing
    assert can_view_wall(kiosk, "centre", set(), ["sud"]) and not can_view_wall(kiosk, "other", set(), [])
    # a police station's screen: its wall only while every camera is of the wall's communes
    assert can_view_wall(kiosk, "centre", {"nord"}, ["nord"])
    assert not can_view_wall(kiosk, "centre", {"nord"}, ["nord", "sud"])
    assert can_view_wall(operator, "w", set(), ["sud", None])
    assert can_view_cameras(AGENT, ["nord"]) and not can_view_cameras(AGENT, ["nord", "sud"])
    assert not can_view_cameras(AGENT, [])
    assert visible_cameras(AGENT, {"a": "nord", "b": "sud", "c": "nord"}) == ["a", "c"]


def test_one_principal_cannot_push_everyone_elses_sessions_out():
    """A kiosk token used in a loop made 10,200 sessions: the global bound then evicted
    every user's session (and, with it, their open views)."""
    store = SessionStore(idle_seconds=60, max_sessions=10, max_per_principal=3)
    watching = store.create(AGENT, "a")
    store.get_by_digest(store.digest(watching)).views = 1  # a wall screen with a live view
    others = [store.create(Principal(f"user{i}", Role.OPERATOR), "b") for i in range(5)]
    ended = []
    store.on_ended = ended.extend
    kiosk = Principal("kiosk:hall", Role.KIOSK, wall="w")
    for _ in range(1000):
        store.create(kiosk, "c")
    assert len(store.list("kiosk:hall")) == 3
    assert all(store.get(token) is not None for token in [watching, *others])
    assert len(ended) == 997
    # over the global bound, the least recently used without a live view goes first
    for i in range(5):
        store.create(Principal(f"late{i}", Role.OPERATOR), "d")
    assert store.get(watching) is not None and len(store) == 10


def test_decoy_failures_do_not_push_a_locked_users_failures_out():
    throttle = LoginThrottle(free_attempts=3, max_keys=50)
    for second in range(4):
        throttle.failed("victim", "1.1.1.1", now=second)
    locked = throttle.retry_after("victim", "9.9.9.9", now=4)
    assert locked > 0
    for index in range(500):  # one failure from each of 500 addresses, for 500 names
        throttle.failed(f"decoy{index}", f"10.0.{index // 250}.{index % 250}", now=4)
    assert throttle.retry_after("victim", "9.9.9.9", now=4) == locked
    assert len(throttle._failures) <= 50
