"""Rates over a sliding window: frames, bytes, deliveries. Pure; used by cameras, walls
and hubs alike."""

from __future__ import annotations

from collections import deque


class RateMeter:
    """Events and bytes per second over a sliding window (running totals: reading the
    rates costs the same whatever the rate; walls read them for every cell on every tick)."""

    def __init__(self, window: float = 5.0) -> None:
        self._window = window
        self._events: deque[tuple[float, int]] = deque()
        self._amount = 0

    def add(self, now: float, amount: int = 1) -> None:
        self._events.append((now, amount))
        self._amount += amount
        self._trim(now)

    def _trim(self, now: float) -> None:
        horizon = now - self._window
        events = self._events
        while events and events[0][0] < horizon:
            self._amount -= events.popleft()[1]

    def rates(self, now: float) -> tuple[float, float]:
        """(events per second, amount per second)."""
        self._trim(now)
        if not self._events:
            return 0.0, 0.0
        span = max(now - self._events[0][0], 1.0)
        return len(self._events) / span, self._amount / span
