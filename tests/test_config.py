"""Configuration loading: every refusal names the file, the line, the field path and why.

Bad configurations are built from small YAML pieces; the line expected in the error is
the one marked `#<`, so each case shows where the error must point.
"""

from __future__ import annotations

import math
import os
import string
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from server.config import (
    AuditConfig,
    Camera,
    Cell,
    ConfigError,
    Kiosk,
    MetricsConfig,
    ServerConfig,
    SessionConfig,
    User,
    VigieConfig,
    Wall,
    load_config,
    parse_config,
)
from server.access.secrets import hash_password, hash_token, new_token, verify_password, verify_token

FILE = "centre.yaml"
CANARY = "Canary-Pw-7f3a9"
ENV = {"CAM_A_PASSWORD": CANARY}
EXAMPLE = Path(__file__).resolve().parent.parent / "vigie.example.yaml"
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


BAD = [
    bad("unknown-top-level-key", document(COMMUNES, "colour: blue  #<\n"), "colour", "unknown key"),
    bad(
        "unknown-camera-key",
        document(COMMUNES, camera("url: rtsp://h/s", "stale_afer: 3  #<")),
        "cameras[0].stale_afer",
        "did you mean 'stale_after'",
    ),
    bad(
        "yaml-syntax",
        document(COMMUNES, "cameras:\n  - id: cam-a\n    name: A: B  #<\n"),
        None,
        "invalid YAML: mapping values are not allowed here",
    ),
    bad(
        "yaml-duplicate-key",
        document(COMMUNES, camera("url: rtsp://h/s", "url: rtsp://h/t  #<")),
        None,
        "duplicate key 'url' (first written on line 10)",
    ),
    bad(
        "yaml-unknown-tag",
        document(COMMUNES, "cameras: !include cams.yaml  #<\n"),
        None,
        "constructor for the tag",
    ),
    bad(
        "duplicate-camera-id",
        document(
            COMMUNES,
            CAMERAS,
            "  - id: cam-a  #<\n    name: X\n    commune: st-martin\n    url: rtsp://h/s\n",
        ),
        "cameras[2].id",
        "duplicate id 'cam-a', already used by cameras[0]",
    ),
    bad(
        "duplicate-commune-id",
        document(COMMUNES, "  - id: st-martin  #<\n    name: Again\n"),
        "communes[2].id",
        "duplicate id 'st-martin'",
    ),
    bad(
        "unknown-commune",
        document(
            COMMUNES,
            "cameras:\n  - id: c\n    name: C\n    commune: st-martn  #<\n    url: rtsp://h/s\n",
        ),
        "cameras[0].commune",
        "unknown commune 'st-martn'; did you mean 'st-martin'?",
    ),
    bad(
        "unknown-camera-in-grid",
        document(COMMUNES, CAMERAS, wall("cameras:", "  - cam-a", "  - cam-z  #<")),
        "walls[0].cameras[1]",
        "unknown camera 'cam-z'",
    ),
    bad(
        "unknown-camera-in-cell",
        document(
            COMMUNES, CAMERAS, wall("cells:", "  - camera: nope  #<", "    row: 0", "    column: 0")
        ),
        "walls[0].cells[0].camera",
        "unknown camera 'nope'",
    ),
    bad(
        "url-http",
        document(COMMUNES, camera_with_url("http://10.0.0.1/video")),
        "cameras[0].url",
        "unsupported URL scheme",
    ),
    bad(
        "url-credentials",
        document(COMMUNES, camera_with_url(f"rtsp://admin:{CANARY}@10.0.0.1/s")),
        "cameras[0].url",
        "credentials inside the URL are not allowed: "
        "set username, and password_env or password_file",
    ),
    bad(
        "url-relative-file",
        document(COMMUNES, camera_with_url("file://clips/a.mp4")),
        "cameras[0].url",
        "absolute path",
    ),
    bad(
        "substream-bad-scheme",
        document(COMMUNES, camera("url: rtsp://h/s", "substream_url: rtmp://h/s  #<")),
        "cameras[0].substream_url",
        "unsupported URL scheme",
    ),
    bad(
        "inline-password",
        document(COMMUNES, camera("url: rtsp://h/s", "username: vigie", f"password: {CANARY}  #<")),
        "cameras[0].password",
        "inline passwords are not allowed: use password_env or password_file",
    ),
    bad(
        "password-env-unset",
        document(
            COMMUNES,
            camera("url: rtsp://h/s", "username: vigie", "password_env: CAM_A_PASSWORD  #<"),
        ),
        "cameras[0].password_env",
        "the environment variable it names is not set",
        env={},
    ),
    bad(
        "password-env-holds-a-password",
        document(
            COMMUNES, camera("url: rtsp://h/s", "username: vigie", f"password_env: {CANARY}  #<")
        ),
        "cameras[0].password_env",
        "not the password itself",
    ),
    bad(
        "password-env-and-file",
        document(
            COMMUNES,
            camera(
                "url: rtsp://h/s",
                "username: vigie",
                "password_env: CAM_A_PASSWORD",
                "password_file: pw.txt  #<",
            ),
        ),
        "cameras[0].password_file",
        "password_env and password_file are exclusive",
    ),
    bad(
        "password-file-unreadable",
        document(
            COMMUNES,
            camera("url: rtsp://h/s", "username: vigie", "password_file: missing/pw.txt  #<"),
        ),
        "cameras[0].password_file",
        "cannot read the file it names (No such file or directory)",
    ),
    bad(
        "password-without-username",
        document(
            COMMUNES,
            "cameras:\n  - id: cam-a  #<\n    name: A\n    commune: st-martin\n"
            "    url: rtsp://h/s\n    password_env: CAM_A_PASSWORD\n",
        ),
        "cameras[0].username",
        "username is required with password_env or password_file",
    ),
    bad(
        "stale-after-too-big",
        document(COMMUNES, camera("url: rtsp://h/s", "stale_after: 500  #<")),
        "cameras[0].stale_after",
        "less than or equal to 300",
    ),
    bad(
        "open-timeout-zero",
        document(COMMUNES, camera("url: rtsp://h/s", "open_timeout: 0  #<")),
        "cameras[0].open_timeout",
        "greater than or equal to 1",
    ),
    bad(
        "priority-unknown",
        document(COMMUNES, camera("url: rtsp://h/s", "priority: urgent  #<")),
        "cameras[0].priority",
        "'high', 'normal' or 'low'",
    ),
    bad(
        "transport-unknown",
        document(COMMUNES, camera("url: rtsp://h/s", "transport: quic  #<")),
        "cameras[0].transport",
        "'tcp' or 'udp'",
    ),
    bad(
        "missing-url",
        document(COMMUNES, "cameras:\n  - id: cam-a  #<\n    name: A\n    commune: st-martin\n"),
        "cameras[0].url",
        "required key is missing",
    ),
    bad(
        "bad-id-characters",
        document(COMMUNES, camera("url: rtsp://h/s", id="Cam A  #<")),
        "cameras[0].id",
        "a-z, 0-9",
    ),
    bad(
        "wall-size-odd",
        document(COMMUNES, CAMERAS, wall("size: 1921x1080  #<")),
        "walls[0].size",
        "must be even",
    ),
    bad(
        "wall-size-text",
        document(COMMUNES, CAMERAS, wall("size: abc  #<")),
        "walls[0].size",
        "expected WIDTHxHEIGHT",
    ),
    bad(
        "wall-size-too-big",
        document(COMMUNES, CAMERAS, wall("size: 8000x4000  #<")),
        "walls[0].size",
        "width must be 160..7680",
    ),
    bad(
        "wall-layout-zero",
        document(COMMUNES, CAMERAS, wall("layout: '0x3'  #<")),
        "walls[0].layout",
        "must each be 1..8",
    ),
    bad(
        "wall-layout-too-big",
        document(COMMUNES, CAMERAS, wall("layout: 9x9  #<")),
        "walls[0].layout",
        "must each be 1..8",
    ),
    # YAML reads an unquoted 0x3 as the hexadecimal number 3
    bad(
        "wall-layout-hex",
        document(COMMUNES, CAMERAS, wall("layout: 0x3  #<")),
        "walls[0].layout",
        "expected text",
    ),
    bad(
        "wall-fps-text",
        document(COMMUNES, CAMERAS, wall("fps: fast  #<")),
        "walls[0].fps",
        "valid number",
    ),
    bad(
        "wall-too-many-cameras",
        document(COMMUNES, CAMERAS, wall("layout: 2x1", "cameras: [cam-a, cam-b, null]  #<")),
        "walls[0].cameras",
        "3 cameras for 2 cells of the 2x1 layout (2 wide, 1 high)",
    ),
    bad(
        "wall-cells-overlap",
        document(
            COMMUNES,
            CAMERAS,
            wall(
                "layout: 3x3",
                "cells:",
                "  - {camera: cam-a, row: 0, column: 0, rows: 2, columns: 2}",
                "  - {camera: cam-b, row: 1, column: 1}  #<",
            ),
        ),
        "walls[0].cells[1]",
        "the cell overlaps cells[0]",
    ),
    bad(
        "wall-cell-outside",
        document(
            COMMUNES,
            CAMERAS,
            wall(
                "layout: 2x2",
                "cells:",
                "  - {camera: cam-a, row: 0, column: 0}",
                "  - camera: cam-b  #<",
                "    row: 1",
                "    column: 1",
                "    columns: 2",
            ),
        ),
        "walls[0].cells[1]",
        "the cell reaches outside the 2x2 layout (2 wide, 2 high)",
    ),
    bad(
        "wall-cameras-and-cells",
        document(
            COMMUNES,
            CAMERAS,
            wall("cameras: [cam-a]", "cells: [{camera: cam-b, row: 0, column: 0}]  #<"),
        ),
        "walls[0].cells",
        "cameras and cells are exclusive",
    ),
    bad(
        "server-listen",
        document("server:\n  listen: localhost  #<\n", COMMUNES),
        "server.listen",
        "expected HOST:PORT",
    ),
    bad(
        "server-port",
        document("server:\n  listen: 0.0.0.0:99999  #<\n", COMMUNES),
        "server.listen",
        "between 1 and 65535",
    ),
    bad("no-communes", document("communes: []  #<\n"), "communes", "at least 1 item"),
    bad("missing-communes", document("walls: []  #<\n"), "communes", "required key is missing"),
    bad("not-a-mapping", document("- communes  #<\n"), None, "expected a mapping"),
    bad(
        "stale-after-bool",
        document(COMMUNES, camera("url: rtsp://h/s", "stale_after: yes  #<")),
        "cameras[0].stale_after",
        "valid number",
    ),
    bad(
        "stale-after-nan",
        document(COMMUNES, camera("url: rtsp://h/s", "stale_after: .nan  #<")),
        "cameras[0].stale_after",
        "finite number",
    ),
    bad(
        "cell-row-fraction",
        document(COMMUNES, CAMERAS, wall("cells: [{row: 0.5, column: 0}]  #<")),
        "walls[0].cells[0].row",
        "valid integer",
    ),
    bad(
        "cell-unknown-key",
        document(
            COMMUNES, CAMERAS, wall("cells:", "  - row: 0", "    column: 0", "    colspan: 2  #<")
        ),
        "walls[0].cells[0].colspan",
        "unknown key",
    ),
    bad(
        "empty-username",
        document(COMMUNES, camera("url: rtsp://h/s", "username: ''  #<")),
        "cameras[0].username",
        "at least 1 character",
    ),

    # ------------------------------------------------------------------ users
    bad(
        "user-wrong-role",
        document(COMMUNES, user("role: chief  #<")),
        "users[0].role",
        "Input should be 'admin', 'operator' or 'police'",
    ),
    bad(
        "user-police-without-communes",
        document(COMMUNES, user("role: police", name="jdupont  #<")),
        "users[0].communes",
        "a police user needs at least one commune",
    ),
    bad(
        "user-police-empty-communes",
        document(COMMUNES, user("role: police", "communes: []  #<")),
        "users[0].communes",
        "a police user needs at least one commune",
    ),
    bad(
        "user-operator-with-communes",
        document(COMMUNES, user("role: operator", "communes: [st-martin]  #<")),
        "users[0].communes",
        "an operator sees every commune: remove communes, or use role police",
    ),
    bad(
        "user-admin-with-communes",
        document(COMMUNES, user("role: admin", "communes:  #<", "  - st-martin")),
        "users[0].communes",
        "an admin sees every commune",
    ),
    bad(
        "user-police-unknown-commune",
        document(
            COMMUNES, user("role: police", "communes:", "  - st-martin", "  - les-grange  #<")
        ),
        "users[0].communes[1]",
        "unknown commune 'les-grange'; did you mean 'les-granges'?",
    ),
    bad(
        "user-commune-twice",
        document(
            COMMUNES, user("role: police", "communes:", "  - st-martin", "  - st-martin  #<")
        ),
        "users[0].communes[1]",
        "duplicate commune 'st-martin', already listed at communes[0]",
    ),
    bad(
        "user-commune-bad-id",
        document(COMMUNES, user("role: police", "communes: [Saint-Martin]  #<")),
        "users[0].communes[0]",
        "a-z, 0-9",
    ),
    bad(
        "user-duplicate",
        document(
            COMMUNES,
            user("role: admin"),
            f"  - name: jdupont  #<\n    role: operator\n    password_hash: '{HASH}'\n",
        ),
        "users[1].name",
        "duplicate name 'jdupont', already used by users[0]",
    ),
    bad(
        "user-name-uppercase",
        document(COMMUNES, user("role: admin", name="JDupont  #<")),
        "users[0].name",
        "a user name is 1 to 64 characters among a-z, 0-9, '_', '.', '@' and '-'",
    ),
    bad(
        "user-name-too-long",
        document(COMMUNES, user("role: admin", name="a" * 65 + "  #<")),
        "users[0].name",
        "at most 64 characters",
    ),
    bad(
        "user-hash-plain-password",
        document(COMMUNES, user("role: admin", f"password_hash: {CANARY}  #<", password_hash=None)),
        "users[0].password_hash",
        "not an argon2 hash ($argon2id$v=19$m=...,t=...,p=...$SALT$HASH): "
        "run `vigie hash-password` and paste what it prints",
    ),
    bad(
        "user-hash-bcrypt",
        document(
            COMMUNES,
            user(
                "role: admin",
                f"password_hash: '$2b$12$R9h/cIPz0gi.URNNX3kh2O{CANARY}'  #<",
                password_hash=None,
            ),
        ),
        "users[0].password_hash",
        "run `vigie hash-password`",
    ),
    bad(
        "user-hash-truncated",
        document(
            COMMUNES,
            user(
                "role: admin", f"password_hash: '{HASH.rsplit('$', 1)[0]}'  #<", password_hash=None
            ),
        ),
        "users[0].password_hash",
        "not an argon2 hash",
    ),
    bad(
        "user-hash-with-spaces",
        document(
            COMMUNES, user("role: admin", f"password_hash: ' {HASH}'  #<", password_hash=None)
        ),
        "users[0].password_hash",
        "not an argon2 hash",
    ),
    bad(
        "user-hash-missing",
        document(COMMUNES, user("role: admin", name="jdupont  #<", password_hash=None)),
        "users[0].password_hash",
        "required key is missing",
    ),
    bad(
        "user-inline-password",
        document(COMMUNES, user("role: admin", f"password: {CANARY}  #<")),
        "users[0].password",
        "inline passwords are not allowed: run `vigie hash-password`",
    ),
    bad(
        "user-unknown-key",
        document(COMMUNES, user("role: police", "commune: [st-martin]  #<")),
        "users[0].commune",
        "did you mean 'communes'",
    ),
    bad("users-not-a-list", document(COMMUNES, "users: jdupont  #<\n"), "users", "expected a list"),
    bad(
        "user-communes-not-a-list",
        document(COMMUNES, user("role: police", "communes: st-martin  #<")),
        "users[0].communes",
        "expected a list",
    ),
    bad(
        "user-role-number",
        document(COMMUNES, user("role: 1  #<")),
        "users[0].role",
        "Input should be 'admin', 'operator' or 'police'",
    ),
    # ------------------------------------------------------------------ kiosks
    bad(
        "kiosk-unknown-wall",
        document(COMMUNES, WALLS, kiosk("wall: centr  #<")),
        "kiosks[0].wall",
        "unknown wall 'centr'; did you mean 'centre'?",
    ),
    bad(
        "kiosk-without-walls",
        document(COMMUNES, kiosk("wall: centre  #<")),
        "kiosks[0].wall",
        "unknown wall 'centre'",
    ),
    bad(
        "kiosk-bad-id",
        document(
            COMMUNES,
            WALLS,
            f"kiosks:\n  - id: Hall A  #<\n    wall: centre\n    token_hash: '{TOKEN_HASH}'\n",
        ),
        "kiosks[0].id",
        "a-z, 0-9",
    ),
    bad(
        "kiosk-duplicate-id",
        document(
            COMMUNES,
            WALLS,
            kiosk("wall: centre"),
            f"  - id: hall  #<\n    wall: centre\n    token_hash: '{OTHER_TOKEN_HASH}'\n",
        ),
        "kiosks[1].id",
        "duplicate id 'hall', already used by kiosks[0]",
    ),
    bad(
        "kiosk-same-token-twice",
        document(
            COMMUNES,
            WALLS,
            kiosk("wall: centre"),
            f"  - id: salle\n    wall: centre\n    token_hash: '{TOKEN_HASH}'  #<\n",
        ),
        "kiosks[1].token_hash",
        "the same token as kiosks[0]: run `vigie make-token` for each kiosk",
    ),
    bad(
        "kiosk-token-hash-uppercase",
        document(
            COMMUNES,
            WALLS,
            kiosk("wall: centre", f"token_hash: '{TOKEN_HASH.upper()}'  #<", token_hash=None),
        ),
        "kiosks[0].token_hash",
        "not a token hash ('sha256:' and 64 lowercase hexadecimal digits): "
        "run `vigie make-token` and paste the hash it prints",
    ),
    bad(
        "kiosk-token-hash-short",
        document(
            COMMUNES,
            WALLS,
            kiosk("wall: centre", f"token_hash: '{TOKEN_HASH[:-1]}'  #<", token_hash=None),
        ),
        "kiosks[0].token_hash",
        "not a token hash",
    ),
    bad(
        "kiosk-token-hash-no-prefix",
        document(
            COMMUNES,
            WALLS,
            kiosk("wall: centre", f"token_hash: '{TOKEN_HASH[7:]}'  #<", token_hash=None),
        ),
        "kiosks[0].token_hash",
        "not a token hash",
    ),
    bad(
        "kiosk-token-instead-of-hash",
        document(
            COMMUNES, WALLS, kiosk("wall: centre", f"token_hash: '{TOKEN}'  #<", token_hash=None)
        ),
        "kiosks[0].token_hash",
        "run `vigie make-token`",
    ),
    bad(
        "kiosk-inline-token",
        document(COMMUNES, WALLS, kiosk("wall: centre", f"token: {TOKEN}  #<")),
        "kiosks[0].token",
        "inline tokens are not allowed: run `vigie make-token`",
    ),
    bad(
        "kiosk-token-hash-missing",
        document(COMMUNES, WALLS, "kiosks:\n  - id: hall  #<\n    wall: centre\n"),
        "kiosks[0].token_hash",
        "required key is missing",
    ),
    bad(
        "kiosk-not-a-mapping",
        document(COMMUNES, WALLS, "kiosks:\n  - hall  #<\n"),
        "kiosks[0]",
        "expected a mapping",
    ),
    # ------------------------------------------------------------------ metrics, audit, sessions
    bad(
        "metrics-bad-token-hash",
        document(COMMUNES, "metrics:\n  token_hash: 'sha256:abc'  #<\n"),
        "metrics.token_hash",
        "not a token hash",
    ),
    bad(
        "metrics-same-token-as-kiosk",
        document(
            COMMUNES, WALLS, kiosk("wall: centre"), f"metrics:\n  token_hash: '{TOKEN_HASH}'  #<\n"
        ),
        "metrics.token_hash",
        "the same token as kiosks[0]: give scrapers a token of their own",
    ),
    bad(
        "metrics-inline-token",
        document(COMMUNES, f"metrics:\n  token: {TOKEN}  #<\n"),
        "metrics.token",
        "inline tokens are not allowed",
    ),
    bad(
        "metrics-not-a-mapping",
        document(COMMUNES, f"metrics: '{TOKEN_HASH}'  #<\n"),
        "metrics",
        "expected a mapping",
    ),
    bad(
        "audit-retention-zero",
        document(COMMUNES, "audit:\n  retention_days: 0  #<\n"),
        "audit.retention_days",
        "greater than or equal to 1",
    ),
    bad(
        "audit-retention-too-long",
        document(COMMUNES, "audit:\n  retention_days: 3651  #<\n"),
        "audit.retention_days",
        "less than or equal to 3650",
    ),
    bad(
        "audit-retention-text",
        document(COMMUNES, "audit:\n  retention_days: '90'  #<\n"),
        "audit.retention_days",
        "valid integer",
    ),
    bad(
        "audit-retention-fraction",
        document(COMMUNES, "audit:\n  retention_days: 30.5  #<\n"),
        "audit.retention_days",
        "valid integer",
    ),
    bad(
        "audit-empty-path",
        document(COMMUNES, "audit:\n  path: ''  #<\n"),
        "audit.path",
        "at least 1 character",
    ),
    bad(
        "audit-unknown-key",
        document(COMMUNES, "audit:\n  retention: 30  #<\n"),
        "audit.retention",
        "did you mean 'retention_days'",
    ),
    bad(
        "sessions-idle-zero",
        document(COMMUNES, "sessions:\n  idle_minutes: 0  #<\n"),
        "sessions.idle_minutes",
        "greater than or equal to 1",
    ),
    bad(
        "sessions-idle-too-long",
        document(COMMUNES, "sessions:\n  idle_minutes: 1441  #<\n"),
        "sessions.idle_minutes",
        "less than or equal to 1440",
    ),
    bad(
        "sessions-idle-bool",
        document(COMMUNES, "sessions:\n  idle_minutes: yes  #<\n"),
        "sessions.idle_minutes",
        "valid integer",
    ),
    bad(
        "sessions-secure-cookies-bool",
        document(COMMUNES, "sessions:\n  secure_cookies: yes  #<\n"),
        "sessions.secure_cookies",
        "Input should be 'auto', 'always' or 'never'",
    ),
    bad(
        "sessions-not-a-mapping",
        document(COMMUNES, "sessions: 30  #<\n"),
        "sessions",
        "expected a mapping",
    ),
    # ------------------------------------------------------------------ privacy masks
    bad(
        "mask-two-points",
        document(COMMUNES, CAMERAS, masks("- [[0, 0], [1, 0], [1, 1]]", "- [[0, 0], [1, 1]]  #<")),
        "cameras[1].privacy_masks[1]",
        "a mask is a polygon of at least 3 points [x, y]",
    ),
    bad(
        "mask-coordinate-above-1",
        document(
            COMMUNES, CAMERAS, masks("- - [0.1, 0.1]", "  - [0.4, 0.1]", "  - [1.5, 0.3]  #<")
        ),
        "cameras[1].privacy_masks[0][2]",
        "x must be from 0 to 1, a fraction of the picture's width (0: the left edge, 1: the right",
    ),
    bad(
        "mask-coordinate-negative",
        document(
            COMMUNES, CAMERAS, masks("- - [0.1, 0.1]", "  - [0.4, -0.1]  #<", "  - [0.2, 0.3]")
        ),
        "cameras[1].privacy_masks[0][1]",
        "y must be from 0 to 1, a fraction of the picture's height (0: the top edge",
    ),
    bad(
        "mask-coordinate-nan",
        document(COMMUNES, CAMERAS, masks("- - [0.1, 0.1]", "  - [.nan, 0.5]  #<", "  - [0, 1]")),
        "cameras[1].privacy_masks[0][1]",
        "x must be from 0 to 1",
    ),
    bad(
        "mask-coordinate-text",
        document(COMMUNES, CAMERAS, masks("- - [0.1, 0.1]", "  - [0.5, half]  #<", "  - [0, 1]")),
        "cameras[1].privacy_masks[0][1]",
        "y must be a number from 0 to 1",
    ),
    bad(
        "mask-coordinate-bool",
        document(COMMUNES, CAMERAS, masks("- - [0.1, 0.1]", "  - [yes, 0.5]  #<", "  - [0, 1]")),
        "cameras[1].privacy_masks[0][1]",
        "x must be a number from 0 to 1",
    ),
    bad(
        "mask-point-three-numbers",
        document(
            COMMUNES, CAMERAS, masks("- - [0.1, 0.1]", "  - [0.5, 0.5, 0.5]  #<", "  - [0, 1]")
        ),
        "cameras[1].privacy_masks[0][1]",
        "a point is a pair [x, y] of numbers from 0 to 1",
    ),
    bad(
        "mask-point-mapping",
        document(
            COMMUNES, CAMERAS, masks("- - [0.1, 0.1]", "  - {x: 0.5, y: 0.5}  #<", "  - [0, 1]")
        ),
        "cameras[1].privacy_masks[0][1]",
        "a point is a pair [x, y]",
    ),
    bad(
        "mask-points-on-one-line",
        document(COMMUNES, CAMERAS, masks("- [[0, 0], [0.5, 0.5], [1, 1]]  #<")),
        "cameras[1].privacy_masks[0]",
        "the points of the mask are on one line, so it hides nothing",
    ),
    bad(
        "masks-not-a-list",
        document(COMMUNES, camera("url: rtsp://h/s", "privacy_masks: yes  #<")),
        "cameras[0].privacy_masks",
        "expected a list",
    ),
    bad(
        "mask-not-a-list",
        document(COMMUNES, CAMERAS, masks("- {points: 3}  #<")),
        "cameras[1].privacy_masks[0]",
        "expected a list",
    ),
]


