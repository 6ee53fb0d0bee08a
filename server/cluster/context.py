"""This node's place in its cluster for the web application's lifetime."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator

import nats.errors
from aiohttp import web

from server.cluster.journal import JournalLink
from server.cluster.node import ClusterNode
from server.cluster.sessions import SharedSessions
from server.cluster.throttle import SharedThrottle
from server.config import ClusterConfig
from server.keys import AUTH, CLUSTER, CONFIG, JOURNAL, RTSP, RUNTIME, VIEW_LIMITS

logger = logging.getLogger(__name__)

CONNECT_SECONDS = 10.0  # to reach NATS at start, before giving up with what went wrong


def tls_context(settings: ClusterConfig) -> ssl.SSLContext | None:
    """TLS to NATS: the servers' certificates checked against the configured CA, and this
    node's own certificate for servers that verify clients."""
    if settings.tls is None:
        return None
    context = ssl.create_default_context(cafile=settings.tls.path("ca"))
    if settings.tls.path("cert"):
        context.load_cert_chain(settings.tls.path("cert"), settings.tls.path("key"))
    return context


async def cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    """This node in its cluster for the app's lifetime, if `cluster` is configured."""
    config = app[CONFIG]
    if config.cluster is None:
        yield
        return
    rtsp = app.get(RTSP)
    node = ClusterNode(config.cluster, app[RUNTIME], f"{config.server.host}:{config.server.port}",
                       f"{config.rtsp.host}:{rtsp.port}" if rtsp else "", tls=tls_context(config.cluster))
    try:
        # nats-py retries forever, a refused password included: the start is bounded.
        async with asyncio.timeout(CONNECT_SECONDS):
            await node.async_start()
    except (TimeoutError, OSError, nats.errors.Error) as error:
        reason = node.last_error or error or "no answer"
        logger.error("cluster: cannot reach NATS at %s (%s)", ", ".join(config.cluster.nats), reason)
        raise SystemExit(2) from None
    app[CLUSTER] = node
    node.view_limits = app[VIEW_LIMITS]
    auth = app[AUTH]
    sessions = SharedSessions(auth)
    await sessions.async_start(node.jetstream(), config.cluster.replicas)
    auth.look_up_session, auth.session_shared = sessions.async_look_up, sessions.async_told
    throttle = SharedThrottle(auth.throttle)
    await throttle.async_start(node.jetstream(), config.cluster.replicas)
    auth.shared_throttle = throttle
    journal = JournalLink(node, app[JOURNAL])
    await journal.async_start()
    node.journal = journal
    yield
    auth.look_up_session = auth.session_shared = auth.shared_throttle = None
    await journal.async_stop()
    await sessions.async_stop()
    await node.async_stop()
