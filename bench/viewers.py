"""Bench viewers: many cheap MJPEG and WebSocket clients of one Vigie, in one process.

    python -m bench.viewers

Run by the bench as a separate process, so its CPU is counted apart from Vigie's. Commands
come as JSON lines on stdin, answers as JSON lines on stdout:
  {"cmd": "open", "base_url": URL, "headers": {...},
   "viewers": [{"path": "/walls/w/mjpeg", "kind": "mjpeg"|"ws", "capture": bool}]}
      opens them all at once (started before Vigie, told where it is once it is up); answers {"opened": [ids]} once each is connected (or failed).
  {"cmd": "wait_frames", "ids": [...], "timeout": s}
      answers {"ready": n, "missing": [ids]} once each of `ids` has received a frame.
  {"cmd": "counts"}  answers {"counts": [frames per viewer]}.
  {"cmd": "trim", "before": T}  drops captured messages that arrived before T.
  {"cmd": "dump", "path": P}
      writes every viewer's arrival times (and, for capturing viewers, every message) to P
      (pickle), answers {"dumped": P} and exits. Stdin EOF also exits.

MJPEG viewers speak HTTP/1.0 on a raw asyncio protocol and never copy a frame they do not
capture: they follow Content-Length through the byte stream and note each frame's arrival.
WebSocket viewers use aiohttp (binary messages: JPEG frames, or the fMP4 init segment then
one fragment per frame; text messages: hello and wall changes, kept).
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import re
import signal
import sys
import threading
import time
from urllib.parse import urlsplit

import aiohttp

CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)
CHUNKED = re.compile(rb"^transfer-encoding:\s*chunked", re.IGNORECASE | re.MULTILINE)


class Viewer:
    def __init__(self, index: int, path: str, kind: str, capture: bool) -> None:
        self.index, self.path, self.kind, self.capture = index, path, kind, capture
        self.times: list[float] = []          # arrival of each frame (time.time())
        self.frames: list[tuple[float, bytes]] = []  # captured messages (time, bytes)
        self.texts: list[str] = []
        self.error: str | None = None
        self.opened_at: float | None = None
        self.first = asyncio.Event()
        self.closed = False
        self.closed_on_purpose = False

    def result(self) -> dict:
        return {"index": self.index, "path": self.path, "kind": self.kind,
                "capture": self.capture, "times": self.times, "frames": self.frames,
                "texts": self.texts, "error": self.error, "opened_at": self.opened_at}


class Dechunker:
    """HTTP/1.1 chunked transfer decoding, incremental: bytes in, the payload's pieces out."""

    def __init__(self) -> None:
        self.state = "size"  # size line, data, the CRLF after the data, done
        self.remaining = 0
        self.line = bytearray()

    def feed(self, data: bytes | memoryview) -> list[memoryview]:
        pieces = []
        view = memoryview(data)
        while view and self.state != "done":
            if self.state == "data":
                take = min(self.remaining, len(view))
                pieces.append(view[:take])
                view, self.remaining = view[take:], self.remaining - take
                if self.remaining == 0:
                    self.state = "crlf"
                continue
            end = bytes(view[:64]).find(b"\n")  # size lines and CRLFs are short
            if end < 0:
                self.line += view[:64]
                view = view[64:]
                continue
            self.line += view[:end + 1]
            view = view[end + 1:]
            line, self.line = bytes(self.line).strip(), bytearray()
            if self.state == "crlf":
                self.state = "size"
            else:
                self.remaining = int(line.split(b";")[0], 16)
                self.state = "data" if self.remaining else "done"
        return pieces


class MjpegProtocol(asyncio.Protocol):
    """HTTP/1.1 multipart reader, as a browser: response headers, then parts (headers,
    Content-Length), chunked transfer or not."""

    def __init__(self, viewer: Viewer, request: bytes, connected: asyncio.Future) -> None:
        self.viewer = viewer
        self.request = request
        self.connected = connected
        self.buffer = bytearray()
        self.state = "response"
        self.remaining = 0
        self.chunks: list[bytes] = []
        self.dechunker: Dechunker | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.dechunker is None:
            self._feed(data)
            return
        for piece in self.dechunker.feed(data):
            self._feed(piece)

    def _feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            if self.state == "body":
                take = min(self.remaining, len(view))
                if self.viewer.capture:
                    self.chunks.append(bytes(view[:take]))
                self.remaining -= take
                view = view[take:]
                if self.remaining == 0:
                    now = time.time()
                    self.viewer.times.append(now)
                    if self.viewer.capture:
                        self.viewer.frames.append((now, b"".join(self.chunks)))
                        self.chunks = []
                    self.viewer.first.set()
                    self.state = "part"
                continue
            self.buffer += view
            view = view[len(view):]
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > 65536:
                    self._fail("no header end in 64 KB")
                return
            header = bytes(self.buffer[:end])
            rest = bytes(self.buffer[end + 4 :])
            self.buffer.clear()
            if self.state == "response":
                status = header.split(b"\r\n", 1)[0]
                if b" 200" not in status:
                    self._fail(f"HTTP {status.decode(errors='replace')}")
                    return
                self.viewer.opened_at = time.time()
                if not self.connected.done():
                    self.connected.set_result(True)
                self.state = "part"
                if CHUNKED.search(header):
                    self.dechunker = Dechunker()
                    self.data_received(rest)
                    return
            else:
                match = CONTENT_LENGTH.search(header)
                if match is None:
                    self._fail("part without Content-Length")
                    return
                self.remaining = int(match.group(1))
                self.state = "body"
            view = memoryview(rest)

    def _fail(self, message: str) -> None:
        if self.viewer.error is None:
            self.viewer.error = message
        if not self.connected.done():
            self.connected.set_result(False)
        self.transport.close()

    def connection_lost(self, exc) -> None:
        self.viewer.closed = True
        if not self.viewer.closed_on_purpose and self.viewer.error is None:
            self.viewer.error = f"connection lost: {exc!r}" if exc else "server closed the stream"
        if not self.connected.done():
            self.connected.set_result(False)