@pytest.mark.parametrize(("text", "path", "fragment", "env"), BAD)
def test_bad_config_is_refused_with_file_line_path_and_reason(text, path, fragment, env):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE, env=env)
    prefix = f"{FILE}:{marked_line(text)}: " + (f"{path}: " if path else "")
    (error,) = caught.value.errors
    assert error.startswith(prefix) and fragment in error, f"want {prefix!r}...{fragment!r}"
    for secret in (CANARY, HASH, TOKEN, TOKEN_HASH):
        assert secret not in str(caught.value)


def test_every_error_is_reported_at_once_in_line_order():
    text = document(
        COMMUNES,
        camera("url: http://h/s  #1", "stale_after: 0  #2"),
        wall("size: abc  #3", "fps: 99  #4"),
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE, env={})
    assert caught.value.errors == [
        f"{FILE}:10: cameras[0].url: unsupported URL scheme: use rtsp://, rtsps://, synthetic://, file://",
        f"{FILE}:11: cameras[0].stale_after: Input should be greater than or equal to 1",
        f"{FILE}:15: walls[0].size: expected WIDTHxHEIGHT, e.g. 1920x1080",
        f"{FILE}:16: walls[0].fps: Input should be less than or equal to 60",
    ]
    assert str(caught.value) == "\n".join(caught.value.errors)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            document(COMMUNES, camera("url: rtsp://h/s", "username: u", f"password: {CANARY}")),
            id="inline",
        ),
        pytest.param(
            document(
                COMMUNES,
                camera("url: rtsp://h/s", "username: u", f"password: {CANARY}", "fps: fast"),
            ),
            id="inline-and-unknown-key",
        ),
        pytest.param(
            document(
                COMMUNES, camera(f"url: rtsp://u:{CANARY}@h/s", "stale_after: fast", "transport: 3")
            ),
            id="url-credentials-and-wrong-types",
        ),
        pytest.param(
            document(COMMUNES, camera("url: rtsp://h/s", "username: u", f"password_env: {CANARY}")),
            id="password-in-password-env",
        ),
        pytest.param(
            document(
                COMMUNES, camera("url: rtsp://h/s", "username: u", f"password_file: {CANARY}")
            ),
            id="password-in-password-file",
        ),
        pytest.param(
            document(
                COMMUNES,
                camera(
                    "url: rtsp://h/s",
                    "username: u",
                    "password_env: CAM_A_PASSWORD",
                    "stale_after: [1]",
                    "transport: 7",
                ),
            ),
            id="resolved-secret-next-to-wrong-types",
        ),
        pytest.param(
            document(COMMUNES, f"cameras: [{{url: 'rtsp://{CANARY}@h'}}\n"), id="yaml-error"
        ),
    ],
)
def test_a_password_never_appears_in_errors(text):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE, env=ENV)
    assert CANARY not in str(caught.value) + repr(caught.value) + "".join(caught.value.errors)
    chained = caught.value.__cause__ or (
        None if caught.value.__suppress_context__ else caught.value.__context__
    )
    assert chained is None  # no pydantic or YAML error travels along


