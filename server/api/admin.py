"""Hot reload of the config: POST /api/admin/reload (admins) and SIGHUP.

The file the server was started with is read again. An invalid file is refused with its
errors and the running config stays; a valid one is applied: only changed cameras restart.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from server.audit import Client
from server.access.auth import principal_of
from server.keys import AUTH, CLUSTER, JOURNAL, RELOAD_LOCK, RUNTIME, VIEWS, VIEW_LIMITS
from server.config import ConfigError, load_config
from server.access.auth import audit_client
from server.access.scope import can_administer
from server.api.walls import stop_tour

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()


class ReloadRefused(Exception):
    pass


async def async_reload(app: web.Application, client: Client, tell_the_cluster: bool = True) -> dict:
    """Reload from the config's file; raises ReloadRefused with a message when it cannot.
    In a cluster, every other node reloads its own file too (the same file, each node's
    own copy): /api/cluster shows a node whose config then differs."""
    runtime = app[RUNTIME]
    path = runtime.config.source_path
    journal = app[JOURNAL]
    if not path:
        raise ReloadRefused("this server was not started from a config file")
    async with app[RELOAD_LOCK]:
        loop = asyncio.get_running_loop()
        try:
            new = await loop.run_in_executor(None, load_config, path)
        except ConfigError as error:
            await journal.async_event("config_reload", client,
                                      detail={"result": "refused", "errors": len(error.errors)})
            logger.error("config reload refused, the running config stays:\n%s", error)
            raise ReloadRefused(str(error)) from None
        # Users first (sessions of changed or removed users end, and their views), then the
        # cameras and walls, whose change re-checks every open view before anything of the
        # new config can reach a viewer.
        app[AUTH].reload(new)
        app[VIEW_LIMITS].limits = new.limits
        summary = await runtime.async_apply(new, on_changed=app[VIEWS].recheck)
        for wall_id in [w for w in runtime.tours if w not in runtime.walls]:
            stop_tour(app, wall_id)  # its wall is gone
        detail = {"result": "applied", **{key: len(value) for key, value in summary.as_dict().items()}}
        await journal.async_event("config_reload", client, detail=detail)
    cluster = app.get(CLUSTER)
    if cluster is not None and tell_the_cluster:
        await cluster.async_tell("reload", {"config": new.fingerprint()})
    return summary.as_dict()


@routes.post("/api/admin/reload")
async def reload_handler(request: web.Request) -> web.Response:
    if not can_administer(principal_of(request)):
        raise web.HTTPForbidden(text="only admins reload the config")
    try:
        summary = await async_reload(request.app, audit_client(request))
    except ReloadRefused as refused:
        raise web.HTTPBadRequest(text=str(refused)) from None
    return web.json_response({"status": "reloaded", **summary})


async def _on_startup(app: web.Application) -> None:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task] = set()

    def on_sighup() -> None:
        client = Client(user="-", role="system", address="local", user_agent="SIGHUP")

        async def run() -> None:
            try:
                await async_reload(app, client)
            except ReloadRefused as refused:
                logger.error("SIGHUP reload refused: %s", refused)
        task = asyncio.create_task(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    cluster = app.get(CLUSTER)  # started by then (cleanup contexts run before on_startup)
    if cluster is not None:
        async def reload_asked(payload: dict) -> None:
            node = str(payload.get("from", "?"))[:64]
            try:
                await async_reload(app, Client(user="-", role="system", address="cluster",
                                               user_agent=f"reload on node {node}"), tell_the_cluster=False)
            except ReloadRefused as refused:
                logger.error("a reload made on node %s refused here: %s", node, refused)
        cluster.handlers["reload"] = reload_asked

    try:
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    except (NotImplementedError, RuntimeError):  # not the main thread (tests), or no signals
        logger.debug("SIGHUP reload not available here")


def setup_reload(app: web.Application) -> None:
    app[RELOAD_LOCK] = asyncio.Lock()
    app.add_routes(routes)
    app.on_startup.append(_on_startup)
