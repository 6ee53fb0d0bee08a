"""Users, kiosks, metrics, audit and sessions: roles, communes, hashes that never show."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from server.config import (
    AuditConfig,
    Camera,
    ConfigError,
    Kiosk,
    MetricsConfig,
    SessionConfig,
    User,
    load_config,
    parse_config,
)
from tests.server.config.cases import CAMERAS, CANARY, COMMUNES, FILE, HASH, OTHER_TOKEN_HASH, TOKEN, TOKEN_HASH, WALLS, bad, check_bad, document, kiosk, masks, user

USERS_CASES = [
    bad(
        "user-wrong-role",
        document(COMMUNES, user("role: chief  #<")),
        "users[0].role",
        "Input should be 'admin', 'operator', 'police' or 'partner'",
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
        "the web output needs password_hash",
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
        "Input should be 'admin', 'operator', 'police' or 'partner'",
    ),
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
]


@pytest.mark.parametrize(("text", "path", "fragment", "env"), USERS_CASES)
def test_bad_users_config_is_refused_with_file_line_path_and_reason(text, path, fragment, env):
    check_bad(text, path, fragment, env)


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