def test_pydantic_errors_hide_inputs_when_models_are_used_directly():
    data = {
        "communes": [{"id": "a", "name": "A"}],
        "cameras": [{"id": "c", "name": "C", "commune": "a", "url": f"rtsp://u:{CANARY}@h/s"}],
    }
    with pytest.raises(ValidationError) as caught:
        VigieConfig.model_validate(data)
    assert CANARY not in str(caught.value)


def test_example_file_loads():
    config = load_config(EXAMPLE, env={"VIGIE_CAM_MAIRIE_PASSWORD": CANARY})
    assert config.source_path == str(EXAMPLE)
    assert [commune.id for commune in config.communes] == ["st-martin", "les-granges", "val-d-orge"]
    mairie = config.camera("stm-mairie")
    assert mairie is not None and mairie.password() == CANARY and mairie.username == "vigie"
    assert config.camera("stm-ecole").substream_url.startswith("rtsps://")
    assert config.camera("grg-rond-point").transport == "udp"
    assert any(camera.url.startswith("synthetic://") for camera in config.cameras)
    grid, police = config.wall("centre-principal"), config.wall("poste-police")
    assert (grid.columns, grid.rows, grid.width, grid.height) == (3, 3, 1920, 1080)
    assert len(grid.resolved_cells()) == 9 and grid.resolved_cells()[4].camera is None
    assert police.resolved_cells()[0] == Cell(
        camera="stm-mairie", row=0, column=0, rows=2, columns=2
    )
    assert CANARY not in repr(config) and CANARY not in config.model_dump_json()
    assert CANARY not in str(config) and CANARY not in repr(mairie)
    assert len(config.camera("stm-ecole").privacy_masks) == 2
    assert [(user.name, user.role) for user in config.users] == [
        ("c.moreau", "admin"),
        ("t.bernard", "operator"),
        ("pm.st-martin", "police"),
        ("pi.granges-orge", "police"),
    ]
    assert config.user("pi.granges-orge").communes == ["les-granges", "val-d-orge"]
    assert [(kiosk.id, kiosk.wall) for kiosk in config.kiosks] == [
        ("ecran-accueil", "centre-principal"),
        ("poste-pm-stm", "poste-police"),
    ]
    assert config.metrics.token_hash is not None
    assert config.audit.resolved_path() == EXAMPLE.parent / "vigie-audit.sqlite"
    assert config.audit.retention_days == 180
    assert config.sessions == SessionConfig()
    hashes = [user.password_hash for user in config.users]
    hashes += [kiosk.token_hash for kiosk in config.kiosks] + [config.metrics.token_hash]
    assert len(set(hashes)) == len(hashes)
    assert not any(hash in repr(config) for hash in hashes)


