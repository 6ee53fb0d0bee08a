"""A fault-injecting TCP proxy for tests: sits between a camera (upstream) and Vigie.

    proxy = FaultProxy(simulator.port).start()      # listens on 127.0.0.1:<proxy.port>
    url = proxy.url("cam1")                         # rtsp://127.0.0.1:<proxy.port>/cam1
    proxy.latency(300)                              # every chunk delayed 300 ms, in order
    proxy.stall(after_handshake=True)               # RTSP answers, then silence
    proxy.garbage()                                 # random bytes after the PLAY answer
    proxy.reset()                                   # RST every connection, now and new ones
    proxy.refuse()                                  # listener closed: connect() is refused
    proxy.blackhole()                               # accept, read, never answer
    proxy.down()                                    # refuse new + RST current (camera killed)
    proxy.reset_connections()                       # one-shot RST of current connections
    proxy.pass_through()
    proxy.stop()

Modes switch at run time from any thread; a mode call returns once it is in force.
Fault modes apply as follows:
  pass, latency   every connection, from the next chunk on (latency: delay stamped at read)
  stall, garbage  every connection; with `after_handshake` (default for garbage) only the
                  bytes after the answer to PLAY (or, with `after_bytes=K`, after the first
                  K bytes the camera sent on that connection)
  reset           current connections are reset at once; new ones are reset on accept
  refuse          the listening socket is closed (connections refused); current ones live on
  blackhole       new connections are accepted and read, never answered nor forwarded

One asyncio loop in one daemon thread per proxy, 127.0.0.1 only. Memory is bounded: each
direction of a connection queues at most `max_buffer` bytes, then stops reading (TCP
back-pressure, as a congested link does); at most `max_connections` connections at once.
Standard library only.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

__all__ = ["FaultProxy", "Mode"]

CHUNK = 16 * 1024
PLAY_REQUEST = b"PLAY "
HEADER_END = b"\r\n\r\n"


class Mode(str, enum.Enum):
    PASS = "pass"
    LATENCY = "latency"
    STALL = "stall"
    RESET = "reset"
    REFUSE = "refuse"
    GARBAGE = "garbage"
    BLACKHOLE = "blackhole"


@dataclass
class _Settings:
    mode: Mode = Mode.PASS
    latency: float = 0.0            # seconds added to every chunk (mode LATENCY)
    after_handshake: bool = False   # STALL/GARBAGE: spare the RTSP handshake
    after_bytes: int | None = None  # STALL/GARBAGE: spare the first K bytes from the camera


@dataclass
class _Item:
    due: float       # loop time at which the chunk may be written
    data: bytes
    faultable: bool  # past the handshake / the first K bytes: STALL applies to it


@dataclass
class _Direction:
    """One direction of a connection: a bounded queue between a reader and a writer task."""

    queue: collections.deque = field(default_factory=collections.deque)
    queued: int = 0
    eof: bool = False
    data: asyncio.Event = field(default_factory=asyncio.Event)
    space: asyncio.Event = field(default_factory=asyncio.Event)


class _Connection:
    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task] = []
        self.play_sent = False
        self.handshake_done = False
        self.header_tail = b""      # last bytes of the camera's answer, to find its end
        self.from_camera = 0        # bytes the camera sent on this connection
        self.closed = False

    def faultable(self, settings: _Settings, downstream_bytes_before: int) -> bool:
        if settings.after_bytes is not None:
            return downstream_bytes_before >= settings.after_bytes
        if settings.after_handshake:
            return self.handshake_done
        return True


def _abort_with_rst(writer: asyncio.StreamWriter | None) -> None:
    """Close a connection with a TCP RST (SO_LINGER 0) instead of a FIN."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class FaultProxy:
    """A TCP proxy 127.0.0.1:port -> upstream_host:upstream_port with switchable faults."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1",
                 listen_host: str = "127.0.0.1", port: int = 0,
                 max_buffer: int = 1 << 20, max_connections: int = 64,
                 connect_timeout: float = 5.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listen_host = listen_host
        self._port = port
        self.max_buffer = max_buffer
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self._settings = _Settings()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[_Connection] = set()
        self._changed: asyncio.Event | None = None
        # Counters, readable from any thread.
        self.accepted = 0
        self.resets = 0
        self.bytes_down = 0  # camera -> client, as forwarded
        self.bytes_up = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._startup())
            except BaseException as error:  # noqa: BLE001 - reported to start()
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"faultproxy-{self.upstream[1]}",
                                        daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            self._thread.join(5)
            self._thread = None
            raise RuntimeError(f"fault proxy cannot start: {failure[0]}")
        return self

    def stop(self) -> None:
        """Close the listener and every connection, stop the loop, join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- information -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def mode(self) -> Mode:
        return self._settings.mode

    @property
    def active(self) -> int:
        return len(self._connections)

    def url(self, path: str) -> str:
        return f"rtsp://{self.listen_host}:{self.port}/{path.strip('/')}"

    # -- modes (any thread) ------------------------------------------------------------------
    def pass_through(self) -> None:
        self._set(_Settings(Mode.PASS))

    def latency(self, milliseconds: float) -> None:
        self._set(_Settings(Mode.LATENCY, latency=milliseconds / 1000.0))

    def stall(self, after_handshake: bool = False, after_bytes: int | None = None) -> None:
        self._set(_Settings(Mode.STALL, after_handshake=after_handshake, after_bytes=after_bytes))

    def garbage(self, after_bytes: int | None = None) -> None:
        """Random bytes instead of the camera's, after the answer to PLAY (or K bytes)."""
        self._set(_Settings(Mode.GARBAGE, after_handshake=True, after_bytes=after_bytes))

    def reset(self) -> None:
        self._set(_Settings(Mode.RESET))

    def refuse(self) -> None:
        self._set(_Settings(Mode.REFUSE))

    def blackhole(self) -> None:
        self._set(_Settings(Mode.BLACKHOLE))

    def down(self) -> None:
        """A camera that died: new connections refused, current ones reset."""
        self._set(_Settings(Mode.REFUSE))
        self.reset_connections()

    def reset_connections(self) -> None:
        """RST every current connection once; the mode stays."""
        self._call(self._reset_all)

    def _set(self, settings: _Settings) -> None:
        self._call(self._apply, settings)

    def _call(self, function, *args) -> None:
        if self._loop is None or self._thread is None:
            raise RuntimeError("fault proxy is not running")

        async def call() -> None:
            result = function(*args)
            if asyncio.iscoroutine(result):
                await result

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)

    # -- the loop side -----------------------------------------------------------------------
    async def _startup(self) -> None:
        self._changed = asyncio.Event()
        await self._listen()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        deadline = time.monotonic() + 5.0
        while True:
            try:
                self._server = await asyncio.start_server(
                    self._on_client, self.listen_host, self._port, reuse_address=True,
                    limit=CHUNK, backlog=64)
                break
            except OSError:
                if not self._port or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)  # our own port, briefly held: try again
        self._port = self._server.sockets[0].getsockname()[1]

    async def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            # Do not wait_closed(): since 3.12 it waits for every connection to end.

    async def _apply(self, settings: _Settings) -> None:
        self._settings = settings
        if settings.mode == Mode.REFUSE:
            await self._unlisten()
        else:
            await self._listen()
        if settings.mode == Mode.RESET:
            self._reset_all()
        self._notify()

    def _notify(self) -> None:
        assert self._changed is not None
        self._changed.set()
        self._changed = asyncio.Event()

    def _reset_all(self) -> None:
        for connection in list(self._connections):
            self._close(connection, rst=True)

    async def _shutdown(self) -> None:
        await self._unlisten()
        for connection in list(self._connections):
            self._close(connection, rst=True)
        tasks = [task for connection in list(self._connections) for task in connection.tasks]
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
                tasks.append(task)
        await asyncio.gather(*tasks, return_exceptions=True)

    def _close(self, connection: _Connection, rst: bool = False) -> None:
        if connection.closed:
            return
        connection.closed = True
        self._connections.discard(connection)
        if rst:
            self.resets += 1
            _abort_with_rst(connection.client)
            _abort_with_rst(connection.upstream)
        else:
            for writer in (connection.client, connection.upstream):
                if writer is not None:
                    writer.close()
        current = asyncio.current_task()
        for task in connection.tasks:
            if task is not current:
                task.cancel()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(writer)
        self.accepted += 1
        mode = self._settings.mode
        if mode in (Mode.RESET, Mode.REFUSE) or len(self._connections) >= self.max_connections:
            # REFUSE: a connection that raced the listener's close.
            connection.closed = True
            self.resets += 1
            _abort_with_rst(writer)
            return
        self._connections.add(connection)
        connection.tasks.append(asyncio.current_task())
        try:
            if mode == Mode.BLACKHOLE:
                while await reader.read(CHUNK):
                    pass  # read and forget; never answer
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.upstream, limit=CHUNK), self.connect_timeout)
            except (OSError, asyncio.TimeoutError):
                self._close(connection, rst=True)  # the camera is not there: as if refused
                return
            if connection.closed:  # reset while connecting
                _abort_with_rst(up_writer)
                return
            connection.upstream = up_writer
            up, down = _Direction(), _Direction()
            loop = asyncio.get_running_loop()
            connection.tasks += [
                loop.create_task(self._read(connection, reader, up, downstream=False)),
                loop.create_task(self._write(connection, up_writer, up, downstream=False)),
                loop.create_task(self._read(connection, up_reader, down, downstream=True)),
                loop.create_task(self._write(connection, writer, down, downstream=True)),
            ]
            await asyncio.gather(*connection.tasks[1:], return_exceptions=True)
        except (asyncio.CancelledError, ConnectionError, OSError):
            pass
        finally:
            self._close(connection)

    async def _read(self, connection: _Connection, reader: asyncio.StreamReader,
                    direction: _Direction, downstream: bool) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while direction.queued >= self.max_buffer:
                    direction.space.clear()
                    await direction.space.wait()
                data = await reader.read(CHUNK)
                if not data:
                    break
                for item in self._split(connection, data, downstream, loop.time()):
                    direction.queue.append(item)
                    direction.queued += len(item.data)
                direction.data.set()
        except (ConnectionError, OSError):
            pass
        finally:
            direction.eof = True
            direction.data.set()

    def _split(self, connection: _Connection, data: bytes, downstream: bool,
               now: float) -> list[_Item]:
        """Cut a chunk where the fault begins (end of the handshake, byte K); apply garbage."""
        settings = self._settings
        due = now + (settings.latency if settings.mode == Mode.LATENCY else 0.0)
        if not downstream:
            if not connection.play_sent and PLAY_REQUEST in data:
                connection.play_sent = True
            return [_Item(due, data, connection.faultable(settings, connection.from_camera))]
        # Camera -> client: find the end of the answer to PLAY in this chunk.
        pieces: list[tuple[bytes, bool]] = []
        start = connection.from_camera
        boundary = None
        if not connection.handshake_done and connection.play_sent:
            window = connection.header_tail + data
            at = window.find(HEADER_END)
            if at >= 0:
                boundary = max(0, at + len(HEADER_END) - len(connection.header_tail))
                connection.handshake_done = True
            else:
                connection.header_tail = window[-(len(HEADER_END) - 1):]
        if settings.after_bytes is not None:
            boundary = min(max(0, settings.after_bytes - start), len(data))
            pieces = [(data[:boundary], False), (data[boundary:], True)]
        elif settings.after_handshake:
            if boundary is not None:
                pieces = [(data[:boundary], False), (data[boundary:], True)]
            else:
                pieces = [(data, connection.handshake_done)]
        else:
            pieces = [(data, True)]
        connection.from_camera += len(data)
        items = []
        for piece, faultable in pieces:
            if not piece:
                continue
            if faultable and settings.mode == Mode.GARBAGE:
                piece = os.urandom(len(piece))
            items.append(_Item(due, piece, faultable))
        return items

    def _stalled(self, item: _Item) -> bool:
        return self._settings.mode == Mode.STALL and item.faultable

    async def _write(self, connection: _Connection, writer: asyncio.StreamWriter,
                     direction: _Direction, downstream: bool) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not direction.queue:
                    if direction.eof:
                        break
                    direction.data.clear()
                    await direction.data.wait()
                    continue
                item = direction.queue[0]
                changed = self._changed
                if self._stalled(item):
                    await changed.wait()  # until the mode changes
                    continue
                delay = item.due - loop.time()
                if delay > 0:
                    try:
                        await asyncio.wait_for(changed.wait(), delay)
                    except asyncio.TimeoutError:
                        pass
                    continue  # re-check the mode: a stall may have begun meanwhile
                direction.queue.popleft()
                direction.queued -= len(item.data)
                direction.space.set()
                writer.write(item.data)
                if downstream:
                    self.bytes_down += len(item.data)
                else:
                    self.bytes_up += len(item.data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # One side is done (EOF or error): what was queued is flushed; end the other.
            self._close(connection)
