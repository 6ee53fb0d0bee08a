"""Child process for the kill -9 test of the audit journal: records one closed view and one
open view, says READY, then waits to be killed. Usage: audit_crash_child.py JOURNAL_PATH"""

from __future__ import annotations

import asyncio
import sys

from server.audit import AuditJournal, Client

CLIENT = Client(user="agent.dupont", role="operator", address="10.0.0.7", user_agent="child")


async def main(path: str) -> None:
    journal = AuditJournal(path)
    await journal.async_open()
    first = await journal.async_view_opened(CLIENT, target_kind="camera", target_id="cam1",
                                            cameras=["cam1"], communes=["Vence"], output="mjpeg")
    await asyncio.sleep(0.05)
    await journal.async_view_closed(first)
    await journal.async_view_opened(CLIENT, target_kind="wall", target_id="mur-centre",
                                    cameras=["cam1", "cam2"], communes=["Vence"], output="ws")
    print("READY", first, flush=True)
    await asyncio.sleep(60)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