def test_example_file_without_its_secret_names_the_field():
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE, env={})
    assert caught.value.errors == [
        f"{EXAMPLE}:38: cameras[0].password_env: the environment variable it names is not set"
    ]


def test_good_config_round_trips():
    text = document(
        "server:\n  listen: '[::1]:9000'\n",
        COMMUNES,
        camera(
            "url: rtsp://h/s",
            "substream_url: rtsp://h/sub",
            "username: vigie",
            "password_env: CAM_A_PASSWORD",
            "transport: udp",
            "stale_after: 2.5",
        ),
        wall(
            "layout: 3x2",
            "fps: 25",
            "cells:",
            "  - {camera: cam-a, row: 0, column: 0, rows: 2, columns: 2}",
            "  - {row: 0, column: 2}",
        ),
        "  - id: grille\n    name: Grille\n    cameras: [cam-a, null, cam-a]\n",
    )
    config = parse_config(text, FILE, env=ENV)
    again = parse_config(yaml.safe_dump(config.model_dump(mode="json")), FILE, env=ENV)
    assert again == config
    assert again.model_dump() == config.model_dump()
    assert config.server.host == "::1" and config.server.port == 9000
    assert config.camera("cam-a").password() == CANARY
    assert config.commune("st-martin").name == "Saint-Martin"
    assert config.wall("grille").resolved_cells()[2] == Cell(camera="cam-a", row=1, column=0)
    assert (config.camera("nope"), config.wall("nope"), config.commune("nope")) == (
        None,
        None,
        None,
    )


