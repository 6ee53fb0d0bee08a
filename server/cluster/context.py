"""This node's place in its cluster for the web application's lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import nats.errors
from aiohttp import web

from server.cluster.node import ClusterNode
from server.keys import CLUSTER, CONFIG, RTSP, RUNTIME

logger = logging.getLogger(__name__)


async def cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    """This node in its cluster for the app's lifetime, if `cluster` is configured."""
    config = app[CONFIG]
    if config.cluster is None:
        yield
        return
    rtsp = app.get(RTSP)
    node = ClusterNode(config.cluster, app[RUNTIME], f"{config.server.host}:{config.server.port}",
                       f"{config.rtsp.host}:{rtsp.port}" if rtsp else "")
    try:
        await node.async_start()
    except (OSError, nats.errors.Error) as error:
        logger.error("cluster: cannot reach NATS at %s (%s)", ", ".join(config.cluster.nats), error)
        raise SystemExit(2) from None
    app[CLUSTER] = node
    yield
    await node.async_stop()
