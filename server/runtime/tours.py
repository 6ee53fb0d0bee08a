"""A tour: a wall that turns its pages (lists of cameras) every few seconds."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Tour:
    seconds: float
    pages: list[list[str | None]]
    index: int = 0
    task: asyncio.Task | None = field(default=None, repr=False)

    def as_json(self) -> dict:
        return {"seconds": self.seconds, "pages": self.pages, "page": self.index}
