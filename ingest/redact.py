"""Secrets never leave the process: one redaction for URLs, errors and log records.

PyAV's error messages embed the URL with its password (FIELD-NOTES.md); every string that
may reach a log line, an API answer or a page goes through `Redactor.redact`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

# scheme://user:password@host  or  scheme://user@host  -> scheme://***@host
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s'\"]+@")
MASK = "***"


def redact_url_credentials(text: str) -> str:
    """Remove the user-info part of every URL in `text`."""
    return _URL_CREDENTIALS.sub(lambda match: f"{match.group('scheme')}{MASK}@", text)


class Redactor:
    """Knows the process's secrets and removes them, and URL credentials, from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        # Very short secrets would redact ordinary words; they are still removed from URLs.
        fresh = {secret for secret in secrets if secret and len(secret) >= 4}
        with self._lock:
            self._secrets = self._secrets | fresh

    def redact(self, text: str) -> str:
        text = redact_url_credentials(text)
        for secret in self._secrets:  # longest first would matter only for overlapping secrets
            if secret in text:
                text = text.replace(secret, MASK)
        return text


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites each record's message through a Redactor."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            # Render the traceback now so that it goes through redaction too.
            formatter = logging.Formatter()
            message = f"{message}\n{formatter.formatException(record.exc_info)}"
            record.exc_info = None
            record.exc_text = None
        record.msg = self._redactor.redact(message)
        record.args = None
        return True


def install_log_redaction(redactor: Redactor) -> None:
    """Attach the filter to every handler of the root logger (call after logging is set up)."""
    log_filter = RedactingFilter(redactor)
    for handler in logging.getLogger().handlers:
        handler.addFilter(log_filter)
