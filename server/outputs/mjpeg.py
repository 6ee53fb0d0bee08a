"""MJPEG over HTTP (`multipart/x-mixed-replace`): plays in any <img>. Each frame's part is
built once, however many viewers send it; a slow viewer drops frames (ingest/hub.py)."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from ingest.encode import EncodedFrame
from ingest.encode.jpeg import JPEG
from server.keys import VIEWS
from server.outputs.targets import STREAM_SNDBUF, camera_target, mosaic_target, open_view, wall_target
from server.access.views import Target

routes = web.RouteTableDef()

BOUNDARY = "vigieframe"


def _part_header(frame: EncodedFrame) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {len(frame.data)}\r\n"
            f"X-Frame-Time: {frame.wall_time:.3f}\r\n\r\n").encode()


def mjpeg_part(frame: EncodedFrame) -> bytes:
    """The frame as one part of the multipart stream, built once per frame: copying a
    ~400 kB JPEG for each of 200 viewers cost more than sending it."""
    part = frame.renderings.get("mjpeg")
    if part is None:
        part = frame.renderings["mjpeg"] = b"".join((_part_header(frame), frame.data, b"\r\n"))
    return part


def mjpeg_chunk(frame: EncodedFrame) -> bytes:
    """The part framed as one HTTP/1.1 chunk, also built once per frame (see _ChunkedStream),
    straight from the JPEG: no bare part is built for it."""
    chunk = frame.renderings.get("mjpeg-chunk")
    if chunk is None:
        header = _part_header(frame)
        size = len(header) + len(frame.data) + 2
        chunk = frame.renderings["mjpeg-chunk"] = b"".join(
            (f"{size:x}\r\n".encode(), header, frame.data, b"\r\n\r\n"))
    return chunk


class _ChunkedStream(web.StreamResponse):
    """An HTTP/1.1 stream whose chunks come framed already (`mjpeg_chunk`): aiohttp frames
    each write itself, joining size, data and CRLF into a new buffer per viewer and frame,
    which at 200 viewers of a 1080p wall copied 1.2 GB/s (as much as the kernel's own copy
    into the sockets). Its writer is told the length is not its business, as for a
    WebSocket, and the Transfer-Encoding header is ours."""

    _length_check = False

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(headers={**headers, "Transfer-Encoding": "chunked"})

    async def write_end(self) -> None:
        await self.write(b"0\r\n\r\n")


MJPEG_HEADERS = {
    "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
    "Cache-Control": "no-store, no-cache, must-revalidate",
    "Pragma": "no-cache",
    "X-Accel-Buffering": "no",  # tell a reverse proxy not to buffer the stream
}


async def _mjpeg(request: web.Request, target: Target) -> web.StreamResponse:
    if request.method == "HEAD":
        # The headers only: no view opened, journaled or counted, no endless body.
        response = web.StreamResponse(headers=MJPEG_HEADERS)
        await response.prepare(request)
        return response
    view = open_view(request, target, "mjpeg", JPEG)
    viewer = view.viewer
    viewer.task = asyncio.current_task()
    # HTTP/1.0 has no chunks: the parts go as they are, the connection's end ends the body.
    chunked = request.version >= (1, 1)
    response = (_ChunkedStream(MJPEG_HEADERS) if chunked
                else web.StreamResponse(headers=MJPEG_HEADERS))
    render = mjpeg_chunk if chunked else mjpeg_part
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
    reason = "closed"
    try:
        await response.prepare(request)
        while (frame := await viewer.next_frame()) is not None:
            await response.write(render(frame))
        if chunked:
            await response.write_end()
        reason = viewer.close_reason or "closed"
    except ConnectionResetError:
        reason = "client left"
    except asyncio.CancelledError:
        # Too slow (the hub gave up on it) or the server is stopping: do not wait for a
        # stalled socket to drain, drop the connection.
        reason = viewer.close_reason or "cancelled"
        if request.transport is not None:
            request.transport.abort()
        raise
    finally:
        await request.app[VIEWS].async_close(view, reason)
    return response


@routes.get("/walls/{wall_id}/mjpeg")
async def wall_mjpeg(request: web.Request) -> web.StreamResponse:
    return await _mjpeg(request, wall_target(request))


@routes.get("/cameras/{camera_id}/mjpeg")
async def camera_mjpeg(request: web.Request) -> web.StreamResponse:
    return await _mjpeg(request, camera_target(request))


@routes.get("/mosaic/mjpeg")
async def mosaic_mjpeg(request: web.Request) -> web.StreamResponse:
    return await _mjpeg(request, mosaic_target(request))
