"""Shared pieces of the configuration models: value types, the base model, problem reports.

Checks that involve several fields raise `problems_error(...)`, which carries each problem
with its own location below the model that found it, so the loader (`server/config/loader.py`)
can still point at the exact key and line.

No message built here ever contains an input value: a URL may hold credentials, and a
password written in the wrong key must not end up in a log.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated
from urllib.parse import SplitResult, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo
from pydantic_core import PydanticCustomError

Loc = tuple[str | int, ...]

PROBLEMS_ERROR = "vigie_problems"
MAX_GRID = 8  # a wall layout has at most 8 columns and 8 rows


def format_path(loc: Loc) -> str:
    """`("walls", 0, "cells", 1, "camera")` -> `walls[0].cells[1].camera`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def problems_error(problems: Sequence[tuple[Loc, str]]) -> PydanticCustomError:
    """One pydantic error carrying several problems, each with a location below the model."""
    summary = "; ".join(
        f"{format_path(loc)}: {reason}" if loc else reason for loc, reason in problems
    )
    return PydanticCustomError(
        PROBLEMS_ERROR, "{summary}", {"summary": summary, "problems": tuple(problems)}
    )


class Section(BaseModel):
    """Base of every configuration model: unknown keys refused, values immutable.

    `hide_input_in_errors` keeps values (a URL, a misplaced password) out of the text of
    a pydantic ValidationError, should one ever be printed outside the loader.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


# ---------------------------------------------------------------------------- value types

_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def pattern_check(pattern: re.Pattern[str], message: str) -> Callable[[str], str]:
    """A field validator: the whole value matches `pattern`, or the error says `message`."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(message)
        return value

    return check


_check_identifier = pattern_check(
    _ID_PATTERN,
    "an id is 1 to 64 characters among a-z, 0-9, '_' and '-', starting with a letter or a digit")
_check_env_name = pattern_check(
    _ENV_NAME_PATTERN,
    "must be the NAME of an environment variable (letters, digits and '_'), "
    "not the password itself")


def _check_network_url(parts: SplitResult) -> None:
    if not parts.hostname:
        raise ValueError("the URL has no host")
    try:
        _ = parts.port  # parsed lazily: a bad port raises here
    except ValueError:
        raise ValueError("the URL has an invalid port") from None


def _check_synthetic_url(parts: SplitResult) -> None:
    if not parts.netloc:
        raise ValueError(
            "a synthetic URL names its source: synthetic://NAME?width=640&height=360&fps=15"
        )


def _check_file_url(parts: SplitResult) -> None:
    if parts.netloc not in ("", "localhost") or not parts.path:
        raise ValueError("a file URL takes an absolute path: file:///path/to/video.mp4")


_URL_CHECKS = {
    "rtsp": _check_network_url,
    "rtsps": _check_network_url,
    "synthetic": _check_synthetic_url,
    "file": _check_file_url,
}


def _check_stream_url(value: str) -> str:
    if any(char.isspace() for char in value):
        raise ValueError("a URL must not contain spaces")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("not a valid URL") from None
    check = _URL_CHECKS.get(parts.scheme.lower())
    if check is None:
        schemes = ", ".join(f"{scheme}://" for scheme in _URL_CHECKS)
        raise ValueError(f"unsupported URL scheme: use {schemes}")
    if "@" in parts.netloc:
        raise ValueError(
            "credentials inside the URL are not allowed: "
            "set username, and password_env or password_file"
        )
    check(parts)
    return value


# Values are checked after pydantic's own type and length checks.
Identifier = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_identifier)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
StreamUrl = Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_check_stream_url)]
EnvName = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_check_env_name)]

SIZE_FORM = "WIDTHxHEIGHT, e.g. 1920x1080"
LAYOUT_FORM = "COLUMNSxROWS, e.g. 3x2"


def split_pair(text: str, form: str) -> tuple[int, int]:
    """`"1920x1080"` -> `(1920, 1080)`; ValueError naming the expected form otherwise."""
    match = re.fullmatch(r"([0-9]{1,5})x([0-9]{1,5})", text)
    if match is None:
        raise ValueError(f"expected {form}")
    return int(match[1]), int(match[2])


def split_listen(text: str) -> tuple[str, int]:
    """`"0.0.0.0:8080"` -> `("0.0.0.0", 8080)`, `"[::]:8080"` -> `("::", 8080)`."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not re.fullmatch(r"[0-9]{1,5}", port_text):
        raise ValueError("expected HOST:PORT, e.g. 0.0.0.0:8080 or [::]:8080")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError("the port must be between 1 and 65535")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError("invalid IPv6 address between brackets") from None
        return host[1:-1], port
    if ":" in host or "[" in host or "]" in host or any(char.isspace() for char in host):
        raise ValueError("invalid host: write IPv6 addresses between brackets, e.g. [::]:8080")
    return host, port


# ------------------------------------------------------------------------------ secrets

SECRET_FILE_MAX_BYTES = 64 * 1024


def resolve_secret(info: ValidationInfo, env_name: str | None, file_name: str | None,
                   env_key: str, file_key: str) -> tuple[str | None, list[tuple[Loc, str]]]:
    """A secret named by an environment variable or a file (relative to the configuration
    file's folder): (secret or None, problems). Problems never quote the value nor a path."""
    context = info.context or {}
    env: Mapping[str, str] = context.get("env", os.environ)
    base_dir = context.get("base_dir") or os.getcwd()
    if env_name is not None and file_name is not None:
        return None, [((file_key,), f"{env_key} and {file_key} are exclusive: keep one")]
    if env_name is not None:
        secret = env.get(env_name)
        if secret is None:
            return None, [((env_key,), "the environment variable it names is not set")]
        if not secret:
            return None, [((env_key,), "the environment variable it names is empty")]
        return secret, []
    if file_name is not None:
        secret, reason = read_secret_file(Path(base_dir) / file_name)
        return (None, [((file_key,), reason)]) if reason else (secret, [])
    return None, []


def read_secret_file(path: Path) -> tuple[str, str]:
    """(secret, "") or ("", reason). The reason never names the path nor the content."""
    try:
        with open(path, "rb") as file:
            raw = file.read(SECRET_FILE_MAX_BYTES + 1)
    except OSError as exc:
        return "", f"cannot read the file it names ({exc.strerror or 'I/O error'})"
    if len(raw) > SECRET_FILE_MAX_BYTES:
        return "", "the file it names is too large for a password"
    try:
        secret = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return "", "the file it names is not UTF-8 text"
    if not secret:
        return "", "the file it names is empty"
    return secret, ""