def test_password_from_file_is_relative_to_the_config_folder(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "cam-a").write_text(f"{CANARY}\n")
    path = tmp_path / "vigie.yaml"
    path.write_text(
        document(COMMUNES, camera("url: rtsp://h/s", "username: u", "password_file: secrets/cam-a"))
    )
    config = load_config(path, env={})
    assert config.camera("cam-a").password() == CANARY
    assert config.source_path == str(path)
    assert CANARY not in repr(config) and CANARY not in config.model_dump_json()


def test_password_from_env_and_none_without_one():
    text = document(
        COMMUNES,
        CAMERAS,
        "  - {id: cam-c, name: C, commune: st-martin, url: 'rtsp://h/c',\n"
        "     username: u, password_env: CAM_A_PASSWORD}\n",
    )
    config = parse_config(text, FILE, env=ENV)
    assert config.camera("cam-c").password() == CANARY
    assert config.camera("cam-a").password() is None


def test_yaml_anchors_and_merge_keys_give_camera_defaults():
    text = document(
        COMMUNES,
        "cameras:\n"
        "  - &base {id: cam-a, name: A, commune: st-martin, url: 'rtsp://h/a', stale_after: 9}\n"
        "  - {<<: *base, id: cam-b, url: 'rtsp://h/b'}\n",
    )
    config = parse_config(text, FILE, env={})
    assert config.camera("cam-b").stale_after == 9 and config.camera("cam-b").url == "rtsp://h/b"


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("0.0.0.0:8080", "0.0.0.0", 8080),
        ("[::]:80", "::", 80),
        ("vigie.local:443", "vigie.local", 443),
    ],
)
def test_listen_address(listen, host, port):
    server = ServerConfig(listen=listen)
    assert (server.host, server.port) == (host, port)


