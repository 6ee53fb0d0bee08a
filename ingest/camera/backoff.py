"""Reconnect delays: stepped back-off, reset after a period of stable frames."""

from __future__ import annotations

BACKOFF_STEPS: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_RESET_AFTER = 60.0  # seconds of frames after which the next failure starts at step one


def backoff_delay(failures: int, steps: tuple[float, ...] = BACKOFF_STEPS) -> float:
    """Delay before reconnect attempt number `failures` (1 = first failure); capped."""
    if failures <= 0:
        return 0.0
    return steps[min(failures, len(steps)) - 1]
