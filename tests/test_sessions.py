"""Session expiry and login throttling rules (pure, no server)."""

import time

from server.scope import (Principal, Role, can_view_camera, can_view_cameras, can_view_wall,
                          visible_cameras)
from server.sessions import LoginThrottle, SessionStore

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
    assert can_view_wall(operator, "w", set(), ["sud", None])
    assert can_view_cameras(AGENT, ["nord"]) and not can_view_cameras(AGENT, ["nord", "sud"])
    assert not can_view_cameras(AGENT, [])
    assert visible_cameras(AGENT, {"a": "nord", "b": "sud", "c": "nord"}) == ["a", "c"]
