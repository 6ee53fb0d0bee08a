"""JSON errors: every refusal is `{"error": "..."}` with a 4xx status."""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

logger = logging.getLogger(__name__)


def json_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"error": message}),
                        content_type="application/json")


@web.middleware
async def json_errors_middleware(request: web.Request, handler):
    """Turn aiohttp's HTML/plain error pages into JSON; never leak a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        message = error.reason if error.text is None or error.text.startswith(str(error.status)) else error.text
        response = json_error(error.status, message)
        if "Retry-After" in error.headers:
            response.headers["Retry-After"] = error.headers["Retry-After"]
        return response
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:  # noqa: BLE001 - a bug: logged (redacted) and answered in JSON, no traceback out
        logger.exception("unexpected error on %s %s", request.method, request.path)
        return json_error(500, "internal error")
