"""HTTP/RTSP Digest authentication (RFC 7616: MD5 and SHA-256, qop=auth), for other video
systems reading streams (RTSP, ONVIF snapshots). Checked against a stream credential's HA1
(`H(user:realm:password)`), never against the argon2 web password, which cannot give one.

The header's fields and the response are ingest/digest.py's, shared with the camera side.
Nonces are stateless: a time and an HMAC of it under the server's secret, so any node can
check one, and one older than `NONCE_SECONDS` is refused as stale (the client retries with
a fresh one). The Authorization header is parsed in one left-to-right pass (linear time):
it is network input.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time

from ingest.digest import parse_fields, response
from ingest.digest import ha1 as digest_ha1

REALM = "Vigie"
NONCE_SECONDS = 300.0
MAX_HEADER = 4_096


def ha1(algorithm: str, username: str, password: str, realm: str = REALM) -> str:
    """What a server keeps for Digest: H(username:realm:password), in Vigie's realm."""
    return digest_ha1(algorithm, username, password, realm)


def make_nonce(secret: bytes, now: float | None = None) -> str:
    moment = struct.pack(">d", time.time() if now is None else now)
    mac = hmac.new(secret, moment, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(moment + mac).decode().rstrip("=")


def nonce_age(secret: bytes, nonce: str, now: float | None = None) -> float | None:
    """Seconds since the nonce was made here; None if it was not made with `secret`."""
    try:
        raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) != 24:
        return None
    if not hmac.compare_digest(hmac.new(secret, raw[:8], hashlib.sha256).digest()[:16], raw[8:]):
        return None
    return (time.time() if now is None else now) - struct.unpack(">d", raw[:8])[0]


def challenges(secret: bytes, stale: bool = False) -> list[str]:
    """WWW-Authenticate values: SHA-256 first (RFC 7616), MD5 for clients that know no other
    (FFmpeg's)."""
    nonce = make_nonce(secret)
    extra = ", stale=true" if stale else ""
    return [f'Digest realm="{REALM}", nonce="{nonce}", algorithm={name}, qop="auth"{extra}'
            for name in ("SHA-256", "MD5")]


def parse_authorization(value: str) -> dict[str, str] | None:
    """The fields of a `Digest` Authorization value (keys lowercased); None if it is not one
    or is too long to be read."""
    if len(value) > MAX_HEADER:
        return None
    scheme, fields = parse_fields(value)
    return fields if scheme == "digest" else None


def check(fields: dict[str, str], method: str, ha1_by_algorithm: dict[str, str],
          secret: bytes, now: float | None = None) -> str:
    """'ok', 'stale' (a good answer to an old nonce: challenge again) or 'refused'."""
    algorithm = fields.get("algorithm", "MD5").upper()
    user_ha1 = ha1_by_algorithm.get(algorithm)
    if user_ha1 is None or fields.get("realm") != REALM:
        return "refused"
    qop = fields.get("qop", "")
    if qop not in ("", "auth"):
        return "refused"
    expected = response(algorithm, user_ha1, method, fields.get("uri", ""), fields.get("nonce", ""),
                        fields.get("nc", ""), fields.get("cnonce", ""), qop)
    if not hmac.compare_digest(expected, fields.get("response", "").lower()):
        return "refused"
    age = nonce_age(secret, fields.get("nonce", ""), now)
    if age is None or age < -5:
        return "refused"
    return "stale" if age > NONCE_SECONDS else "ok"
