"""Who may connect, and what is kept of it: users, kiosks, the metrics token, browser
sessions and the audit journal.

The file holds no secret: users have an argon2 password hash (`vigie hash-password`),
kiosks and the metrics scraper a SHA-256 token hash (`vigie make-token`); both formats are
made by `server/access/secrets.py`. Hashes are checked for their shape only (verifying needs the
password) and are left out of `repr()` and of every error message.

References to communes and walls are checked by the root model (`server/config/models.py`).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (AfterValidator, Field, PrivateAttr, SecretStr, ValidationInfo,
                      model_validator)

from server.config.types import (EnvName, Identifier, Loc, Section, pattern_check, problems_error,
                                 resolve_secret)

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


def _check_network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError("not a network: write an address or ADDRESS/PREFIX, e.g. 192.0.2.0/24") from None
    return value


UserName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_user_name)]
PasswordHash = Annotated[str, Field(max_length=512), AfterValidator(_check_password_hash)]
TokenHash = Annotated[str, Field(max_length=71), AfterValidator(_check_token_hash)]
Network = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_network)]
Md5Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class StreamDigest(Section):
    """HA1 = H(user:Vigie:password) for RTSP Digest, as `vigie hash-password --digest USER`
    prints them: the server checks Digest answers without knowing the password."""

    md5: Md5Hex = Field(repr=False, description="MD5 HA1, 32 lowercase hexadecimal digits.")
    sha256: Sha256Hex = Field(repr=False, description="SHA-256 HA1, 64 lowercase hexadecimal digits.")


def _refuse_inline_secret(data: object, key: str, reason: str) -> object:
    if isinstance(data, Mapping) and key in data:
        raise problems_error([((key,), reason)])
    return data


class User(Section):
    name: UserName = Field(description="Unique login name.")
    role: Literal["admin", "operator", "police", "partner"] = Field(
        description="admin: everything; operator: every camera, drives walls; "
        "police: only the cameras of its communes; partner: another centre's or force's video "
        "system, only its communes, cameras and walls, through its outputs."
    )
    communes: list[Identifier] = Field(
        default_factory=list,
        max_length=MAX_COMMUNES_PER_USER,
        description="Communes whose cameras a police or partner user sees: required for police, "
        "refused for admins and operators.",
    )
    cameras: list[Identifier] = Field(
        default_factory=list, max_length=100_000,
        description="Partner only: cameras it sees besides its communes'.")
    walls: list[Identifier] = Field(
        default_factory=list, max_length=1_000,
        description="Partner only: walls it sees, whatever the operators put on them.")
    outputs: list[Literal["web", "rtsp"]] | None = Field(
        None, max_length=2,
        description="How this user may read streams: web (the browser) and/or rtsp. "
        "Default: both, a partner rtsp only.")
    allowed_from: list[Network] = Field(
        default_factory=list, max_length=256,
        description="Networks this user may connect from (addresses or CIDR); empty: anywhere.")
    valid_until: datetime.datetime | None = Field(
        None, description="End of the user's authorisation (ISO 8601, e.g. 2027-06-30T23:59:59+02:00): "
        "refused after it, and open views end.")
    password_hash: PasswordHash | None = Field(
        None, repr=False,
        description="argon2 hash of the web password, as printed by `vigie hash-password`; "
        "needed for the web output.",
    )
    stream_password_env: EnvName | None = Field(
        None, description="Environment variable holding the password for RTSP (Digest), "
        "distinct from the web password.")
    stream_password_file: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        None, description="File holding the password for RTSP; relative paths start at the "
        "configuration file's folder.")
    stream_digest: StreamDigest | None = Field(
        None, repr=False,
        description="The RTSP password as Digest HA1 values (`vigie hash-password --digest USER`).")

    _stream_password: SecretStr | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _refuse_inline_password(cls, data: object) -> object:
        data = _refuse_inline_secret(
            data,
            "password",
            "inline passwords are not allowed: "
            "run `vigie hash-password` and put what it prints in password_hash",
        )
        return _refuse_inline_secret(
            data,
            "stream_password",
            "inline passwords are not allowed: use stream_password_env, stream_password_file "
            "or stream_digest (`vigie hash-password --digest USER`)",
        )

    @model_validator(mode="after")
    def _check_scope(self, info: ValidationInfo) -> Self:
        problems: list[tuple[Loc, str]] = []
        scoped = self.role in ("police", "partner")
        if self.role == "police" and not self.communes:
            problems.append((("communes",), "a police user needs at least one commune"))
        elif not scoped and self.communes:
            reason = f"an {self.role} sees every commune: remove communes, or use role police"
            problems.append((("communes",), reason))
        if self.role == "partner" and not (self.communes or self.cameras or self.walls):
            problems.append((("communes",), "a partner needs communes, cameras or walls"))
        for key in ("cameras", "walls"):
            if self.role != "partner" and getattr(self, key):
                problems.append(((key,), f"only a partner has {key} of its own"))
        for key in ("communes", "cameras", "walls"):
            problems += _duplicate_items(key, getattr(self, key))
        secret, secret_problems = resolve_secret(
            info, self.stream_password_env, self.stream_password_file,
            "stream_password_env", "stream_password_file")
        problems += secret_problems
        if secret is not None:
            self._stream_password = SecretStr(secret)
            if self.stream_digest is not None:
                problems.append((("stream_digest",), "give the stream password one way only"))
        outputs = self.allowed_outputs
        if "web" in outputs and self.password_hash is None:
            where = ("outputs",) if self.outputs is not None else ("password_hash",)
            problems.append((where, "the web output needs password_hash "
                             "(run `vigie hash-password`); or set outputs: [rtsp]"))
        if "rtsp" in outputs and self.outputs is not None and not self.has_stream_credential:
            problems.append((("outputs",), "the rtsp output needs a stream password: "
                             "stream_password_env, stream_password_file or stream_digest"))
        if problems:
            raise problems_error(problems)
        return self

    @property
    def allowed_outputs(self) -> frozenset[str]:
        if self.outputs is not None:
            return frozenset(self.outputs)
        return frozenset({"rtsp"} if self.role == "partner" else {"web", "rtsp"})

    @property
    def has_stream_credential(self) -> bool:
        return self._stream_password is not None or self.stream_digest is not None

    def stream_password(self) -> str | None:
        """The RTSP password resolved at load time (from the environment or a file), or None."""
        return None if self._stream_password is None else self._stream_password.get_secret_value()


def _duplicate_items(key: str, values: list[str]) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    first: dict[str, int] = {}
    for index, value in enumerate(values):
        if value in first:
            problems.append(((key, index), f"duplicate {key[:-1]} {value!r}, already listed at "
                             f"{key}[{first[value]}]"))
        else:
            first[value] = index
    return problems


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
