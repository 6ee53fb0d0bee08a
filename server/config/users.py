"""Who may connect, and what is kept of it: users, kiosks, the metrics token, browser
sessions and the audit journal.

The file holds no secret: users have an argon2 password hash (`vigie hash-password`),
kiosks and the metrics scraper a SHA-256 token hash (`vigie make-token`); both formats are
made by `server/access/secrets.py`. Hashes are checked for their shape only (verifying needs the
password) and are left out of `repr()` and of every error message.

References to communes and walls are checked by the root model (`server/config/models.py`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, PrivateAttr, ValidationInfo, model_validator

from server.config.types import Identifier, Loc, Section, pattern_check, problems_error

MAX_COMMUNES_PER_USER = 10_000

_USER_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.@-]{0,63}")
# argon2's encoded form: variant, optional version, parameters, base64 salt and hash
# without padding. `vigie hash-password` writes argon2id; argon2i and argon2d also verify.
_ARGON2_PATTERN = re.compile(
    r"\$argon2(?:id|i|d)(?:\$v=[0-9]{1,3})?\$m=[0-9]{1,10},t=[0-9]{1,10},p=[0-9]{1,8}"
    r"\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}"
)
_TOKEN_HASH_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")


_check_user_name = pattern_check(
    _USER_NAME_PATTERN,
    "a user name is 1 to 64 characters among a-z, 0-9, '_', '.', '@' and '-', "
    "starting with a letter or a digit")
_check_password_hash = pattern_check(
    _ARGON2_PATTERN,
    "not an argon2 hash ($argon2id$v=19$m=...,t=...,p=...$SALT$HASH): "
    "run `vigie hash-password` and paste what it prints")
_check_token_hash = pattern_check(
    _TOKEN_HASH_PATTERN,
    "not a token hash ('sha256:' and 64 lowercase hexadecimal digits): "
    "run `vigie make-token` and paste the hash it prints")


def _check_audit_path(value: str) -> str:
    if "\x00" in value:
        raise ValueError("a path cannot contain a NUL character")
    return value


UserName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_user_name)]
PasswordHash = Annotated[str, Field(max_length=512), AfterValidator(_check_password_hash)]
TokenHash = Annotated[str, Field(max_length=71), AfterValidator(_check_token_hash)]


def _refuse_inline_secret(data: object, key: str, reason: str) -> object:
    if isinstance(data, Mapping) and key in data:
        raise problems_error([((key,), reason)])
    return data


class User(Section):
    name: UserName = Field(description="Unique login name.")
    role: Literal["admin", "operator", "police"] = Field(
        description="admin: everything; operator: every camera, drives walls; "
        "police: only the cameras of its communes."
    )
    communes: list[Identifier] = Field(
        default_factory=list,
        max_length=MAX_COMMUNES_PER_USER,
        description="Communes whose cameras a police user sees: required for police, "
        "refused for the other roles.",
    )
    password_hash: PasswordHash = Field(
        repr=False, description="argon2 hash of the password, as printed by `vigie hash-password`."
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_inline_password(cls, data: object) -> object:
        return _refuse_inline_secret(
            data,
            "password",
            "inline passwords are not allowed: "
            "run `vigie hash-password` and put what it prints in password_hash",
        )

    @model_validator(mode="after")
    def _check_communes(self) -> Self:
        problems: list[tuple[Loc, str]] = []
        if self.role == "police" and not self.communes:
            problems.append((("communes",), "a police user needs at least one commune"))
        elif self.role != "police" and self.communes:
            reason = f"an {self.role} sees every commune: remove communes, or use role police"
            problems.append((("communes",), reason))
        first: dict[str, int] = {}
        for index, commune in enumerate(self.communes):
            if commune in first:
                earlier = first[commune]
                reason = f"duplicate commune {commune!r}, already listed at communes[{earlier}]"
                problems.append((("communes", index), reason))
            else:
                first[commune] = index
        if problems:
            raise problems_error(problems)
        return self


class Kiosk(Section):
    id: Identifier = Field(description="Unique kiosk id, shown in the audit journal.")
    wall: Identifier = Field(description="The one wall this kiosk's token may show.")
    token_hash: TokenHash = Field(
        repr=False,
        description="Hash of the kiosk's bearer token, as printed by `vigie make-token`.",
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_inline_token(cls, data: object) -> object:
        return _refuse_inline_secret(
            data,
            "token",
            "inline tokens are not allowed: "
            "run `vigie make-token` and put the hash it prints in token_hash",
        )


class MetricsConfig(Section):
    token_hash: TokenHash | None = Field(
        None,
        repr=False,
        description="Hash of the bearer token Prometheus scrapers send to /metrics "
        "(`vigie make-token`); null: only logged-in admins read /metrics.",
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_inline_token(cls, data: object) -> object:
        return _refuse_inline_secret(
            data,
            "token",
            "inline tokens are not allowed: "
            "run `vigie make-token` and put the hash it prints in token_hash",
        )


class AuditConfig(Section):
    """The audit journal. A relative `path` starts at the configuration file's folder.

    `path` keeps what the file says; `resolved_path()` is the absolute path, fixed at load
    time from the loader's `base_dir` (the configuration file's folder; the current folder
    for `parse_config` without base_dir, or for a model built in code).
    """

    path: Annotated[str, AfterValidator(_check_audit_path)] = Field(
        "vigie-audit.sqlite",
        min_length=1,
        max_length=4096,
        description="SQLite file of the audit journal; relative paths start at the "
        "configuration file's folder.",
    )
    retention_days: int = Field(
        90,
        ge=1,
        le=3650,
        strict=True,
        description="Days an audit entry is kept before it is deleted.",
    )

    _resolved_path: Path = PrivateAttr(default_factory=Path)

    @model_validator(mode="after")
    def _resolve_path(self, info: ValidationInfo) -> Self:
        base_dir = (info.context or {}).get("base_dir") or os.getcwd()
        self._resolved_path = Path(os.path.abspath(os.path.join(base_dir, self.path)))
        return self

    def resolved_path(self) -> Path:
        """The absolute path of the journal, resolved when the configuration was loaded."""
        return self._resolved_path


class SessionConfig(Section):
    idle_minutes: int = Field(
        30,
        ge=1,
        le=1440,
        strict=True,
        description="Minutes without a request after which a browser session expires.",
    )
    secure_cookies: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Secure flag of the session cookie; auto: set when the request came over "
        "TLS or with X-Forwarded-Proto: https.",
    )


class LimitsConfig(Section):
    """Bounds that keep one user, one address or one script from taking the server down."""

    viewers_per_user: int = Field(
        32, ge=1, le=10_000, strict=True,
        description="Live views (MJPEG, WebSocket) one user or token may hold open at once.")
    viewers_per_address: int = Field(
        64, ge=1, le=100_000, strict=True,
        description="Live views one client address may hold open at once (a NAT'd police station counts once).")
    mosaics: int = Field(
        64, ge=1, le=1_000, strict=True, description="Ad-hoc mosaics composed at once.")
    mosaics_per_user: int = Field(
        8, ge=1, le=1_000, strict=True,
        description="Distinct ad-hoc mosaics one user or token may hold open at once.")
