"""Password and token hashes (server/access/secrets.py)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.config import (
    Kiosk,
    MetricsConfig,
    User,
)
from server.access.secrets import hash_password, hash_token, new_token, verify_password, verify_token
from tests.server.config.cases import CANARY, HASH, TOKEN_HASH


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
