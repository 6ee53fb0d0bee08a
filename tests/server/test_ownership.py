"""Which node pulls which camera: the pure decisions of server/cluster/ownership.py."""

from __future__ import annotations

from server.cluster.ownership import reachable, score, share, to_claim, to_release

CAMERAS = [f"c{i}" for i in range(12)]


def test_shares_are_even_and_claims_prefer_different_cameras() -> None:
    assert (share(12, 3), share(13, 3), share(5, 0)) == (4, 5, 5)
    claims = {node: to_claim(node, CAMERAS, CAMERAS, 0, 12, 3) for node in "abc"}
    assert all(len(claimed) == 4 for claimed in claims.values())
    # Rendezvous hashing: the nodes' first choices overlap little, so they seldom race.
    assert len(set().union(*claims.values())) >= 8
    assert to_claim("a", CAMERAS, CAMERAS, 4, 12, 3) == []  # its share is full
    assert to_claim("a", CAMERAS, ["c3"], 0, 12, 3) == ["c3"]  # only free cameras
    assert to_claim("a", ["c1"], CAMERAS, 0, 12, 3) == ["c1"]  # only those it can reach
    assert score("a", "c1") == score("a", "c1") != score("b", "c1")


def test_surplus_is_given_back_only_to_a_node_that_is_short() -> None:
    owned = CAMERAS[:6]
    # Two nodes 6/6, a third joins with none: each gives back its surplus over 4.
    released = to_release("a", owned, 12, {"a": 6, "b": 6, "c": 0})
    assert len(released) == 2 and set(released) <= set(owned)
    assert released == to_release("a", owned, 12, {"a": 6, "b": 6, "c": 0})  # stable
    # Nobody short (the third already has its floor): nothing moves for a ceil's sake.
    assert to_release("a", CAMERAS[:5], 13, {"a": 5, "b": 4, "c": 4}) == []
    assert to_release("a", CAMERAS[:4], 12, {"a": 4, "b": 4, "c": 4}) == []
    # Alone: keeps everything.
    assert to_release("a", CAMERAS, 12, {"a": 12}) == []


def test_only_cameras_another_node_may_pull_are_given_back() -> None:
    owned = CAMERAS[:8]  # c0 and c1 only this node can reach
    released = to_release("a", owned, 12, {"a": 8, "b": 4}, movable=CAMERAS[2:8])
    assert len(released) == 2 and not {"c0", "c1"} & set(released)
    assert to_release("a", ["c0", "c1", "c2"], 3, {"a": 3, "b": 0}, movable=[]) == []


def test_cameras_only_one_live_node_may_pull_are_its_own_whatever_its_share() -> None:
    allowed = {"p0": {"a"}, "p1": {"a"}, "p2": {"a"}, "p3": {"a"}, "g0": {"gone"},
               "ab": {"a", "b"}, "x": set(), "y": set()}
    reach = reachable(allowed, ["a", "b"])
    assert reach == {"p0": {"a"}, "p1": {"a"}, "p2": {"a"}, "p3": {"a"}, "g0": set(),
                     "ab": {"a", "b"}, "x": {"a", "b"}, "y": {"a", "b"}}
    assignable = [camera for camera, nodes in reach.items() if nodes]  # g0 counts nowhere
    pinned = [camera for camera in assignable if reach[camera] == {"a"}]
    # The four pinned cameras, though a's share of the 7 is 4: nobody else may pull them.
    claims = to_claim("a", assignable, list(allowed), 0, len(assignable), 2, pinned)
    assert claims == pinned
    # Its share more than full, a still claims a pinned camera that became free.
    assert to_claim("a", assignable, ["p2", "x"], 6, len(assignable), 2, pinned) == ["p2"]
    # b takes the rest, never a pinned one, and a gives back none of the pinned ones to b.
    eligible_b = [camera for camera in assignable if "b" in reach[camera]]
    assert sorted(to_claim("b", eligible_b, list(allowed), 0, len(assignable), 2)) == ["ab", "x", "y"]
    movable = [camera for camera in pinned if reach[camera] & {"b"}]
    assert to_release("a", pinned, len(assignable), {"a": 4, "b": 3}, movable) == []
    # With 2 pinned of 12, two nodes still split 6/6.
    allowed = {f"c{i}": ({"a"} if i < 2 else set()) for i in range(12)}
    reach = reachable(allowed, ["a", "b"])
    pinned = [camera for camera in allowed if reach[camera] == {"a"}]
    claims_a = to_claim("a", list(allowed), list(allowed), 0, 12, 2, pinned)
    assert len(claims_a) == 6 and set(pinned) <= set(claims_a)
    # Alone, a node takes every camera it may pull.
    assert reachable(allowed, ["a"])["c5"] == {"a"}
