"""The JetStream key-value buckets of the cluster (memory storage, the lease as the
bucket's TTL): opened or made, what a watch has seen of an entry, and what the nodes'
heartbeats (entries of `vigie_nodes`) count."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import NotFoundError


@dataclass
class Seen:
    value: str
    at: float  # monotonic time of its last put


async def open_bucket(js, name: str, ttl: float | None, replicas: int = 1, storage: StorageType = StorageType.MEMORY):
    """The bucket, made if it does not exist (the first node, or after NATS forgot it).
    `ttl` None: entries live until deleted."""
    try:
        return await js.key_value(name)
    except NotFoundError:
        return await js.create_key_value(KeyValueConfig(bucket=name, ttl=ttl, history=1, storage=storage,
                                                        replicas=replicas))


async def quietly(operation) -> None:
    """A NATS call whose failure changes nothing (the connection is closing, the entry
    expires anyway)."""
    try:
        await operation
    except Exception:  # noqa: BLE001
        pass


def counts_elsewhere(heartbeats: Iterable[str]) -> tuple[dict[str, Counter[str]], Counter[str]]:
    """The open views (by user and by address) and the mosaics (by user) that these nodes'
    heartbeats count; one that does not parse counts as nothing."""
    views: dict[str, Counter[str]] = {"users": Counter(), "addresses": Counter()}
    mosaics: Counter[str] = Counter()
    for beat_text in heartbeats:
        try:
            beat = json.loads(beat_text)
            for kind in views:
                views[kind].update({str(k): int(v) for k, v in beat.get("views", {}).get(kind, {}).items()})
            mosaics.update({str(k): int(v) for k, v in beat.get("mosaics", {}).items()})
        except (ValueError, TypeError, AttributeError):
            continue
    return views, mosaics