def test_defaults():
    config = parse_config(document(COMMUNES, CAMERAS, wall()), FILE, env={})
    camera_b = config.camera("cam-b")
    assert (camera_b.transport, camera_b.stale_after, camera_b.open_timeout) == ("tcp", 5.0, 5.0)
    only = config.wall("mur")
    assert (only.width, only.height, only.fps, only.columns, only.rows) == (1920, 1080, 15.0, 2, 2)
    assert [cell.camera for cell in only.resolved_cells()] == [None] * 4
    assert config.server.listen == "0.0.0.0:8080"


def test_models_are_frozen():
    config = parse_config(document(COMMUNES, CAMERAS), FILE, env={})
    with pytest.raises(ValidationError):
        config.cameras[0].stale_after = 10


def test_models_can_be_built_in_code():
    wall_model = Wall(id="w", name="W", layout="2x1", cameras=["a"])
    assert [cell.camera for cell in wall_model.resolved_cells()] == ["a", None]
    assert Camera(id="c", name="C", commune="x", url="synthetic://c").password() is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read the file (No such file or directory)"),
        (b"communes:\n  - \xff\n", ":2: the file is not UTF-8 text"),
    ],
)
def test_unreadable_file(tmp_path, content, reason):
    path = tmp_path / "vigie.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors == [f"{path}{'' if reason.startswith(':') else ': '}{reason}"]


