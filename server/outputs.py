"""Stream outputs: MJPEG over HTTP (works in any <img>), JPEG snapshots, and WebSockets
carrying H.264 in fragmented MP4 (for Media Source Extensions) or JPEG frames.

Every route checks the viewer's scope first; a camera or wall the viewer may not see
answers exactly like one that does not exist (404), so ids cannot be probed. Every view
is opened through server/views.py, which checks it again then and whenever what it shows
changes (closing it if it may no longer be seen), and journals it from open to close;
every snapshot is journaled once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Any

from aiohttp import web

from ingest.encode import EncodedFrame
from server.auth import credential_of, principal_of
from server.describe import camera_json, wall_json
from server.errors import json_error
from server.keys import JOURNAL, RUNTIME
from server.login import audit_client
from server.runtime import MosaicKey, grid_for
from server.streams import RemuxStream
from server.views import REVOKED, VIEWS, OpenView, Target, communes_of, shown_to

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()

BOUNDARY = "vigieframe"
SNAPSHOT_TIMEOUT = 10.0
SNAPSHOT_MAX_AGE = 1.0  # seconds: a frame this fresh is served as it is (`?max_age=` changes it)
# Kernel send buffer per streaming viewer: a couple of frames. A bigger one (Linux grows it
# to megabytes) hides a slow viewer behind seconds of stale frames instead of dropping.
STREAM_SNDBUF = 256 * 1024
MOSAIC_MAX_CAMERAS = 16
MOSAIC_SIZES = {"640x360": (640, 360), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}


def wall_target(request: web.Request) -> Target:
    runtime = request.app[RUNTIME]
    wall_id = request.match_info["wall_id"]
    if shown_to(runtime, principal_of(request), "wall", wall_id) is None:
        raise web.HTTPNotFound(text="unknown wall")
    return Target("wall", wall_id, wall_id, runtime.wall_stream(wall_id))


def camera_target(request: web.Request) -> Target:
    runtime = request.app[RUNTIME]
    camera_id = request.match_info["camera_id"]
    if shown_to(runtime, principal_of(request), "camera", camera_id) is None:
        raise web.HTTPNotFound(text="unknown camera")
    stream = runtime.camera_stream(camera_id)
    if stream is None:  # a reload is restarting it (its own worker not back yet)
        raise web.HTTPServiceUnavailable(text="camera restarting; try again in a moment")
    return Target("camera", camera_id, camera_id, stream)


def mosaic_target(request: web.Request) -> Target:
    """`?cameras=a,b,c&layout=2x2&size=1280x720&fps=15`: cameras the viewer may see. The
    mosaic itself is made only when a view of it opens (HEAD or a refusal makes none)."""
    runtime = request.app[RUNTIME]
    query = request.rel_url.query
    camera_ids = tuple(part for part in query.get("cameras", "").split(",") if part)
    if not camera_ids or len(camera_ids) > MOSAIC_MAX_CAMERAS:
        raise web.HTTPBadRequest(text=f"cameras: give 1 to {MOSAIC_MAX_CAMERAS} camera ids")
    for camera_id in camera_ids:
        if shown_to(runtime, principal_of(request), "camera", camera_id) is None:
            raise web.HTTPNotFound(text="unknown camera")
    layout = query.get("layout")
    if layout:
        try:
            columns, rows = (int(part) for part in layout.lower().split("x"))
        except ValueError:
            raise web.HTTPBadRequest(text="layout must be COLUMNSxROWS, e.g. 2x2") from None
        if not (1 <= columns <= 4 and 1 <= rows <= 4 and columns * rows >= len(camera_ids)):
            raise web.HTTPBadRequest(text="layout must be 1x1 to 4x4 and hold every camera")
    else:
        columns, rows = grid_for(len(camera_ids))
    size = MOSAIC_SIZES.get(query.get("size", "1280x720"))
    if size is None:
        raise web.HTTPBadRequest(text=f"size must be one of {', '.join(MOSAIC_SIZES)}")
    try:
        fps = float(query.get("fps", "15"))
    except ValueError:
        raise web.HTTPBadRequest(text="fps must be a number") from None
    if not 1 <= fps <= 25:
        raise web.HTTPBadRequest(text="fps must be between 1 and 25")
    key = MosaicKey(camera_ids, columns, rows, size, fps)
    return Target("mosaic", ",".join(camera_ids), key, None)


def open_view(request: web.Request, target: Target, output: str, fmt: str, **options) -> OpenView:
    """Register the request's view of `target` (scope checked again, now)."""
    return request.app[VIEWS].open(principal_of(request), credential_of(request),
                                   audit_client(request), target, output, fmt, **options)


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
    view = open_view(request, target, "mjpeg", "jpeg")
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


