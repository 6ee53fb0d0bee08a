"""Typed application keys (aiohttp AppKey): no module singletons."""

from __future__ import annotations

from aiohttp import web

from ingest.redact import Redactor
from server.audit import AuditJournal
from server.config import VigieConfig
from server.runtime import Runtime

CONFIG = web.AppKey("config", VigieConfig)
RUNTIME = web.AppKey("runtime", Runtime)
REDACTOR = web.AppKey("redactor", Redactor)
STARTED_AT = web.AppKey("started_at", float)
JOURNAL = web.AppKey("journal", AuditJournal)
