"""Open live views per user and per address: one script or one screen gone wrong cannot
take every stream slot."""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from server.config.models import LimitsConfig


class ViewLimits:
    def __init__(self, limits: LimitsConfig) -> None:
        self.limits = limits
        self._by_user: Counter[str] = Counter()
        self._by_address: Counter[str] = Counter()

    def take(self, user: str, address: str) -> None:
        """Count one more open view; 429 (and nothing counted) when over a limit."""
        if self._by_user[user] >= self.limits.viewers_per_user:
            raise web.HTTPTooManyRequests(text="too many open views for this user")
        if self._by_address[address] >= self.limits.viewers_per_address:
            raise web.HTTPTooManyRequests(text="too many open views from this address")
        self._by_user[user] += 1
        self._by_address[address] += 1

    def release(self, user: str, address: str) -> None:
        for counter, key in ((self._by_user, user), (self._by_address, address)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

    @property
    def open_views(self) -> int:
        return sum(self._by_address.values())