def _max_age(request: web.Request) -> float:
    try:
        value = float(request.rel_url.query.get("max_age", SNAPSHOT_MAX_AGE))
    except ValueError:
        raise web.HTTPBadRequest(text="max_age must be a number of seconds") from None
    if not 0 <= value <= 60:
        raise web.HTTPBadRequest(text="max_age must be between 0 and 60 seconds")
    return value


async def _snapshot(request: web.Request, target: Target) -> web.Response:
    max_age = _max_age(request)
    runtime = request.app[RUNTIME]
    # Scope was checked by the target, with no await since: a fresh frame is served as it is.
    stream = target.stream if target.stream is not None else runtime.mosaic(target.key)
    latest = stream.hub.latest if stream is not None else None
    cameras = runtime.target_cameras(target.kind, target.key) or ()
    if latest is not None and time.time() - latest.wall_time <= max_age:
        frame = latest  # fresh enough: no need to start (or keep) the compositor
    else:
        # A view for one frame: it starts the wall, and is re-checked like any other
        # while it waits (a change that hides the wall from this user ends it).
        view = open_view(request, target, "snapshot", "jpeg", journaled=False, counted=False)
        try:
            frame = await asyncio.wait_for(view.viewer.next_frame(), SNAPSHOT_TIMEOUT)
        except TimeoutError:
            frame = None
        finally:
            await request.app[VIEWS].async_close(view, "snapshot")
        if view.revoked:
            raise web.HTTPNotFound(text=f"unknown {target.kind}")
        cameras = view.cameras
    if frame is None:
        return json_error(503, "no frame available yet")
    await request.app[JOURNAL].async_event(
        "snapshot", audit_client(request), target=f"{target.kind}:{target.id}",
        cameras=cameras, communes=communes_of(runtime, cameras))
    return web.Response(body=frame.data, content_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})


@routes.get("/walls/{wall_id}/mjpeg")
async def wall_mjpeg(request: web.Request) -> web.StreamResponse:
    return await _mjpeg(request, wall_target(request))


@routes.get("/walls/{wall_id}/snapshot.jpg")
async def wall_snapshot(request: web.Request) -> web.Response:
    return await _snapshot(request, wall_target(request))


@routes.get("/cameras/{camera_id}/mjpeg")
async def camera_mjpeg(request: web.Request) -> web.StreamResponse:
    return await _mjpeg(request, camera_target(request))


@routes.get("/cameras/{camera_id}/snapshot.jpg")
async def camera_snapshot(request: web.Request) -> web.Response:
    return await _snapshot(request, camera_target(request))


@routes.get("/mosaic/mjpeg")
async def mosaic_mjpeg(request: web.Request) -> web.StreamResponse:
    return await _mjpeg(request, mosaic_target(request))


@routes.get("/mosaic/snapshot.jpg")
async def mosaic_snapshot(request: web.Request) -> web.Response:
    return await _snapshot(request, mosaic_target(request))


WS_FORMATS = ("fmp4", "jpeg")
WS_HEARTBEAT = 20.0  # seconds between pings; a dead peer is dropped after a missed pong
CLOSE_GOING_AWAY = 1001
CLOSE_NOT_ALLOWED = 4003  # application code: no longer allowed to see this (scope, session)
CLOSE_TOO_SLOW = 4008     # application code: the viewer could not keep up


