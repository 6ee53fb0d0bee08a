"""The aiohttp application factory: routes, and the runtime as a cleanup context."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from ingest.redact import Redactor
from server import health, outputs
from server.config import VigieConfig
from server.errors import json_errors_middleware
from server.keys import CONFIG, REDACTOR, RUNTIME, STARTED_AT
from server.runtime import Runtime

logger = logging.getLogger(__name__)


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
            stream.hub.close_all("shutdown")


def create_app(config: VigieConfig, redactor: Redactor | None = None) -> web.Application:
    app = web.Application(middlewares=[json_errors_middleware], client_max_size=64 * 1024)
    app[CONFIG] = config
    app[REDACTOR] = redactor or Redactor()
    app[STARTED_AT] = time.monotonic()
    app.add_routes(health.routes)
    app.add_routes(outputs.routes)
    app.cleanup_ctx.append(_runtime_ctx)
    app.on_shutdown.append(_close_viewers)
    return app
