"""Open live views per user and per address: one script or one screen gone wrong cannot
take every stream slot. In a cluster they count on every node: each node tells its own
counts in its heartbeat, and the others' (as of their last heartbeat) are added here."""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from server.config.models import LimitsConfig


class ViewLimits:
    def __init__(self, limits: LimitsConfig) -> None:
        self.limits = limits
        self._by_user: Counter[str] = Counter()
        self._by_address: Counter[str] = Counter()
        # Open on the other nodes of a cluster, as their heartbeats last said.
        self.elsewhere: dict[str, Counter[str]] = {"users": Counter(), "addresses": Counter()}

    def take(self, user: str, address: str) -> None:
        """Count one more open view; 429 (and nothing counted) when over a limit."""
        if self._by_user[user] + self.elsewhere["users"][user] >= self.limits.viewers_per_user:
            raise web.HTTPTooManyRequests(text="too many open views for this user")
        if self._by_address[address] + self.elsewhere["addresses"][address] >= self.limits.viewers_per_address:
            raise web.HTTPTooManyRequests(text="too many open views from this address")
        self._by_user[user] += 1
        self._by_address[address] += 1

    def release(self, user: str, address: str) -> None:
        for counter, key in ((self._by_user, user), (self._by_address, address)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

    def counts(self) -> dict[str, dict[str, int]]:
        """This node's own counts, for its heartbeat."""
        return {"users": dict(self._by_user), "addresses": dict(self._by_address)}

    @property
    def open_views(self) -> int:
        return sum(self._by_address.values())