def _close_code(reason: str) -> int:
    if reason in REVOKED:
        return CLOSE_NOT_ALLOWED
    return CLOSE_TOO_SLOW if reason == "too slow" else CLOSE_GOING_AWAY


def _hello(request: web.Request, view: OpenView, fmt: str, first: EncodedFrame) -> dict[str, Any]:
    runtime = request.app[RUNTIME]
    target = view.target
    return {
        "type": "hello", "format": fmt,
        "mime": first.content_type if fmt == "fmp4" else "image/jpeg",
        "target": {"kind": target.kind, "id": target.id},
        # "camera": the camera's own stream copied as it is; "composed": decoded and encoded here
        "source": "camera" if isinstance(view.stream, RemuxStream) else "composed",
        "wall": wall_json(runtime, target.id, view.principal) if target.kind == "wall" else None,
        "camera": (camera_json(worker) if target.kind == "camera"
                   and (worker := runtime.workers.get(target.id)) is not None else None),
    }


async def _websocket(request: web.Request, target: Target) -> web.StreamResponse:
    """One socket per view. Only this handler task receives (aiohttp's rule); a second task
    sends frames and control messages, and is the one cancelled if the viewer stalls."""
    fmt = request.rel_url.query.get("format", "fmp4")
    if fmt not in WS_FORMATS:
        raise web.HTTPBadRequest(text="format must be fmp4 or jpeg")
    ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT, max_msg_size=4096, compress=False)
    if not ws.can_prepare(request).ok:  # before the view: a plain GET or HEAD opens nothing
        raise web.HTTPBadRequest(text="expected a WebSocket upgrade")
    view = open_view(request, target, f"ws-{fmt}", fmt)
    viewer = view.viewer
    reason = "closed"
    try:
        try:
            await ws.prepare(request)
        except ConnectionResetError:  # the client left during the handshake
            reason = "client left"
            # A plain answer aiohttp then fails to send, quietly (the socket is gone); the
            # unprepared socket itself would make it log a traceback.
            return web.Response(status=400, text="client left")
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)

        async def send() -> None:
            hello_sent = False
            while (item := await viewer.next_item()) is not None:
                if isinstance(item, dict):
                    if hello_sent:
                        await ws.send_str(json.dumps(item))
                    continue
                if not hello_sent:
                    await ws.send_str(json.dumps(_hello(request, view, fmt, item)))
                    hello_sent = True
                await ws.send_bytes(item.data)

        sender = asyncio.create_task(send())
        viewer.task = sender
        try:
            receiver = asyncio.ensure_future(_drain(ws))
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                reason = "client left"
            else:
                reason = view.revoked or viewer.close_reason or "closed"
            receiver.cancel()
        finally:
            sender.cancel()
    finally:
        reason = await request.app[VIEWS].async_close(view, reason)
        if ws.prepared and not ws.closed:
            try:
                await asyncio.wait_for(ws.close(code=_close_code(reason), message=reason.encode()[:100]), 2)
            except (TimeoutError, ConnectionResetError):
                if request.transport is not None:
                    request.transport.abort()
    return ws


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends, until it closes: pongs, close frames."""
    async for _ in ws:
        pass


@routes.get("/walls/{wall_id}/ws")
async def wall_ws(request: web.Request) -> web.StreamResponse:
    return await _websocket(request, wall_target(request))


@routes.get("/cameras/{camera_id}/ws")
async def camera_ws(request: web.Request) -> web.StreamResponse:
    target = camera_target(request)
    if request.rel_url.query.get("format", "fmp4") == "fmp4":
        # An H.264 camera without masks goes out as it came in: no decode, no re-encode.
        remux = request.app[RUNTIME].camera_remux_stream(target.id)
        if remux is not None:
            target = Target("camera", target.id, target.key, remux)
    return await _websocket(request, target)


@routes.get("/mosaic/ws")
async def mosaic_ws(request: web.Request) -> web.StreamResponse:
    return await _websocket(request, mosaic_target(request))
