"""Open views, and the one place that decides whether they may go on.

Every live view (MJPEG, WebSocket, a snapshot waiting for its frame; RTSP later) is opened
here and stays registered until it ends, with who opened it and through which credential
(a session or a bearer token). What a view shows changes under it: an operator edits a
wall, a tour turns its page, a reload moves a camera to another commune or changes a user,
a session ends. Each of those calls `recheck` (or ends sessions, which does the same for
their views) synchronously, after the new state is in place and before the stream can
deliver anything of it:
- a view whose holder may no longer see what it shows is closed (a WebSocket with 4003);
- a view that may, and whose cameras changed, is journaled as closed and opened again
  with the new camera list;
- the `{"type": "wall"}` messages are made per viewer (`announce_wall`), so a police
  viewer is never told of a tour's pages or a camera that is not theirs.

The rules themselves are server/access/scope.py's; `shown_to` maps a target to them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from ingest.hub import Viewer
from server.audit import AuditJournal, Client
from server.access.auth import Auth, Credential
from server.runtime.describe import wall_json
from server.access.limits import ViewLimits
from server.runtime import MosaicKey, Runtime, TooManyMosaics
from server.access.scope import Principal, can_view_camera, can_view_cameras, can_view_wall
from server.runtime.streams import Stream

logger = logging.getLogger(__name__)

# Why a view was ended by the server, as the viewer is told (WebSocket close reason).
NOT_ALLOWED = "no longer allowed"
SESSION_ENDED = "session ended"
REVOKED = frozenset({NOT_ALLOWED, SESSION_ENDED})


@dataclass(frozen=True)
class Target:
    """What a request asks to see, once authorised: a wall, a camera, or an ad-hoc mosaic
    (`key` a MosaicKey, `stream` None: the mosaic is made when its view opens)."""

    kind: str  # wall | camera | mosaic
    id: str
    key: str | MosaicKey
    stream: Stream | None


def shown_to(runtime: Runtime, principal: Principal, kind: str,
             key: str | MosaicKey) -> tuple[str, ...] | None:
    """The cameras a view of this target shows now, if `principal` may see it; else None
    (an unknown target and a forbidden one look the same)."""
    cameras = runtime.target_cameras(kind, key)
    if cameras is None:
        return None
    communes = [runtime.camera_communes.get(camera_id) for camera_id in cameras]
    if kind == "wall":
        allowed = can_view_wall(principal, str(key), runtime.wall_communes.get(str(key), frozenset()),
                                communes, cameras)
    elif kind == "camera":
        allowed = can_view_camera(principal, communes[0], cameras[0])
    else:
        allowed = can_view_cameras(principal, communes, cameras)
    return cameras if allowed else None


def communes_of(runtime: Runtime, cameras: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({runtime.camera_communes[c] for c in cameras if c in runtime.camera_communes}))


@dataclass(eq=False)
class OpenView:
    credential: Credential
    principal: Principal      # as of the last check
    client: Client
    target: Target
    stream: Stream
    viewer: Viewer
    output: str               # mjpeg | ws-fmp4 | ws-jpeg | snapshot
    cameras: tuple[str, ...]  # what it shows, as of the last check
    communes: tuple[str, ...]
    journaled: bool
    counted: bool             # in the per-user and per-address view limits
    revoked: str | None = None
    journal_id: int | None = None
    # The view's journal writes, in order: each waits for the one before (an open must be
    # written before the close that follows a change).
    _journal: asyncio.Task | None = field(default=None, repr=False)


class ViewRegistry:
    def __init__(self, runtime: Runtime, auth: Auth, limits: ViewLimits,
                 journal: Callable[[], AuditJournal]) -> None:
        self._runtime = runtime
        self._auth = auth
        self._limits = limits
        self._journal = journal  # made later, by the app's journal context
        self._views: set[OpenView] = set()
        auth.sessions.on_ended = self.sessions_ended

    def __len__(self) -> int:
        return len(self._views)

    def open(self, principal: Principal, credential: Credential, client: Client, target: Target,
             output: str, fmt: str, *, journaled: bool = True, counted: bool = True) -> OpenView:
        """Register a view and its hub viewer, checking scope against the state of this
        very moment (no await since): 404 if it may not be seen, 429 over a limit."""
        runtime = self._runtime
        cameras = shown_to(runtime, principal, target.kind, target.key)
        if cameras is None:
            raise web.HTTPNotFound(text=f"unknown {target.kind}")
        if counted:
            self._limits.take(principal.name, client.address)
        try:
            stream = target.stream
            if stream is None:
                assert isinstance(target.key, MosaicKey)
                stream = runtime.acquire_mosaic(target.key, principal.name)
        except TooManyMosaics as refused:
            if counted:
                self._limits.release(principal.name, client.address)
            raise web.HTTPTooManyRequests(text=str(refused)) from None
        view = OpenView(credential, principal, client, target, stream, stream.hubs[fmt].add(),
                        output, cameras, communes_of(runtime, cameras), journaled, counted)
        self._views.add(view)
        self._hold_session(credential, +1)
        if journaled:
            self._then(view, self._journal_open(view, view.cameras, view.communes))
        return view

    async def async_close(self, view: OpenView, reason: str, bytes_sent: int | None = None) -> str:
        """End a view (idempotent); returns the reason recorded: the server's, if it
        revoked the view, else `reason`. `bytes_sent` is journaled with the end (RTSP)."""
        reason = view.revoked or reason
        if view in self._views:
            self._views.discard(view)
            view.viewer.close(reason)
            if view.counted:
                self._limits.release(view.principal.name, view.client.address)
            if isinstance(view.target.key, MosaicKey) and view.target.stream is None:
                self._runtime.release_mosaic(view.target.key, view.principal.name)
            self._hold_session(view.credential, -1)
            if view.journaled:
                self._then(view, self._journal_close(view, reason, bytes_sent))
        if view._journal is not None:
            # Shielded: the record of the view's end is written even if the handler is cancelled.
            await asyncio.shield(view._journal)
        return reason

    # -- re-checks ------------------------------------------------------------------------

    def recheck(self) -> int:
        """Judge every open view again on the current state. Synchronous: call it after a
        change is in place and before the next await. Returns how many views were closed."""
        closed = 0
        for view in list(self._views):
            if view.revoked:
                continue
            principal = self._auth.holder(view.credential)
            if principal is None:
                self._revoke(view, SESSION_ENDED)
                closed += 1
                continue
            cameras = shown_to(self._runtime, principal, view.target.kind, view.target.key)
            if cameras is None:
                self._revoke(view, NOT_ALLOWED)
                closed += 1
                continue
            view.principal = principal
            if cameras != view.cameras:
                view.cameras, view.communes = cameras, communes_of(self._runtime, cameras)
                if view.journaled:
                    self._then(view, self._journal_change(view, view.cameras, view.communes))
        if closed:
            logger.info("%d open view(s) closed: no longer allowed to see what they show", closed)
        return closed

    def sessions_ended(self, digests: list[str]) -> None:
        """Sessions ended (logout, an admin, a changed password, expiry): their views end."""
        ended = set(digests)
        for view in list(self._views):
            if view.credential.kind == "session" and view.credential.key in ended and not view.revoked:
                self._revoke(view, SESSION_ENDED)

    def announce_wall(self, wall_id: str) -> None:
        """Tell the WebSocket viewers of a wall its new cells, each as they may see it."""
        if wall_id not in self._runtime.walls:
            return
        for view in self._views:
            if (view.target.kind == "wall" and view.target.key == wall_id and not view.revoked
                    and view.output.startswith("ws-")):
                wall = wall_json(self._runtime, wall_id, view.principal.sees_everything)
                view.viewer.post({"type": "wall", "wall": wall})

    def _revoke(self, view: OpenView, reason: str) -> None:
        # Closing the hub viewer at once is what stops the frames: the handler sees its
        # viewer closed and ends the connection, then calls async_close.
        view.revoked = reason
        view.viewer.close(reason)

    # -- bookkeeping -------------------------------------------------------------------------

    def _hold_session(self, credential: Credential, delta: int) -> None:
        """A session with open views does not expire for idleness: watching is activity."""
        if credential.kind != "session":
            return
        session = self._auth.sessions.get_by_digest(credential.key, touch=False)
        if session is not None:
            session.views = max(0, session.views + delta)
            if delta < 0:
                session.last_seen = time.time()

    def _then(self, view: OpenView, write: Awaitable[None]) -> None:
        previous = view._journal

        async def run() -> None:
            if previous is not None:
                try:
                    await previous
                except Exception:  # noqa: BLE001 - logged where it failed; the next write still goes
                    pass
            await write
        view._journal = asyncio.ensure_future(run())

    async def _journal_open(self, view: OpenView, cameras: tuple[str, ...],
                            communes: tuple[str, ...]) -> None:
        view.journal_id = await self._journal().async_view_opened(
            view.client, target_kind=view.target.kind, target_id=view.target.id,
            cameras=cameras, communes=communes, output=view.output)

    async def _journal_close(self, view: OpenView, reason: str, bytes_sent: int | None = None) -> None:
        if view.journal_id is not None:
            await self._journal().async_view_closed(view.journal_id, reason, bytes_sent)

    async def _journal_change(self, view: OpenView, cameras: tuple[str, ...],
                              communes: tuple[str, ...]) -> None:
        """What the view shows changed: the old record ends, a new one starts."""
        await self._journal_close(view, "changed")
        view.journal_id = None
        await self._journal_open(view, cameras, communes)
