"""Every typed application key (aiohttp AppKey) of the server, in one place: no module
singletons, and one file to read to know what an app holds.

The types are imported for type checkers only: the modules that define them use these
keys themselves (the auth middleware reads AUTH), so a runtime import would be a circle.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from ingest.redact import Redactor
    from server.access.auth import Auth
    from server.access.limits import ViewLimits
    from server.access.views import ViewRegistry
    from server.audit import AuditJournal
    from server.cluster.node import ClusterNode
    from server.config import VigieConfig
    from server.outputs.onvif.soap import NonceMemory
    from server.outputs.rtsp.server import RtspServer
    from server.runtime import Runtime

CONFIG: web.AppKey[VigieConfig] = web.AppKey("config")
RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
REDACTOR: web.AppKey[Redactor] = web.AppKey("redactor")
STARTED_AT: web.AppKey[float] = web.AppKey("started_at")
JOURNAL: web.AppKey[AuditJournal] = web.AppKey("journal")
AUTH: web.AppKey[Auth] = web.AppKey("auth")
VIEW_LIMITS: web.AppKey[ViewLimits] = web.AppKey("view_limits")
VIEWS: web.AppKey[ViewRegistry] = web.AppKey("views")
RELOAD_LOCK: web.AppKey[asyncio.Lock] = web.AppKey("reload_lock")
RTSP: web.AppKey[RtspServer] = web.AppKey("rtsp")  # absent when rtsp.listen is null
ONVIF_NONCES: web.AppKey[NonceMemory] = web.AppKey("onvif_nonces")  # WS-Security nonces seen
CLUSTER: web.AppKey[ClusterNode] = web.AppKey("cluster")  # absent when running alone
