"""Which node pulls which camera: the decisions, pure (table-tested), apart from NATS.

Each node keeps its share: at most ceil(cameras / live nodes). A node under its share claims
free cameras, the ones that score highest for it first (rendezvous hashing: nodes prefer
different cameras, so they seldom race for the same one). A node over its share gives back
its surplus only while another live node is short of floor(cameras / nodes): a node that
joins takes a share, and only that share moves.

Shares count the cameras some live node may pull (`cameras[].nodes`, see `reachable`): one
no live node may pull counts nowhere. A camera only one live node may pull is that node's
whatever its share (nobody else would pull it), and it counts in that node's share.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Iterable, Mapping, Sequence


def score(node: str, camera: str) -> int:
    """How much `node` prefers `camera` (rendezvous hashing: stable, spread evenly)."""
    return int.from_bytes(hashlib.blake2b(f"{node}\x00{camera}".encode(), digest_size=8).digest(), "big")


def share(cameras: int, nodes: int) -> int:
    return math.ceil(cameras / max(1, nodes))


def reachable(allowed: Mapping[str, Collection[str]], live: Collection[str]) -> dict[str, set[str]]:
    """Per camera, the live nodes that may pull it (`allowed` empty: any node)."""
    return {camera: (set(nodes) & set(live)) if nodes else set(live) for camera, nodes in allowed.items()}


def to_claim(node: str, eligible: Sequence[str], free: Iterable[str], owned: int, total: int,
             nodes: int, pinned: Sequence[str] = ()) -> list[str]:
    """Free cameras this node should claim now, best first: the `pinned` ones (only this
    node may pull them) whatever its share, then of the `eligible` ones up to its share of
    `total` (`owned` of them it already has)."""
    free_set = set(free)
    claims = [camera for camera in pinned if camera in free_set]
    room = share(total, nodes) - owned - len(claims)
    if room > 0:
        candidates = [camera for camera in eligible if camera in free_set and camera not in claims]
        candidates.sort(key=lambda camera: score(node, camera), reverse=True)
        claims += candidates[:room]
    return claims


def to_release(node: str, owned: Sequence[str], total: int, counts: Mapping[str, int],
               movable: Sequence[str] | None = None) -> list[str]:
    """Cameras this node should give back now: its surplus over its share, while another
    live node (in `counts`, cameras owned per live node, this one included) is short;
    chosen among `movable` (those another live node may pull; default: all it owns)."""
    nodes = max(1, len(counts))
    surplus = len(owned) - share(total, nodes)
    floor = total // nodes
    if surplus <= 0 or not any(count < floor for name, count in counts.items() if name != node):
        return []
    candidates = owned if movable is None else [camera for camera in owned if camera in set(movable)]
    return sorted(candidates, key=lambda camera: score(node, camera))[:surplus]
