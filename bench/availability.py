"""How long the availability figures of a month take (issue 25), on a real SQLite journal:

    python -m bench.availability [--cameras N] [--incidents K] [--restarts R]

A month of N cameras (default 1000, in 120 communes), K incidents each (default 20: stream
outages and picture conditions, 10 s to 2 h), R runs of Vigie (default 10), written straight
into a fresh journal; then, three times, the history read on the journal's thread
(server/audit/incidents.py) and the figures computed (server/audit/availability.py), as
GET /api/availability does. Prints the milliseconds of each step; the target is a
month's page answering within a second (read + compute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from server.audit import AuditJournal
from server.audit.availability import availability
from server.audit.incidents import history

TARGET_SECONDS = 1.0
DAY = 86400.0


def _fill(connection: sqlite3.Connection, cameras: dict[str, str], incidents: int, restarts: int,
          start: float, now: float) -> None:
    rng = random.Random(1)
    connection.execute("BEGIN")
    for camera, commune in cameras.items():
        for _ in range(incidents):
            begins = rng.uniform(start, now - 3600)
            kind = rng.choice(["camera_stream", "camera_picture"])
            state = "offline" if kind == "camera_stream" else rng.choice(["frozen", "covered", "too_dark"])
            detail = json.dumps({"state": state, "incident": f"{rng.getrandbits(64):016x}"})
            cursor = connection.execute(
                "INSERT INTO journal (kind, time, end_time, duration, user_name, role, address, user_agent, "
                "target_kind, target, cameras, communes, detail) VALUES (?, ?, ?, 0, 'vigie', 'system', '', '', "
                "'camera', ?, ?, ?, ?)", (kind, begins, begins + rng.uniform(10, 7200), camera,
                                          json.dumps([camera]), json.dumps([commune]), detail))
            connection.execute("INSERT INTO journal_camera VALUES (?, ?)", (cursor.lastrowid, camera))
    span = (now - start) / restarts
    for run in range(restarts):
        connection.execute("INSERT INTO journal (kind, time, end_time, user_name, role, address, user_agent) "
                           "VALUES ('vigie_run', ?, ?, 'vigie', 'system', '', '')",
                           (start + run * span, start + (run + 1) * span - 600))
    connection.execute("COMMIT")


async def _bench(count: int, incidents: int, restarts: int) -> bool:
    now = time.time()
    start = now - 30 * DAY
    cameras = {f"cam{i:04d}": f"commune{i % 120:03d}" for i in range(count)}
    with tempfile.TemporaryDirectory() as folder:
        journal = AuditJournal(Path(folder) / "journal.sqlite3")
        await journal.async_open()
        try:
            await journal.async_in_db(_fill, cameras, incidents, restarts, start, now)
            worst = 0.0
            for _ in range(3):
                began = time.perf_counter()
                found = await journal.async_in_db(history, start, now, set(cameras))
                read = time.perf_counter() - began
                began = time.perf_counter()
                report = availability(cameras, found.periods, found.works, found.runs, start, now, now)
                computed = time.perf_counter() - began
                worst = max(worst, read + computed)
                print(f"{len(found.periods)} periods, {len(report['communes'])} communes: "
                      f"read {read * 1000:.0f} ms, computed {computed * 1000:.0f} ms")
        finally:
            await journal.async_close()
    passed = worst <= TARGET_SECONDS
    print(f"a month's figures in {worst * 1000:.0f} ms at worst (target {TARGET_SECONDS * 1000:.0f} ms): "
          f"{'PASS' if passed else 'FAIL'}")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=1000)
    parser.add_argument("--incidents", type=int, default=20)
    parser.add_argument("--restarts", type=int, default=10)
    arguments = parser.parse_args()
    raise SystemExit(0 if asyncio.run(_bench(arguments.cameras, arguments.incidents, arguments.restarts)) else 1)


if __name__ == "__main__":
    main()
