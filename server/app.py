"""The aiohttp application factory: middlewares, routes, and long-lived resources as
cleanup contexts, in dependency order (journal, then the data plane)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator

from aiohttp import web

from ingest.redact import Redactor
from server.api import journal as journal_api
from server.api import cameras, cluster, login, metrics, openapi, status
from server.api import sessions as sessions_api
from server.outputs import setup_outputs
from server.cluster.context import cluster_ctx
from server.outputs.onvif.discovery import discovery_ctx
from server.outputs.onvif.service import setup_onvif
from server.outputs.rtsp.server import rtsp_ctx
from server.web import pages
from server.audit import AuditJournal
from server.audit.camera_history import CameraHistory, Observation
from server.access.auth import Auth, auth_middleware
from server.keys import AUTH, CONFIG, JOURNAL, REDACTOR, RUNTIME, STARTED_AT, VIEWS, VIEW_LIMITS
from server.config import VigieConfig
from server.errors import json_errors_middleware
from server.access.limits import ViewLimits
from server.memory import trim_ctx
from server.runtime import Runtime
from server.access.sessions import SessionFile
from server.api.admin import setup_reload
from server.web.static import add_static_routes
from server.access.views import ViewRegistry
from server.api.walls import setup_walls_api
from server.api.picture import setup_picture_api
from server.api import demo as demo_api
from server.api import maintenance

logger = logging.getLogger(__name__)

PURGE_INTERVAL = 3600.0  # seconds between journal retention purges


async def _journal_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    journal = AuditJournal(config.audit.resolved_path(), config.audit.retention_days,
                           config.cluster.node if config.cluster else "")
    closed = await journal.async_open()
    if closed:
        logger.info("journal: closed %d views left open by the previous run", closed)
    app[JOURNAL] = journal

    async def purge_forever() -> None:
        while True:
            await asyncio.sleep(PURGE_INTERVAL)
            try:
                removed = await journal.async_purge()
                if removed:
                    logger.info("journal: purged %d records past retention", removed)
            except Exception:  # noqa: BLE001 - a failed purge is retried next hour
                logger.exception("journal purge failed")

    purger = asyncio.create_task(purge_forever())
    yield
    purger.cancel()
    await journal.async_close()


SESSION_SAVE_INTERVAL = 5.0  # seconds; a crash loses at most this much of logins and logouts


async def _sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sessions survive restarts: loaded at start, saved while running and at shutdown."""
    auth = app[AUTH]
    store = SessionFile(app[CONFIG].audit.resolved_path().with_name("vigie-sessions.sqlite"))
    loop = asyncio.get_running_loop()
    try:
        rows = await loop.run_in_executor(None, store.load)
        restored = auth.sessions.restore(rows, auth.directory.current)
        logger.info("sessions: %d restored", restored)
    except sqlite3.Error as error:
        logger.warning("sessions file unreadable (%s): everyone logs in again", error)

    async def save() -> None:
        await loop.run_in_executor(None, store.save, auth.sessions.snapshot())

    async def save_forever() -> None:
        while True:
            await asyncio.sleep(SESSION_SAVE_INTERVAL)
            if auth.sessions.changed:
                try:
                    await save()
                except sqlite3.Error:
                    logger.exception("sessions could not be saved")

    saver = asyncio.create_task(save_forever())
    yield
    saver.cancel()
    try:
        await save()
    except sqlite3.Error:
        logger.exception("sessions could not be saved at shutdown")


async def _runtime_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    if not runtime.started:  # `vigie serve` starts it before the web side loads (cli.py)
        runtime.start()
    probe = asyncio.create_task(runtime.loop_lag.run())
    yield
    probe.cancel()
    logger.info("stopping: closing viewers and joining threads")
    await runtime.async_stop()


def _observations(runtime: Runtime) -> list[Observation]:
    """The statuses of the cameras this node pulls, for the journal of camera health."""
    observed = []
    for camera_id, worker in list(runtime.workers.items()):
        if not runtime.owns(camera_id):
            continue  # another node pulls it and journals it
        status = worker.status()
        picture = status.picture
        observed.append(Observation(
            camera_id, runtime.camera_communes.get(camera_id, ""), status.state.value, status.since,
            picture.conditions if picture else (), picture.ended if picture else ()))
    return observed


async def _camera_history_ctx(app: web.Application) -> AsyncIterator[None]:
    history = CameraHistory(app[JOURNAL], lambda: _observations(app[RUNTIME]))
    task = asyncio.create_task(history.async_run())
    yield
    task.cancel()
    # A write under way finishes (the journal shields it) before the journal closes; the
    # periods still open are then ended by the journal's close ("shutdown").
    await asyncio.gather(task, return_exceptions=True)


async def _close_viewers(app: web.Application) -> None:
    """On shutdown, end every stream first so that streaming handlers return at once."""
    runtime = app.get(RUNTIME)
    if runtime is not None:
        for stream in runtime.streams():
            stream.close_viewers("shutdown")


def create_app(config: VigieConfig, redactor: Redactor | None = None,
               runtime: Runtime | None = None) -> web.Application:
    """The application; `runtime`, when given, may already be started (server/cli.py)."""
    app = web.Application(middlewares=[json_errors_middleware, auth_middleware],
                          client_max_size=64 * 1024)
    app[CONFIG] = config
    app[REDACTOR] = redactor = redactor or Redactor()
    app[STARTED_AT] = time.monotonic()
    app[AUTH] = Auth(config)
    app[VIEW_LIMITS] = ViewLimits(config.limits)
    app[RUNTIME] = runtime or Runtime(config, redactor)
    app[VIEWS] = ViewRegistry(app[RUNTIME], app[AUTH], app[VIEW_LIMITS], lambda: app[JOURNAL])
    app.add_routes(status.routes)
    app.add_routes(cameras.routes)
    app.add_routes(cluster.routes)
    app.add_routes(maintenance.routes)
    app.add_routes(metrics.routes)
    app.add_routes(login.routes)
    app.add_routes(sessions_api.routes)
    setup_outputs(app)
    setup_onvif(app)
    app.add_routes(journal_api.routes)
    app.add_routes(pages.routes)
    app.add_routes(openapi.routes)
    add_static_routes(app)
    setup_reload(app)
    setup_walls_api(app)
    setup_picture_api(app)
    app.add_routes(demo_api.routes)
    app.cleanup_ctx.append(_journal_ctx)
    app.cleanup_ctx.append(_sessions_ctx)
    app.cleanup_ctx.append(_runtime_ctx)
    app.cleanup_ctx.append(_camera_history_ctx)
    app.cleanup_ctx.append(rtsp_ctx)  # stopped before the runtime: its sessions first
    app.cleanup_ctx.append(discovery_ctx)  # Bye first when stopping
    app.cleanup_ctx.append(cluster_ctx)  # cameras handed over first when stopping
    app.cleanup_ctx.append(trim_ctx)
    app.on_shutdown.append(_close_viewers)
    return app
