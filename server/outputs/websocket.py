"""WebSocket views: one socket per view, carrying H.264 in fragmented MP4 (for Media Source
Extensions) or JPEG frames, and the text messages of the protocol (hello, wall changes).
Closed with 4003 when the view may no longer be seen, 4008 when too slow, 1001 at shutdown.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from aiohttp import web

from ingest.encode import EncodedFrame, formats
from ingest.encode.fmp4 import FMP4
from server.access.views import REVOKED, OpenView, Target
from server.keys import RUNTIME, VIEWS
from server.outputs.targets import STREAM_SNDBUF, camera_target, mosaic_target, open_view, wall_target
from server.runtime.describe import camera_json, wall_json
from server.runtime.streams import RemuxStream

routes = web.RouteTableDef()


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
        "mime": first.content_type,  # an init segment's says the codec
        "target": {"kind": target.kind, "id": target.id},
        # "camera": the camera's own stream copied as it is; "composed": decoded and encoded here
        "source": "camera" if isinstance(view.stream, RemuxStream) else "composed",
        "wall": (wall_json(runtime, target.id, view.principal.sees_everything)
                 if target.kind == "wall" else None),
        "camera": (camera_json(worker) if target.kind == "camera"
                   and (worker := runtime.workers.get(target.id)) is not None else None),
    }


def target_formats(target: Target) -> set[str]:
    """The formats a view of the target may ask for: its stream's, or any registered one
    for a mosaic made when its view opens."""
    return set(target.stream.hubs) if target.stream is not None else set(formats())


async def _websocket(request: web.Request, target: Target) -> web.StreamResponse:
    """One socket per view. Only this handler task receives (aiohttp's rule); a second task
    sends frames and control messages, and is the one cancelled if the viewer stalls."""
    fmt = request.rel_url.query.get("format", FMP4)
    if fmt not in target_formats(target):
        raise web.HTTPBadRequest(text=f"format must be {' or '.join(sorted(formats()))}")
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
    if request.rel_url.query.get("format", FMP4) == FMP4:
        # An H.264 camera without masks goes out as it came in: no decode, no re-encode.
        remux = request.app[RUNTIME].camera_remux_stream(target.id)
        if remux is not None:
            target = Target("camera", target.id, target.key, remux)
    return await _websocket(request, target)


@routes.get("/mosaic/ws")
async def mosaic_ws(request: web.Request) -> web.StreamResponse:
    return await _websocket(request, mosaic_target(request))
