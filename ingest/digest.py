"""Digest authentication (RFC 7616) as both of Vigie's sides speak it: the RTSP client
answering a camera's challenge, and the RTSP output checking a client's answer. The
header's fields, parsed in one pass (network input: linear time), and the response.
Pure: no secret is kept here."""

from __future__ import annotations

import hashlib
import re

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}  # noqa: S324 - RFC 7616 keeps MD5 (cameras, FFmpeg)
_TOKEN = re.compile(r"[\w-]+")
# Anchored at a position, one character class each: they never backtrack.
_BLANKS = re.compile(r"[ \t]*")
_BARE = re.compile(r"[^,\s]*")


def parse_fields(value: str) -> tuple[str, dict[str, str]]:
    """A WWW-Authenticate or Authorization value: its scheme (lowercased) and its
    `key=value` or `key="value"` fields (keys lowercased).

    One pass of str.find from left to right: each character is looked at a bounded number
    of times. (A regular expression did this before: quadratic on `Digest ` and 60,000
    characters with no `=`, 27 s holding the GIL, the whole process frozen.)"""
    scheme, _, rest = value.strip().partition(" ")
    fields: dict[str, str] = {}
    position, size = 0, len(rest)
    while position < size:
        equals = rest.find("=", position)
        if equals < 0:
            break
        words = rest[position:equals].replace(",", " ").split()
        key = words[-1].lower() if words else ""
        position = _BLANKS.match(rest, equals + 1).end()
        if rest.startswith('"', position):  # quoted: up to the closing quote
            close = rest.find('"', position + 1)
            close = size if close < 0 else close
            field_value = rest[position + 1 : close]
            position = close + 1
        else:  # bare: up to the next comma or blank
            end = _BARE.match(rest, position).end()
            field_value = rest[position:end]
            position = end
        if _TOKEN.fullmatch(key):
            fields[key] = field_value
    return scheme.lower(), fields


def _hash(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode()).hexdigest()


def ha1(algorithm: str, username: str, password: str, realm: str) -> str:
    """H(username:realm:password): what a server keeps, what a client starts from."""
    return _hash(algorithm, f"{username}:{realm}:{password}")


def response(algorithm: str, user_ha1: str, method: str, uri: str, nonce: str, nc: str = "",
             cnonce: str = "", qop: str = "") -> str:
    ha2 = _hash(algorithm, f"{method}:{uri}")
    if qop:
        return _hash(algorithm, f"{user_ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _hash(algorithm, f"{user_ha1}:{nonce}:{ha2}")