def test_empty_file():
    with pytest.raises(ConfigError) as caught:
        parse_config("# nothing yet\n", FILE)
    assert caught.value.errors == [f"{FILE}:1: the file is empty: at least `communes` is required"]


# ---------------------------------------------------------------------------- users, kiosks


def access_document() -> str:
    return document(
        COMMUNES,
        CAMERAS,
        masks("- [[0, 0], [0.5, 0], [0.5, 0.25]]", "- - [0.6, 0.6]", "  - [1, 0.6]", "  - [1, 1]"),
        WALLS,
        "users:\n"
        f"  - {{name: c.moreau, role: admin, password_hash: '{HASH}'}}\n"
        f"  - {{name: t.bernard, role: operator, password_hash: '{HASH}'}}\n"
        f"  - name: pm@st-martin\n    role: police\n    communes: [st-martin, les-granges]\n"
        f"    password_hash: '{HASH}'\n",
        kiosk("wall: centre"),
        f"metrics:\n  token_hash: '{OTHER_TOKEN_HASH}'\n",
        "audit:\n  path: journal/audit.sqlite\n  retention_days: 365\n",
        "sessions:\n  idle_minutes: 15\n  secure_cookies: always\n",
    )


def test_users_kiosks_and_access_sections_load():
    config = parse_config(access_document(), FILE, env={}, base_dir="/srv/vigie")
    admin, police = config.user("c.moreau"), config.user("pm@st-martin")
    assert (admin.role, admin.communes, admin.password_hash) == ("admin", [], HASH)
    assert config.user("t.bernard").role == "operator"
    assert (police.role, police.communes) == ("police", ["st-martin", "les-granges"])
    assert config.kiosk("hall") == Kiosk(id="hall", wall="centre", token_hash=TOKEN_HASH)
    assert (config.user("nobody"), config.kiosk("nope"), config.user("C.Moreau")) == (None,) * 3
    assert config.metrics == MetricsConfig(token_hash=OTHER_TOKEN_HASH)
    assert config.audit.retention_days == 365
    assert config.audit.path == "journal/audit.sqlite"
    assert config.audit.resolved_path() == Path("/srv/vigie/journal/audit.sqlite")
    assert config.sessions == SessionConfig(idle_minutes=15, secure_cookies="always")
    assert config.camera("cam-b").privacy_masks == (
        ((0.0, 0.0), (0.5, 0.0), (0.5, 0.25)),
        ((0.6, 0.6), (1.0, 0.6), (1.0, 1.0)),
    )
    assert all(
        type(value) is float
        for mask in config.camera("cam-b").privacy_masks
        for point in mask
        for value in point
    )
    assert config.camera("cam-a").privacy_masks == ()


def test_access_sections_round_trip():
    config = parse_config(access_document(), FILE, env={}, base_dir="/srv/vigie")
    dumped = yaml.safe_dump(config.model_dump(mode="json"))
    again = parse_config(dumped, FILE, env={}, base_dir="/srv/vigie")
    assert again == config and again.model_dump() == config.model_dump()


def test_access_defaults():
    config = parse_config(document(COMMUNES), FILE, env={}, base_dir="/srv/vigie")
    assert (config.users, config.kiosks, config.metrics.token_hash) == ([], [], None)
    assert (config.audit.path, config.audit.retention_days) == ("vigie-audit.sqlite", 90)
    assert config.audit.resolved_path() == Path("/srv/vigie/vigie-audit.sqlite")
    assert (config.sessions.idle_minutes, config.sessions.secure_cookies) == (30, "auto")
    assert config.cameras == [] and Camera(
        id="c", name="C", commune="x", url="synthetic://c"
    ).privacy_masks == ()


def test_audit_path_is_relative_to_the_config_folder(tmp_path):
    path = tmp_path / "conf" / "vigie.yaml"
    path.parent.mkdir()
    path.write_text(document(COMMUNES))
    assert load_config(path, env={}).audit.resolved_path() == tmp_path / "conf/vigie-audit.sqlite"
    path.write_text(document(COMMUNES, "audit:\n  path: ../var/audit.sqlite\n"))
    assert load_config(path, env={}).audit.resolved_path() == tmp_path / "var/audit.sqlite"
    path.write_text(document(COMMUNES, "audit:\n  path: /var/lib/vigie/audit.sqlite\n"))
    assert load_config(path, env={}).audit.resolved_path() == Path("/var/lib/vigie/audit.sqlite")


def test_audit_path_built_in_code_is_relative_to_the_current_folder():
    resolved = AuditConfig(path="a.sqlite").resolved_path()
    assert resolved.is_absolute() and resolved == Path(os.getcwd(), "a.sqlite")


