"""Password and token hashes: what vigie.yaml stores instead of the secrets themselves.

Passwords are chosen by people, so they are hashed with argon2id (argon2-cffi's default,
memory-hard) and checked in about 50 ms. Kiosk and scraper tokens are 256 random bits made
here, so a plain SHA-256 is enough (nothing to guess from a dictionary) and costs
microseconds, which matters as a token is checked on every request.

Formats, also checked by the config models (`server/config/users.py`):
- password hash: argon2's encoded form, `$argon2id$v=19$m=...,t=...,p=...$SALT$HASH`;
- token hash: `sha256:` followed by 64 lowercase hexadecimal digits.

The functions never raise on a wrong or malformed input when verifying: they answer False.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["TOKEN_HASH_PREFIX", "hash_password", "hash_token", "new_token", "verify_password",
           "verify_token"]

TOKEN_HASH_PREFIX = "sha256:"

_HASHER = PasswordHasher()  # default parameters (RFC 9106 low-memory profile), argon2id


def hash_password(password: str) -> str:
    """An argon2id hash of `password` with a fresh random salt, in argon2's encoded form."""
    return _HASHER.hash(password)


def verify_password(hash: str, password: str) -> bool:
    """True if `password` matches `hash`; False on a mismatch or a malformed hash."""
    try:
        return _HASHER.verify(hash, password)
    except (VerificationError, InvalidHashError, ValueError, TypeError):
        # VerifyMismatchError is a VerificationError; UnicodeError (a non-ASCII hash, a
        # password with lone surrogates) is a ValueError.
        return False


def new_token() -> str:
    """A new random token: 256 bits, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """`sha256:` + the hexadecimal SHA-256 of the token's UTF-8 bytes."""
    digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    return TOKEN_HASH_PREFIX + digest


def verify_token(token_hash: str, token: str) -> bool:
    """True if `token` hashes to `token_hash`, compared in constant time."""
    try:
        expected = token_hash.encode("utf-8", "surrogatepass")
    except (AttributeError, UnicodeError):
        return False
    return hmac.compare_digest(expected, hash_token(token).encode("ascii"))