class Viewers:
    def __init__(self) -> None:
        self.base_url = ""
        self.headers: dict[str, str] = {}
        self.viewers: list[Viewer] = []
        self.transports: list = []
        self.tasks: list[asyncio.Task] = []
        self.session: aiohttp.ClientSession | None = None

    async def open(self, specs: list[dict]) -> list[int]:
        viewers = [Viewer(len(self.viewers) + i, s["path"], s.get("kind", "mjpeg"),
                          bool(s.get("capture"))) for i, s in enumerate(specs)]
        self.viewers.extend(viewers)
        await asyncio.gather(*(self._open(viewer) for viewer in viewers))
        return [viewer.index for viewer in viewers]

    async def _open(self, viewer: Viewer) -> None:
        try:
            if viewer.kind == "mjpeg":
                await self._open_mjpeg(viewer)
            else:
                connected = asyncio.get_running_loop().create_future()
                self.tasks.append(asyncio.create_task(self._run_ws(viewer, connected)))
                await asyncio.wait_for(connected, 15)
        except Exception as error:  # noqa: BLE001 - reported to the bench
            viewer.error = viewer.error or f"{type(error).__name__}: {error}"

    async def _open_mjpeg(self, viewer: Viewer) -> None:
        parts = urlsplit(self.base_url)
        lines = [f"GET {viewer.path} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        loop = asyncio.get_running_loop()
        connected = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda: MjpegProtocol(viewer, request, connected), parts.hostname, parts.port)
        self.transports.append((viewer, transport))
        await asyncio.wait_for(connected, 15)

    async def _run_ws(self, viewer: Viewer, connected: asyncio.Future) -> None:
        if self.session is None:
            # No connection cap: aiohttp's default (100 per session) would leave the 101st
            # WebSocket waiting for a free slot forever.
            self.session = aiohttp.ClientSession(headers=self.headers,
                                                 connector=aiohttp.TCPConnector(limit=0))
        url = self.base_url.replace("http", "ws", 1) + viewer.path
        try:
            async with self.session.ws_connect(url, max_msg_size=64 << 20) as ws:
                viewer.opened_at = time.time()
                connected.set_result(True)
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.BINARY:
                        now = time.time()
                        viewer.times.append(now)
                        if viewer.capture:
                            viewer.frames.append((now, message.data))
                        viewer.first.set()
                    elif message.type == aiohttp.WSMsgType.TEXT:
                        viewer.texts.append(message.data)
                    else:
                        break
                if not viewer.closed_on_purpose and viewer.error is None:
                    viewer.error = f"websocket closed ({ws.close_code})"
        except asyncio.CancelledError:
            pass
        except Exception as error:  # noqa: BLE001
            viewer.error = viewer.error or f"{type(error).__name__}: {error}"
        finally:
            viewer.closed = True
            if not connected.done():
                connected.set_result(False)

    async def wait_frames(self, ids: list[int], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        for index in ids:
            viewer = self.viewers[index]
            remaining = deadline - time.monotonic()
            if viewer.error is None and remaining > 0:
                try:
                    await asyncio.wait_for(viewer.first.wait(), remaining)
                except TimeoutError:
                    pass
        missing = [i for i in ids if not self.viewers[i].times]
        return {"ready": len(ids) - len(missing), "missing": missing,
                "errors": sorted({self.viewers[i].error for i in missing if self.viewers[i].error})}

    async def close(self) -> None:
        for viewer in self.viewers:
            viewer.closed_on_purpose = True
        for _, transport in self.transports:
            transport.abort()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()


async def serve() -> None:
    viewers = Viewers()
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue = asyncio.Queue()

    def read_stdin() -> None:  # a thread: stdin is a pipe, asyncio's pipe reader is fussy
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line)
        loop.call_soon_threadsafe(commands.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()

    def answer(payload: dict) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    while (line := await commands.get()) is not None:
        command = json.loads(line)
        kind = command["cmd"]
        if kind == "open":
            viewers.base_url = command.get("base_url", viewers.base_url)
            viewers.headers = command.get("headers", viewers.headers)
            answer({"opened": await viewers.open(command["viewers"]),
                    "errors": [v.error for v in viewers.viewers if v.error]})
        elif kind == "wait_frames":
            answer(await viewers.wait_frames(command["ids"], float(command.get("timeout", 15))))
        elif kind == "trim":
            # Captured frames older than `before` are no longer needed: free them.
            before = float(command["before"])
            for viewer in viewers.viewers:
                viewer.frames = [item for item in viewer.frames if item[0] >= before]
            answer({"trimmed": True})
        elif kind == "counts":
            answer({"counts": [len(v.times) for v in viewers.viewers]})
        elif kind == "dump":
            await viewers.close()
            with open(command["path"], "wb") as file:
                pickle.dump([v.result() for v in viewers.viewers], file,
                            protocol=pickle.HIGHEST_PROTOCOL)
            answer({"dumped": command["path"]})
            return
    await viewers.close()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench stops us (stdin EOF / SIGTERM)
    asyncio.run(serve())
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
