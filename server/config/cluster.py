"""Several Vigie nodes sharing the cameras over NATS with JetStream (server/cluster/). Absent:
Vigie runs alone."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Self

from pydantic import AfterValidator, Field, PrivateAttr, SecretStr, ValidationInfo, model_validator

from server.config.types import EnvName, Identifier, Loc, Section, problems_error, resolve_secret


def _check_nats_url(value: str) -> str:
    if not re.fullmatch(r"(nats|tls)://[A-Za-z0-9.\-\[\]:]{1,260}", value):
        raise ValueError("expected nats://HOST:PORT (or tls://HOST:PORT), without credentials")
    return value


NatsUrl = Annotated[str, Field(min_length=8, max_length=300), AfterValidator(_check_nats_url)]


FilePath = Annotated[str, Field(min_length=1, max_length=4096)]


class NatsTls(Section):
    """TLS to NATS (nodes in different sites): the CA that signed the servers' certificates,
    and this node's own certificate when the servers verify clients."""

    ca: FilePath = Field(description="PEM CA certificate(s) the NATS servers' certificates are checked against.")
    cert: FilePath | None = Field(None, description="PEM client certificate (servers with verify on).")
    key: FilePath | None = Field(None, description="PEM key of the client certificate.")

    _paths: dict[str, Path] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_files(self, info: ValidationInfo) -> Self:
        base_dir = (info.context or {}).get("base_dir") or os.getcwd()
        problems: list[tuple[Loc, str]] = []
        if (self.cert is None) != (self.key is None):
            problems.append((("key" if self.key is None else "cert",), "cert and key go together"))
        for key in ("ca", "cert", "key"):
            value = getattr(self, key)
            if value is None:
                continue
            path = Path(os.path.abspath(os.path.join(base_dir, value)))
            if not path.is_file():
                problems.append(((key,), "no readable file at that path"))
            self._paths[key] = path
        if problems:
            raise problems_error(problems)
        return self

    def path(self, key: str) -> str | None:
        found = self._paths.get(key)
        return None if found is None else str(found)


class ClusterConfig(Section):
    nats: list[NatsUrl] = Field(min_length=1, max_length=16,
                                description="NATS servers (with JetStream) the nodes meet on.")
    node: Identifier = Field(description="This node's name, unique in the cluster.")
    lease_seconds: float = Field(
        3.0, ge=1, le=60, strict=True, allow_inf_nan=False,
        description="A camera's lease lives this long unless renewed: a dead node's cameras "
        "are taken over after it.")
    renew_seconds: float = Field(
        1.0, ge=0.2, le=20, strict=True, allow_inf_nan=False,
        description="Seconds between lease renewals and ownership checks.")
    user: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None, description="NATS user (with password_env or password_file).")
    password_env: EnvName | None = Field(None, description="Environment variable holding the NATS password.")
    password_file: FilePath | None = Field(None, description="File holding the NATS password.")
    creds_file: FilePath | None = Field(
        None, description="NATS credentials file (nkey seed and JWT, as `nsc` makes them), instead of a password.")
    tls: NatsTls | None = Field(None, description="TLS to the NATS servers (nats:// URLs then use TLS too).")
    replicas: int = Field(
        1, ge=1, le=5, strict=True,
        description="Copies JetStream keeps of the cluster's buckets and journal stream: 3 on a "
        "3-server NATS cluster, so that losing one NATS server loses nothing.")

    _password: SecretStr | None = PrivateAttr(None)
    _creds: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Self:
        problems: list[tuple[Loc, str]] = []
        if self.renew_seconds * 2 > self.lease_seconds:
            problems.append((("renew_seconds",), "must be at most half of lease_seconds"))
        secret, secret_problems = resolve_secret(info, self.password_env, self.password_file,
                                                 "password_env", "password_file")
        problems += secret_problems
        if secret is not None:
            self._password = SecretStr(secret)
        if (self.user is None) != (self.password_env is None and self.password_file is None):
            problems.append((("user",), "user and a password (password_env or password_file) go together"))
        if self.creds_file is not None:
            base_dir = (info.context or {}).get("base_dir") or os.getcwd()
            self._creds = os.path.abspath(os.path.join(base_dir, self.creds_file))
            if not Path(self._creds).is_file():
                problems.append((("creds_file",), "no readable file at that path"))
            if self.user is not None:
                problems.append((("creds_file",), "give a user and password, or a credentials file, not both"))
        if problems:
            raise problems_error(problems)
        return self

    def password(self) -> str | None:
        return None if self._password is None else self._password.get_secret_value()

    def creds_path(self) -> str | None:
        """The credentials file, resolved from the configuration file's folder."""
        return self._creds
