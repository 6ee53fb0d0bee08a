"""Communes and cameras, with the camera password resolved from the environment or a file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, PrivateAttr, SecretStr, ValidationInfo, model_validator

from server.config_types import EnvName, Identifier, Loc, Name, Section, StreamUrl, problems_error

PASSWORD_FILE_MAX_BYTES = 64 * 1024


class Commune(Section):
    id: Identifier = Field(description="Unique commune id, referenced by cameras.")
    name: Name = Field(description="Name of the commune, drawn on tiles.")


class Camera(Section):
    id: Identifier = Field(description="Unique camera id, used in URLs and the API.")
    name: Name = Field(description="Name of the camera, drawn on tiles.")
    commune: Identifier = Field(description="Id of the commune the camera belongs to.")
    url: StreamUrl = Field(
        description="Main stream: an rtsp://, rtsps://, synthetic:// or file:// URL, "
        "without credentials."
    )
    substream_url: StreamUrl | None = Field(
        None, description="Lower-resolution stream used for mosaics when set; same rules as url."
    )
    username: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None, description="User name sent to the camera."
    )
    password_env: EnvName | None = Field(
        None, description="Name of the environment variable holding the camera password."
    )
    password_file: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        None,
        description="File holding the camera password (trailing newline stripped); "
        "relative paths start at the configuration file's folder.",
    )
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport for the media.")
    stale_after: float = Field(
        5.0,
        ge=1,
        le=300,
        strict=True,
        allow_inf_nan=False,
        description="Seconds without a frame before the camera counts as stalled.",
    )
    open_timeout: float = Field(
        5.0,
        ge=1,
        le=60,
        strict=True,
        allow_inf_nan=False,
        description="Seconds allowed to open the stream before giving up.",
    )

    _password: SecretStr | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _refuse_inline_password(cls, data: object) -> object:
        if isinstance(data, Mapping) and "password" in data:
            raise problems_error(
                [
                    (
                        ("password",),
                        "inline passwords are not allowed: use password_env or password_file",
                    )
                ]
            )
        return data

    @model_validator(mode="after")
    def _resolve_password(self, info: ValidationInfo) -> Self:
        context = info.context or {}
        env: Mapping[str, str] = context.get("env", os.environ)
        base_dir = context.get("base_dir") or os.getcwd()
        problems: list[tuple[Loc, str]] = []
        if self.password_env is not None and self.password_file is not None:
            problems.append(
                (("password_file",), "password_env and password_file are exclusive: keep one")
            )
        elif self.password_env is not None:
            secret = env.get(self.password_env)
            if secret is None:
                problems.append((("password_env",), "the environment variable it names is not set"))
            elif not secret:
                problems.append((("password_env",), "the environment variable it names is empty"))
            else:
                self._password = SecretStr(secret)
        elif self.password_file is not None:
            secret, reason = _read_password_file(Path(base_dir) / self.password_file)
            if reason:
                problems.append((("password_file",), reason))
            else:
                self._password = SecretStr(secret)
        if (self.password_env or self.password_file) and not self.username:
            problems.append(
                (("username",), "username is required with password_env or password_file")
            )
        if problems:
            raise problems_error(problems)
        return self

    def password(self) -> str | None:
        """The camera password resolved at load time, or None."""
        return None if self._password is None else self._password.get_secret_value()


def _read_password_file(path: Path) -> tuple[str, str]:
    """(password, "") or ("", reason). The reason never names the path nor the content."""
    try:
        with open(path, "rb") as file:
            raw = file.read(PASSWORD_FILE_MAX_BYTES + 1)
    except OSError as exc:
        return "", f"cannot read the file it names ({exc.strerror or 'I/O error'})"
    if len(raw) > PASSWORD_FILE_MAX_BYTES:
        return "", "the file it names is too large for a password"
    try:
        secret = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return "", "the file it names is not UTF-8 text"
    if not secret:
        return "", "the file it names is empty"
    return secret, ""
