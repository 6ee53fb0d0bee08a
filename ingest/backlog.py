"""Bytes received by this process's camera connections that nobody has read yet.

Why: a camera worker short of CPU reads its packets ever later, and the wall shows ever
older pictures while looking live (bench B: 14 s). A worker can see that it is behind its
camera's clock (ingest/lag.py), but not whose fault it is: on a thin link a big keyframe
and the frames queued behind it arrive late too, and skipping their decode would only
freeze that camera. What tells the two apart is where the data waits. When we are slow, it
waits in our sockets' receive queues (the kernel holds it until we read); on a thin link it
waits upstream (the camera, the link) and our queues stay empty, since we read whatever
comes at once.

FFmpeg owns the sockets and PyAV does not expose them, so the queues are read the way `ss`
reads them: /proc/net/{tcp,tcp6,udp,udp6} list every socket of the network namespace with
its receive queue and inode, /proc/self/fd says which inodes are ours. Connections accepted
by our own listening sockets (viewers, the API) are left out: only outbound ones count,
which for Vigie are the cameras. Linux only; elsewhere the backlog reads 0 (never behind).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

PROC_TABLES = ("/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6")
TCP_LISTEN = 0x0A  # st column of /proc/net/tcp
SAMPLE_INTERVAL = 0.25  # seconds between readings
INODES_REFRESH = 2.0  # seconds between listings of our open sockets


@dataclass(frozen=True)
class SocketQueue:
    local_port: int
    state: int
    receive_queue: int  # bytes received, not yet read
    inode: int


def own_socket_inodes(fd_dir: str = "/proc/self/fd") -> set[int]:
    """Inodes of the sockets this process holds open."""
    inodes: set[int] = set()
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def parse_table(text: str) -> list[SocketQueue]:
    """Rows of a /proc/net/{tcp,udp}[6] table (header line skipped)."""
    rows = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            state = int(fields[3], 16)
            receive_queue = int(fields[4].split(":")[1], 16)
            inode = int(fields[9])
        except (IndexError, ValueError):
            continue
        rows.append(SocketQueue(local_port, state, receive_queue, inode))
    return rows


def outbound_backlog(ours: set[int] | None = None) -> int:
    """The largest receive queue (bytes) among this process's outbound connections (`ours`:
    the inodes of our sockets, read now if not given)."""
    if ours is None:
        ours = own_socket_inodes()
    if not ours:
        return 0
    rows: list[SocketQueue] = []
    for table in PROC_TABLES:
        try:
            with open(table, encoding="ascii") as handle:
                rows.extend(row for row in parse_table(handle.read()) if row.inode in ours)
        except OSError:
            continue
    listening = {row.local_port for row in rows if row.state == TCP_LISTEN}
    return max((row.receive_queue for row in rows
                if row.state != TCP_LISTEN and row.local_port not in listening), default=0)


class BacklogMonitor:
    """Reads `outbound_backlog()` in a thread of its own, every SAMPLE_INTERVAL, started by
    the first worker that asks; workers read its last result without waiting.

    Why a thread: under overload (when it matters) a reading takes long (one readlink per
    open file, each giving up the GIL to 64 busy threads); a worker that read it itself, or
    waited for another's reading, stopped reading its camera for seconds (bench B: cameras
    reported "no data for 20 s"). Our own sockets change only when a camera (re)connects,
    so the set is refreshed every INODES_REFRESH only."""

    def __init__(self, interval: float = SAMPLE_INTERVAL) -> None:
        self._interval = interval
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._samples = (0, 0)  # the last two readings, newest last

    def persistent(self) -> int:
        """Bytes waiting unread in one of our connections on both of the last two readings
        (SAMPLE_INTERVAL apart): one reading can catch a keyframe that just landed."""
        if self._thread is None:
            self._start()
        return min(self._samples)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="socket-backlog", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        inodes: set[int] = set()
        refreshed = -INODES_REFRESH
        while True:
            now = time.monotonic()
            if now - refreshed >= INODES_REFRESH:
                inodes, refreshed = own_socket_inodes(), now
            self._samples = (self._samples[1], outbound_backlog(inodes))
            time.sleep(self._interval)


MONITOR = BacklogMonitor()
