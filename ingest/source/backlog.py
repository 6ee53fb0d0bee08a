"""Bytes a camera sent us that nobody has read yet, per camera endpoint.

Why: a camera worker short of CPU reads its packets ever later, and the wall shows ever
older pictures while looking live (bench B: 14 s). A worker can see that it is behind its
camera's clock (ingest/source/lag.py), but not whose fault it is: on a thin link a big keyframe
and the frames queued behind it arrive late too, and skipping their decode would only
freeze that camera. What tells the two apart is where the data waits. When we are slow, it
waits in our socket's receive queue (the kernel holds it until we read); on a thin link it
waits upstream (the camera, the link) and our queue stays empty, since we read whatever
comes at once.

For cameras read by Vigie's own RTSP client the socket is ours and asked directly
(RtspClient.waiting). For the others FFmpeg owns the sockets and PyAV does not expose them,
so the queues are read the way `ss` reads them: /proc/net/tcp and tcp6 list every TCP
socket of the network namespace with its receive queue, remote address and inode;
/proc/self/fd says which inodes are ours. A
camera's sockets are ours whose remote address is the camera's (host, port): cameras
behind one recorder share theirs, and are judged together. RTSP over UDP is not covered:
FFmpeg's RTP sockets are not connected (no remote address), and a full UDP buffer drops
datagrams rather than queueing seconds of them. Linux only; elsewhere nothing ever waits.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
import threading
import time
from urllib.parse import unquote, urlsplit

logger = logging.getLogger(__name__)

PROC_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
SAMPLE_INTERVAL = 0.25  # seconds between readings
INODES_REFRESH = 2.0  # seconds between listings of our open sockets
IDLE_AFTER = 5.0  # seconds without a question before the monitor stops reading

Endpoint = tuple[str, int]  # (IP address as text, port)
Reading = dict[int, tuple[Endpoint, int]]  # inode -> (remote endpoint, bytes waiting)


def own_socket_inodes(fd_dir: str = "/proc/self/fd") -> set[str]:
    """Inodes (as text, as /proc/net prints them) of the sockets this process holds open."""
    inodes: set[str] = set()
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
            inodes.add(target[8:-1])
    return inodes


def normal_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An address as text, IPv4-mapped IPv6 ones as IPv4 (a dual-stack socket's view)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def parse_address(text: str) -> Endpoint:
    """'0100007F:22B8' (or 32 hex digits for IPv6) -> ('127.0.0.1', 8888). The kernel prints
    the address as 32-bit words in host order."""
    address, port = text.rsplit(":", 1)
    step = -1 if sys.byteorder == "little" else 1
    raw = b"".join(bytes.fromhex(address[i : i + 8])[::step] for i in range(0, len(address), 8))
    return normal_ip(ipaddress.ip_address(raw)), int(port, 16)


def parse_table(text: str, ours: set[str]) -> Reading:
    """Our sockets (inode in `ours`) with bytes waiting, from a /proc/net/tcp[6] table."""
    reading: Reading = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[9] not in ours or fields[4].endswith(":00000000"):
            continue  # not ours, or nothing waiting: the common case, kept cheap
        try:
            reading[int(fields[9])] = (parse_address(fields[2]), int(fields[4].split(":")[1], 16))
        except (IndexError, ValueError):
            continue
    return reading


def read_queues(ours: set[str]) -> Reading:
    reading: Reading = {}
    for table in PROC_TABLES:
        try:
            with open(table, encoding="ascii") as handle:
                reading.update(parse_table(handle.read(), ours))
        except OSError:
            continue
    return reading


class BacklogMonitor:
    """Reads our sockets' receive queues in a thread of its own, every SAMPLE_INTERVAL while
    some worker asks (one is behind its camera), and answers workers without waiting.

    Why a thread: under overload (when it matters) a reading takes long (a readlink per open
    file, each giving up the GIL to 64 busy threads); a worker that read it itself, or waited
    for another's reading, stopped reading its camera for seconds (bench B: cameras reported
    "no data for 20 s"). Our sockets change only when a camera (re)connects, so the set is
    listed every INODES_REFRESH only."""

    def __init__(self, interval: float = SAMPLE_INTERVAL) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._asked_at = 0.0
        self._readings: tuple[Reading, Reading] = ({}, {})  # the last two, newest last

    def waiting(self, endpoints: frozenset[Endpoint]) -> int:
        """Bytes waiting unread on one of our connections to `endpoints`, on both of the last
        two readings (SAMPLE_INTERVAL apart): one reading can catch a keyframe that just
        landed. 0 until the monitor has read twice since it was last asked."""
        self._asked_at = time.monotonic()
        if not self._wanted.is_set():
            self._wanted.set()
            self._start()
        older, newer = self._readings
        return max((min(queue, older[inode][1]) for inode, (remote, queue) in newer.items()
                    if remote in endpoints and inode in older), default=0)

    def stop(self) -> None:
        self._stopped.set()
        self._wanted.set()
        self._readings = ({}, {})

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="socket-backlog", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        ours: set[str] = set()
        listed = -INODES_REFRESH
        while not self._stopped.is_set():
            self._wanted.wait()
            if time.monotonic() - self._asked_at > IDLE_AFTER:
                self._readings = ({}, {})
                self._wanted.clear()  # nobody behind: sleep until someone asks
                continue
            try:
                now = time.monotonic()
                if now - listed >= INODES_REFRESH:
                    ours, listed = own_socket_inodes(), now
                self._readings = (self._readings[1], read_queues(ours))
            except Exception:  # noqa: BLE001 - never leave a stale reading behind
                logger.exception("reading the sockets' receive queues failed")
                self._readings = ({}, {})
            self._stopped.wait(self._interval)


MONITOR = BacklogMonitor()


class CameraBacklog:
    """`MONITOR.waiting` for one camera URL. Made right after the camera's connection is
    open, on its worker's thread: the host was just resolved for FFmpeg, so resolving it
    again is quick (later, when the worker is behind, a slow DNS would stop it reading)."""

    def __init__(self, url: str, monitor: BacklogMonitor = MONITOR) -> None:
        self._monitor = monitor
        self._endpoints = camera_endpoints(url)

    def __call__(self) -> int:
        return self._monitor.waiting(self._endpoints) if self._endpoints else 0


def camera_endpoints(url: str) -> frozenset[Endpoint]:
    """The (IP, port) pairs a camera URL's connection may go to (its host resolved, as
    FFmpeg resolves it); empty if it does not resolve (nothing is then ever ours)."""
    parts = urlsplit(url)
    try:
        port = parts.port or (322 if parts.scheme == "rtsps" else 554)
        host = unquote(parts.hostname or "").split("%")[0]  # [fe80::1%25eth0]: no zone
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return frozenset((normal_ip(ipaddress.ip_address(answer[4][0].split("%")[0])), port)
                         for answer in answers)
    except (OSError, ValueError, UnicodeError):
        return frozenset()
