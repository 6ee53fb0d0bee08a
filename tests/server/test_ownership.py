"""Which node pulls which camera: the pure decisions of server/cluster/ownership.py."""

from __future__ import annotations

from server.cluster.ownership import score, share, to_claim, to_release

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
