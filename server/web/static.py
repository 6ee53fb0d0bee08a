"""Static files of the viewer, served from viewer/ without ever leaving it.

Every path is resolved and must stay inside the viewer folder; symbolic links are refused
(a link could point anywhere); only known file types are served.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

# The viewer ships as package data of its own package (`viewer`), found through the
# import system: the same in a checkout, an editable install and an installed wheel.
VIEWER_ROOT = Path(str(resources.files("viewer")))
CONTENT_TYPES = {
    ".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".mjs": "text/javascript",
    ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon", ".json": "application/json",
    ".woff2": "font/woff2",
}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                               "connect-src 'self'; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
}


def resolve_static(root: Path, relative: str) -> Path | None:
    """The file for a request path below `root`, or None if it is outside, a link or absent."""
    if "\x00" in relative or "\\" in relative:
        return None
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if any(part == ".." or part.startswith(".") for part in parts):
        return None
    root = root.resolve()
    candidate = root.joinpath(*parts) if parts else root
    current = root
    for part in parts:  # refuse a link at any level, not just the last one
        current = current / part
        if current.is_symlink():
            return None
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if resolved != root and root not in resolved.parents:
        return None
    if not resolved.is_file() or resolved.suffix not in CONTENT_TYPES:
        return None
    return resolved


def file_response(path: Path) -> web.FileResponse:
    response = web.FileResponse(path, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})
    response.content_type = CONTENT_TYPES[path.suffix]
    return response


async def serve_asset(request: web.Request) -> web.StreamResponse:
    # match_info is already percent-decoded by aiohttp: "%2e%2e" arrives as "..".
    path = resolve_static(VIEWER_ROOT / "assets", request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound(text="not found")
    return file_response(path)


def page(name: str) -> web.FileResponse:
    path = resolve_static(VIEWER_ROOT, name)
    if path is None:
        raise web.HTTPNotFound(text="not found")
    return file_response(path)


def add_static_routes(app: web.Application) -> None:
    app.router.add_get("/assets/{path:.*}", serve_asset)



