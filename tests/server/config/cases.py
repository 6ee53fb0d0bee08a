"""Shared pieces of the config tests: small YAML builders and the `bad` case maker.

Bad configurations are built from small YAML pieces; the line expected in the error is
the one marked `#<`, so each case shows where the error must point.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from server.config import (
    ConfigError,
    parse_config,
)
from server.access.secrets import hash_password, hash_token, new_token

FILE = "centre.yaml"
CANARY = "Canary-Pw-7f3a9"
ENV = {"CAM_A_PASSWORD": CANARY}
EXAMPLE = Path(__file__).resolve().parents[3] / "vigie.example.yaml"
HASH = hash_password(CANARY)  # argon2 takes ~50 ms: made once for the whole file
TOKEN = new_token()
TOKEN_HASH = hash_token(TOKEN)
OTHER_TOKEN_HASH = hash_token(new_token())

COMMUNES = """
communes:
  - id: st-martin
    name: Saint-Martin
  - id: les-granges
    name: Les Granges
"""

CAMERAS = """
cameras:
  - id: cam-a
    name: Mairie
    commune: st-martin
    url: rtsp://10.0.0.1/stream
  - id: cam-b
    name: Gare
    commune: les-granges
    url: synthetic://gare?width=640&height=360&fps=15
"""


def document(*pieces: str) -> str:
    return "".join(piece.lstrip("\n") for piece in pieces)


def camera(*lines: str, id: str = "cam-a") -> str:
    """A `cameras:` section holding one camera with the given extra lines."""
    head = f"cameras:\n  - id: {id}\n    name: Mairie\n    commune: st-martin\n"
    return head + "".join(f"    {line}\n" for line in lines)


def camera_with_url(url: str) -> str:
    return camera(f"url: {url}  #<")


def wall(*lines: str) -> str:
    """A `walls:` section holding one wall with the given extra lines."""
    return "walls:\n  - id: mur\n    name: Mur\n" + "".join(f"    {line}\n" for line in lines)


WALLS = "walls:\n  - id: centre\n    name: Centre\n"


def user(*lines: str, name: str = "jdupont", password_hash: str | None = HASH) -> str:
    """A `users:` section holding one user with the given extra lines."""
    head = f"users:\n  - name: {name}\n" + "".join(f"    {line}\n" for line in lines)
    return head + (f"    password_hash: '{password_hash}'\n" if password_hash else "")


def kiosk(*lines: str, token_hash: str | None = TOKEN_HASH) -> str:
    """A `kiosks:` section holding one kiosk `hall` with the given extra lines."""
    head = "kiosks:\n  - id: hall\n" + "".join(f"    {line}\n" for line in lines)
    return head + (f"    token_hash: '{token_hash}'\n" if token_hash else "")


def masks(*lines: str) -> str:
    """Privacy masks for cam-b, the last camera of CAMERAS."""
    return "    privacy_masks:\n" + "".join(f"      {line}\n" for line in lines)


def marked_line(text: str) -> int:
    marked = [number for number, line in enumerate(text.splitlines(), 1) if "#<" in line]
    assert len(marked) == 1, "a case marks exactly one line"
    return marked[0]


def bad(case: str, text: str, path: str | None, fragment: str, env: Mapping[str, str] = ENV):
    """A refused configuration: its one error is on the `#<` line, names `path`, says `fragment`."""
    return pytest.param(text, path, fragment, env, id=case)


def check_bad(text: str, path: str | None, fragment: str, env: Mapping[str, str]) -> None:
    """The one error of a refused config is on its `#<` line, names `path`, says `fragment`."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE, env=env)
    prefix = f"{FILE}:{marked_line(text)}: " + (f"{path}: " if path else "")
    (error,) = caught.value.errors
    assert error.startswith(prefix) and fragment in error, f"want {prefix!r}...{fragment!r}"
    for secret in (CANARY, HASH, TOKEN, TOKEN_HASH):
        assert secret not in str(caught.value)
