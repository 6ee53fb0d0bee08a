"""Digest authentication for other video systems (server/access/digest.py), against RFC
7616's worked example, with stateless nonces and a linear-time header parser."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from server.access.digest import (NONCE_SECONDS, REALM, challenges, check, ha1, make_nonce, nonce_age,
                                  parse_authorization, response)

# RFC 7616 section 3.9.1
MUFASA = {"user": "Mufasa", "realm": "http-auth@example.org", "password": "Circle of Life",
          "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "uri": "/dir/index.html",
          "nc": "00000001", "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"}


def test_rfc_7616_worked_example_md5_and_sha256() -> None:
    for algorithm, expected in (("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
                                ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")):
        user_ha1 = ha1(algorithm, MUFASA["user"], MUFASA["password"], MUFASA["realm"])
        assert response(algorithm, user_ha1, "GET", MUFASA["uri"], MUFASA["nonce"], MUFASA["nc"],
                        MUFASA["cnonce"], "auth") == expected


def answer(secret: bytes, password: str, algorithm: str, nonce: str | None = None) -> dict[str, str]:
    nonce = nonce or make_nonce(secret)
    fields = {"username": "gendarmerie", "realm": REALM, "nonce": nonce, "uri": "rtsp://h/cameras/a",
              "algorithm": algorithm, "qop": "auth", "nc": "00000001", "cnonce": "abc"}
    fields["response"] = response(algorithm, ha1(algorithm, "gendarmerie", password), "DESCRIBE",
                                  fields["uri"], nonce, "00000001", "abc", "auth")
    return fields


def test_check_accepts_the_right_password_by_either_algorithm_and_nothing_else() -> None:
    secret = b"s" * 32
    known = {name: ha1(name, "gendarmerie", "right") for name in ("MD5", "SHA-256")}
    for algorithm in ("MD5", "SHA-256"):
        assert check(answer(secret, "right", algorithm), "DESCRIBE", known, secret) == "ok"
        assert check(answer(secret, "wrong", algorithm), "DESCRIBE", known, secret) == "refused"
        assert check(answer(b"x" * 32, "right", algorithm), "DESCRIBE", known, secret) == "refused"  # forged nonce
        assert check(answer(secret, "right", algorithm), "PLAY", known, secret) == "refused"  # another method
    old = make_nonce(secret, time.time() - NONCE_SECONDS - 1)
    assert check(answer(secret, "right", "MD5", old), "DESCRIBE", known, secret) == "stale"


def test_nonces_carry_their_age_and_refuse_tampering() -> None:
    secret = b"k" * 32
    nonce = make_nonce(secret, 1000.0)
    assert nonce_age(secret, nonce, 1010.0) == 10.0
    assert nonce_age(b"other" * 8, nonce, 1010.0) is None
    assert nonce_age(secret, nonce[:-2] + "AA", 1010.0) is None
    assert nonce_age(secret, "not base64 at all!", 1010.0) is None


def test_both_challenges_are_offered_sha256_first() -> None:
    values = challenges(b"k" * 32)
    assert [v.split("algorithm=")[1].split(",")[0] for v in values] == ["SHA-256", "MD5"]
    assert all(f'realm="{REALM}"' in v and 'qop="auth"' in v for v in values)


def test_authorization_parses_quoted_and_bare_fields() -> None:
    fields = parse_authorization('Digest username="a b", realm="Vigie",nc=00000001, qop=auth, '
                                 'uri="rtsp://h/x?y=1,2", response="ff"')
    assert fields == {"username": "a b", "realm": "Vigie", "nc": "00000001", "qop": "auth",
                      "uri": "rtsp://h/x?y=1,2", "response": "ff"}
    assert parse_authorization("Basic YTpi") is None


@given(st.text(max_size=300))
def test_any_authorization_value_parses_or_is_refused(value: str) -> None:
    result = parse_authorization("Digest " + value)
    assert result is None or isinstance(result, dict)


def test_hostile_authorization_values_parse_in_linear_time() -> None:
    for rest in ("a" * 4000, "=" * 4000, '"' * 4000, "a=" * 2000, ", " * 2000):
        started = time.perf_counter()
        parse_authorization("Digest " + rest[:4000])
        assert time.perf_counter() - started < 0.25
    assert parse_authorization("Digest " + "a" * 5000) is None  # over the limit: not read