def test_a_mask_without_its_outer_list_is_explained():
    text = document(COMMUNES, camera("url: rtsp://h/s", "privacy_masks: [[0, 0], [1, 0], [1, 1]]"))
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE, env={})
    assert caught.value.errors == [
        f"{FILE}:11: cameras[0].privacy_masks[{index}]: a mask is a list of points [x, y], "
        "and privacy_masks a list of masks: [[[x, y], [x, y], [x, y]], ...]"
        for index in range(3)
    ]


def test_police_communes_are_checked_after_the_user_is_valid():
    # a wrong role and an unknown commune: the cross-reference waits for the role to be fixed
    text = document(COMMUNES, user("role: polce", "communes: [nowhere]"))
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE, env={})
    assert [error.split(": ")[1] for error in caught.value.errors] == ["users[0].role"]


def test_hashes_never_appear_in_repr_or_str():
    config = parse_config(access_document(), FILE, env={})
    shown = repr(config) + str(config) + repr(config.users) + repr(config.kiosks)
    shown += repr(config.metrics) + str(config.user("c.moreau")) + repr(config.kiosk("hall"))
    for secret in (HASH, TOKEN_HASH, OTHER_TOKEN_HASH, HASH.split("$")[-1], TOKEN_HASH[7:]):
        assert secret not in shown
    assert "password_hash" not in shown and "token_hash" not in shown
    assert "c.moreau" in shown and "hall" in shown  # the rest is still shown


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(document(COMMUNES, user("role: chief", "fps: 3")), id="user-other-errors"),
        pytest.param(
            document(
                COMMUNES, user("role: admin", f"password_hash: '{HASH}!'", password_hash=None)
            ),
            id="hash-near-miss",
        ),
        pytest.param(
            document(COMMUNES, user("role: admin", "communes: [x]", f"password: '{HASH}'")),
            id="hash-in-password",
        ),
        pytest.param(
            document(COMMUNES, WALLS, kiosk("wall: nope", "colour: 3")), id="kiosk-other-errors"
        ),
        pytest.param(
            document(
                COMMUNES, WALLS, kiosk("wall: centre"), f"metrics: {{token_hash: '{TOKEN_HASH}'}}\n"
            ),
            id="token-shared",
        ),
        pytest.param(
            document(
                COMMUNES,
                WALLS,
                kiosk("wall: centre", f"token_hash: '{TOKEN_HASH}0'", token_hash=None),
            ),
            id="token-hash-near-miss",
        ),
        pytest.param(
            document(COMMUNES, f"users: [{{name: a, password_hash: '{HASH}'\n"), id="yaml-error"
        ),
    ],
)
def test_a_hash_never_appears_in_errors(text):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE, env={})
    shown = str(caught.value) + repr(caught.value)
    for secret in (HASH, HASH.split("$")[-1], TOKEN_HASH, TOKEN_HASH[7:], TOKEN):
        assert secret not in shown


def test_user_and_kiosk_models_can_be_built_in_code():
    police = User(name="pm", role="police", communes=["a"], password_hash=HASH)
    assert police.communes == ["a"] and HASH not in repr(police)
    with pytest.raises(ValidationError) as caught:
        User(name="pm", role="police", password_hash=HASH)
    assert HASH not in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        Kiosk(id="k", wall="w", token_hash=TOKEN)
    assert TOKEN not in str(caught.value)


@given(x=st.floats(), y=st.floats(allow_nan=False))
def test_mask_coordinates_are_accepted_exactly_from_0_to_1(x, y):
    polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [x, y]]  # never on one line
    inside = math.isfinite(x) and 0 <= x <= 1 and 0 <= y <= 1
    try:
        built = Camera(id="c", name="C", commune="a", url="synthetic://c", privacy_masks=[polygon])
    except ValidationError as exc:
        assert not inside
        assert [error["loc"] for error in exc.errors()] == [("privacy_masks", 0, 4)]
    else:
        assert inside and built.privacy_masks[0][4] == (x, y)


# ---------------------------------------------------------------------------- secrets


def test_password_hash_verifies_the_password_only():
    assert verify_password(HASH, CANARY)
    assert not verify_password(HASH, CANARY + "x")
    assert not verify_password(HASH, "")
    fresh = hash_password("x")
    assert fresh.startswith("$argon2id$") and fresh != hash_password("x")  # salted
    assert verify_password(fresh, "x") and not verify_password(fresh, "X")
    assert User(name="u", role="admin", password_hash=fresh).password_hash == fresh


@pytest.mark.parametrize(
    "malformed",
    ["", "x", "$argon2id$", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$", "é$argon2id", TOKEN_HASH,
     HASH[:-4], HASH.replace("$argon2id$", "$argon2xx$"), "$2b$12$abcdefghijklmnopqrstuv"],
)
def test_verify_password_answers_false_on_a_malformed_hash(malformed):
    assert verify_password(malformed, CANARY) is False


def test_verify_password_answers_false_on_an_unencodable_password():
    assert verify_password(HASH, "\ud800") is False


def test_token_round_trip():
    token = new_token()
    assert len(token) == 43 and set(token) <= set(string.ascii_letters + string.digits + "-_")
    assert token != new_token()
    token_hash = hash_token(token)
    assert token_hash.startswith("sha256:") and len(token_hash) == 7 + 64
    assert Kiosk(id="k", wall="w", token_hash=token_hash).token_hash == token_hash
    assert MetricsConfig(token_hash=token_hash).token_hash == token_hash
    assert verify_token(token_hash, token)
    assert not verify_token(token_hash, token + "x")
    assert not verify_token(token_hash, "")
    for malformed in ("", token, token_hash.upper(), "sha256:é", token_hash[:-1]):
        assert verify_token(malformed, token) is False


@given(st.text())
def test_any_token_verifies_against_its_own_hash_only(token):
    token_hash = hash_token(token)
    assert MetricsConfig(token_hash=token_hash).token_hash == token_hash
    assert verify_token(token_hash, token)
    assert not verify_token(token_hash, token + "\0")
