"""The aiohttp application factory: middlewares, routes, and long-lived resources as
cleanup contexts, in dependency order (journal, then the data plane)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from ingest.redact import Redactor
from server import health, journal_api, login, openapi, outputs, pages
from server.audit import AuditJournal
from server.auth import AUTH, Auth, auth_middleware
from server.config import VigieConfig
from server.errors import json_errors_middleware
from server.keys import CONFIG, JOURNAL, REDACTOR, RUNTIME, STARTED_AT
from server.limits import VIEW_LIMITS, ViewLimits
from server.runtime import Runtime
from server.reload import setup_reload
from server.static import add_static_routes
from server.walls_api import setup_walls_api

logger = logging.getLogger(__name__)

PURGE_INTERVAL = 3600.0  # seconds between journal retention purges


async def _journal_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    journal = AuditJournal(config.audit.resolved_path(), config.audit.retention_days)
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


async def _runtime_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = Runtime(app[CONFIG], app[REDACTOR])
    app[RUNTIME] = runtime
    runtime.start()
    yield
    logger.info("stopping: closing viewers and joining threads")
    await runtime.async_stop()


async def _close_viewers(app: web.Application) -> None:
    """On shutdown, end every stream first so that streaming handlers return at once."""
    runtime = app.get(RUNTIME)
    if runtime is not None:
        for stream in runtime.streams():
            stream.close_viewers("shutdown")


def create_app(config: VigieConfig, redactor: Redactor | None = None) -> web.Application:
    app = web.Application(middlewares=[json_errors_middleware, auth_middleware],
                          client_max_size=64 * 1024)
    app[CONFIG] = config
    app[REDACTOR] = redactor or Redactor()
    app[STARTED_AT] = time.monotonic()
    app[AUTH] = Auth(config)
    app[VIEW_LIMITS] = ViewLimits(config.limits)
    app.add_routes(health.routes)
    app.add_routes(login.routes)
    app.add_routes(outputs.routes)
    app.add_routes(journal_api.routes)
    app.add_routes(pages.routes)
    app.add_routes(openapi.routes)
    add_static_routes(app)
    setup_reload(app)
    setup_walls_api(app)
    app.cleanup_ctx.append(_journal_ctx)
    app.cleanup_ctx.append(_runtime_ctx)
    app.on_shutdown.append(_close_viewers)
    return app
