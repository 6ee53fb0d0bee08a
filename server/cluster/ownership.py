"""Which node pulls which camera: the decisions, pure (table-tested), apart from NATS.

Each node keeps its share: at most ceil(cameras / live nodes). A node under its share claims
free cameras, the ones that score highest for it first (rendezvous hashing: nodes prefer
different cameras, so they seldom race for the same one). A node over its share gives back
its surplus only while another live node is short of floor(cameras / nodes): a node that
joins takes a share, and only that share moves.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence


def score(node: str, camera: str) -> int:
    """How much `node` prefers `camera` (rendezvous hashing: stable, spread evenly)."""
    return int.from_bytes(hashlib.blake2b(f"{node}\x00{camera}".encode(), digest_size=8).digest(), "big")


def share(cameras: int, nodes: int) -> int:
    return math.ceil(cameras / max(1, nodes))


def to_claim(node: str, eligible: Sequence[str], free: Iterable[str], owned: int, total: int,
             nodes: int) -> list[str]:
    """Free cameras this node should claim now, best first."""
    room = share(total, nodes) - owned
    if room <= 0:
        return []
    free_set = set(free)
    candidates = [camera for camera in eligible if camera in free_set]
    candidates.sort(key=lambda camera: score(node, camera), reverse=True)
    return candidates[:room]


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
