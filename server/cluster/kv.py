"""The JetStream key-value buckets of the cluster (memory storage, the lease as the
bucket's TTL): opened or made, and what a watch has seen of an entry."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import NotFoundError


@dataclass
class Seen:
    value: str
    at: float  # monotonic time of its last put


async def open_bucket(js, name: str, ttl: float):
    """The bucket, made if it does not exist (the first node, or after NATS forgot it)."""
    try:
        return await js.key_value(name)
    except NotFoundError:
        return await js.create_key_value(KeyValueConfig(bucket=name, ttl=ttl, history=1,
                                                        storage=StorageType.MEMORY))


async def quietly(operation) -> None:
    """A NATS call whose failure changes nothing (the connection is closing, the entry
    expires anyway)."""
    try:
        await operation
    except Exception:  # noqa: BLE001
        pass
