"""Stream outputs: MJPEG over HTTP (works in any <img>) and JPEG snapshots."""

from __future__ import annotations

import asyncio
import logging
import socket

from aiohttp import web

from server.errors import json_error
from server.keys import RUNTIME
from server.streams import LiveStream

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()

BOUNDARY = "vigieframe"
# Kernel send buffer per streaming viewer: a couple of frames. A bigger one (Linux grows it
# to megabytes) hides a slow viewer behind seconds of stale frames instead of dropping.
STREAM_SNDBUF = 256 * 1024
SNAPSHOT_TIMEOUT = 10.0


async def _mjpeg(request: web.Request, stream: LiveStream) -> web.StreamResponse:
    viewer = stream.hub.add()
    viewer.task = asyncio.current_task()
    response = web.StreamResponse(headers={
        "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        "Cache-Control": "no-store, no-cache, must-revalidate",
        "Pragma": "no-cache",
        "X-Accel-Buffering": "no",  # tell a reverse proxy not to buffer the stream
    })
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
    try:
        await response.prepare(request)
        while (frame := await viewer.next_frame()) is not None:
            header = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                      f"Content-Length: {len(frame.data)}\r\n"
                      f"X-Frame-Time: {frame.wall_time:.3f}\r\n\r\n").encode()
            await response.write(header + frame.data + b"\r\n")
    except ConnectionResetError:
        pass  # the viewer left
    except asyncio.CancelledError:
        # Too slow (the hub gave up on it) or the server is stopping: do not wait for a
        # stalled socket to drain, drop the connection.
        if request.transport is not None:
            request.transport.abort()
        raise
    finally:
        viewer.close("left")
    return response


async def _snapshot(stream: LiveStream) -> web.Response:
    viewer = stream.hub.add()  # a snapshot is a viewer for one frame: it starts the wall
    try:
        frame = await asyncio.wait_for(viewer.next_frame(), SNAPSHOT_TIMEOUT)
    except TimeoutError:
        frame = None
    finally:
        viewer.close("snapshot")
    if frame is None:
        return json_error(503, "no frame available yet")
    return web.Response(body=frame.data, content_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})


def _wall_stream(request: web.Request) -> LiveStream:
    stream = request.app[RUNTIME].wall_stream(request.match_info["wall_id"])
    if stream is None:
        raise web.HTTPNotFound(text="unknown wall")
    return stream


def _camera_stream(request: web.Request) -> LiveStream:
    stream = request.app[RUNTIME].camera_stream(request.match_info["camera_id"])
    if stream is None:
        raise web.HTTPNotFound(text="unknown camera")
    return stream


@routes.get("/walls/{wall_id}/mjpeg")
async def wall_mjpeg(request: web.Request) -> web.StreamResponse:
    return await _mjpeg(request, _wall_stream(request))


@routes.get("/walls/{wall_id}/snapshot.jpg")
async def wall_snapshot(request: web.Request) -> web.Response:
    return await _snapshot(_wall_stream(request))


@routes.get("/cameras/{camera_id}/mjpeg")
async def camera_mjpeg(request: web.Request) -> web.StreamResponse:
    return await _mjpeg(request, _camera_stream(request))


@routes.get("/cameras/{camera_id}/snapshot.jpg")
async def camera_snapshot(request: web.Request) -> web.Response:
    return await _snapshot(_camera_stream(request))
