"""The RTSP section, stream credentials and partners: what loads, what is refused (by file,
line and field), and what the access layer makes of it."""

from __future__ import annotations

import datetime

import pytest

from server.access.directory import Directory
from server.access.digest import ha1
from server.access.scope import Role, can_view_camera, can_view_wall, refusal
from server.config import parse_config
from tests.server.config.cases import CAMERAS, CANARY, COMMUNES, ENV, FILE, HASH, WALLS, bad, check_bad, document, user

MD5 = "a" * 32
SHA = "f" * 64

RTSP_CASES = [
    bad("rtsp-listen", document(COMMUNES, "rtsp:\n  listen: 8554  #<\n"), "rtsp.listen", "expected"),
    bad("rtsp-odd-ports", document(COMMUNES, "rtsp:\n  udp_ports: 8001-8002  #<\n"), "rtsp.udp_ports",
        "the first port must be even"),
    bad("rtsp-ports-form", document(COMMUNES, "rtsp:\n  udp_ports: '8000'  #<\n"), "rtsp.udp_ports",
        "expected FIRST-LAST"),
    bad("rtsp-timeout", document(COMMUNES, "rtsp:\n  session_timeout: 5  #<\n"), "rtsp.session_timeout",
        "greater than or equal to 10"),
    bad("rtsp-tls-missing", document(COMMUNES, "rtsp:\n  tls: {cert: /nonexistent.pem, key: /etc/hostname}  #<\n"),
        "rtsp.tls.cert", "no readable file"),
    bad("partner-without-scope", document(COMMUNES, user("role: partner", name="jdupont  #<", password_hash=None)),
        "users[0].communes", "a partner needs communes, cameras or walls"),
    bad("operator-with-cameras", document(COMMUNES, CAMERAS, user("role: operator", "cameras: [cam-a]  #<")),
        "users[0].cameras", "only a partner has cameras of its own"),
    bad("partner-unknown-camera", document(COMMUNES, CAMERAS, user(
        "role: partner", "stream_password_env: CAM_A_PASSWORD", "cameras: [cam-a, cam-z]  #<", password_hash=None)),
        "users[0].cameras[1]", "unknown camera 'cam-z'"),
    bad("partner-unknown-wall", document(COMMUNES, WALLS, user(
        "role: partner", "stream_password_env: CAM_A_PASSWORD", "walls: [centr]  #<", password_hash=None)),
        "users[0].walls[0]", "did you mean 'centre'?"),
    bad("partner-bad-network", document(COMMUNES, user(
        "role: partner", "communes: [st-martin]", "stream_password_env: CAM_A_PASSWORD",
        "allowed_from: [10.0.0.0/33]  #<", password_hash=None)),
        "users[0].allowed_from[0]", "not a network"),
    bad("partner-bad-date", document(COMMUNES, user(
        "role: partner", "communes: [st-martin]", "stream_password_env: CAM_A_PASSWORD",
        "valid_until: next year  #<", password_hash=None)),
        "users[0].valid_until", "datetime"),
    bad("stream-password-inline", document(COMMUNES, user("role: admin", "stream_password: hunter2-pw  #<")),
        "users[0].stream_password", "inline passwords are not allowed"),
    bad("stream-env-unset", document(COMMUNES, user("role: admin", "stream_password_env: NOPE  #<")),
        "users[0].stream_password_env", "the environment variable it names is not set"),
    bad("stream-two-ways", document(COMMUNES, user(
        "role: admin", "stream_password_env: CAM_A_PASSWORD", f"stream_digest: {{md5: {MD5}, sha256: {SHA}}}  #<")),
        "users[0].stream_digest", "give the stream password one way only"),
    bad("stream-digest-shape", document(COMMUNES, user("role: admin", "stream_digest: {md5: abc, sha256: " + SHA + "}  #<")),
        "users[0].stream_digest.md5", "should match pattern"),
    bad("rtsp-output-without-credential", document(COMMUNES, user(
        "role: partner", "communes: [st-martin]", "outputs: [rtsp]  #<", password_hash=None)),
        "users[0].outputs", "the rtsp output needs a stream password"),
    bad("web-output-without-password", document(COMMUNES, user(
        "role: partner", "communes: [st-martin]", "stream_password_env: CAM_A_PASSWORD",
        "outputs: [web, rtsp]  #<", password_hash=None)),
        "users[0].outputs", "the web output needs password_hash"),
]


@pytest.mark.parametrize(("text", "path", "fragment", "env"), RTSP_CASES)
def test_bad_rtsp_config_is_refused_with_file_line_path_and_reason(text, path, fragment, env):
    check_bad(text, path, fragment, env)


def partner_document() -> str:
    return document(
        COMMUNES, CAMERAS, WALLS,
        "rtsp:\n  listen: '127.0.0.1:9554'\n  udp_ports: 9000-9001\n  session_timeout: 30\n",
        "users:\n"
        f"  - {{name: boss, role: admin, password_hash: '{HASH}', stream_password_env: CAM_A_PASSWORD}}\n"
        f"  - {{name: ops, role: operator, password_hash: '{HASH}', "
        f"stream_digest: {{md5: {MD5}, sha256: {SHA}}}}}\n"
        "  - name: gendarmerie\n    role: partner\n    communes: [st-martin]\n    cameras: [cam-b]\n"
        "    walls: [centre]\n    allowed_from: [192.0.2.0/24, '2001:db8::/32']\n"
        "    valid_until: 2027-06-30T23:59:59+02:00\n    stream_password_env: CAM_A_PASSWORD\n",
    )


def test_rtsp_section_partners_and_stream_credentials_load():
    config = parse_config(partner_document(), FILE, env=ENV)
    assert (config.rtsp.host, config.rtsp.port, config.rtsp.rtp_port, config.rtsp.session_timeout) == \
        ("127.0.0.1", 9554, 9000, 30)
    assert parse_config(document(COMMUNES), FILE).rtsp.listen == "0.0.0.0:8554"  # on by default
    assert parse_config(document(COMMUNES, "rtsp: {listen: null}\n"), FILE).rtsp.listen is None
    partner = config.user("gendarmerie")
    assert partner.allowed_outputs == {"rtsp"} and config.user("boss").allowed_outputs == {"web", "rtsp"}
    assert partner.valid_until == datetime.datetime(2027, 6, 30, 21, 59, 59, tzinfo=datetime.UTC)
    assert CANARY not in repr(config) and SHA not in repr(config)  # secrets never shown

    directory = Directory(config)
    boss, ops, gendarmerie = (directory.streams[name] for name in ("boss", "ops", "gendarmerie"))
    assert boss.ha1 == {"MD5": ha1("MD5", "boss", CANARY), "SHA-256": ha1("SHA-256", "boss", CANARY)}
    assert ops.ha1 == {"MD5": MD5, "SHA-256": SHA}
    principal = gendarmerie.principal
    assert principal.role is Role.PARTNER and principal.walls == {"centre"}
    # Its communes' cameras and the ones named; a named wall whatever shows on it.
    assert can_view_camera(principal, "st-martin", "cam-a") and can_view_camera(principal, "les-granges", "cam-b")
    assert not can_view_camera(principal, "les-granges", "cam-c")
    assert can_view_wall(principal, "centre", set(), ["les-granges", "st-martin"], ["cam-c", "cam-a"])
    assert not can_view_wall(principal, "other", {"st-martin"}, ["les-granges"], ["cam-c"])
    before = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC).timestamp()
    after = datetime.datetime(2027, 7, 1, tzinfo=datetime.UTC).timestamp()
    assert refusal(principal, "rtsp", "192.0.2.9", before) is None
    assert refusal(principal, "rtsp", "2001:db8::1", before) is None
    assert "address" in refusal(principal, "rtsp", "198.51.100.1", before)
    assert "ended" in refusal(principal, "rtsp", "192.0.2.9", after)
    assert "web" in refusal(principal, "web", "192.0.2.9", before)


@pytest.mark.parametrize(("text", "path", "fragment", "env"), [
    bad("cluster-url", document(COMMUNES, "cluster:\n  nats: ['http://x:4222']  #<\n  node: n1\n"),
        "cluster.nats[0]", "expected nats://HOST:PORT"),
    bad("cluster-credentials", document(COMMUNES, "cluster:\n  nats: ['nats://u:p@x:4222']  #<\n  node: n1\n"),
        "cluster.nats[0]", "without credentials"),
    bad("cluster-node", document(COMMUNES, "cluster:  #<\n  nats: ['nats://x:4222']\n"),
        "cluster.node", "required key is missing"),
    bad("cluster-periods", document(COMMUNES, "cluster:\n  nats: ['nats://x:4222']\n  node: n1\n"
                                    "  lease_seconds: 3.0\n  renew_seconds: 2.0  #<\n"),
        "cluster.renew_seconds", "at most half of lease_seconds"),
])
def test_bad_cluster_config_is_refused(text, path, fragment, env):
    check_bad(text, path, fragment, env)


@pytest.mark.parametrize(("text", "path", "fragment", "env"), [
    bad("cluster-user-without-password", document(COMMUNES, "cluster:\n  nats: ['nats://x:4222']\n  node: n1\n"
                                                  "  user: vigie  #<\n"),
        "cluster.user", "go together"),
    bad("cluster-password-unset", document(COMMUNES, "cluster:\n  nats: ['nats://x:4222']\n  node: n1\n"
                                           "  user: vigie\n  password_env: NOPE  #<\n"),
        "cluster.password_env", "the environment variable it names is not set"),
    bad("cluster-tls-ca", document(COMMUNES, "cluster:\n  nats: ['tls://x:4222']\n  node: n1\n"
                                   "  tls: {ca: /nonexistent/ca.pem}  #<\n"),
        "cluster.tls.ca", "no readable file"),
])
def test_bad_nats_credentials_are_refused(text, path, fragment, env):
    check_bad(text, path, fragment, env)


def test_node_alone_on_the_command_line_keeps_the_file_s_cluster(tmp_path, monkeypatch):
    """`vigie serve --config F --node vigie-b`: every node reads one file; its cluster
    section (NATS servers, TLS, credentials, replicas) stays, only the node's name changes."""
    import argparse

    from server.cli import with_overrides
    from server.config import load_config

    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("NATS_PW", "nats-Pw-1")
    path = tmp_path / "vigie.yaml"
    path.write_text(document(COMMUNES, "cluster:\n  nats: ['tls://n1:4222', 'tls://n2:4222']\n  node: vigie-a\n"
                             "  user: vigie\n  password_env: NATS_PW\n  tls: {ca: ca.pem}\n  replicas: 3\n"))
    config = load_config(path)
    moved = with_overrides(config, argparse.Namespace(node="vigie-b", cluster=None, port=None, rtsp_port=None))
    assert moved.cluster.node == "vigie-b"
    assert (moved.cluster.nats, moved.cluster.replicas, moved.cluster.user) == (config.cluster.nats, 3, "vigie")
    assert moved.cluster.tls.path("ca") == str(tmp_path / "ca.pem") and moved.cluster.password() == "nats-Pw-1"
    assert moved.fingerprint() == config.fingerprint()  # a node's name is its own
    with pytest.raises(ValueError, match="go together"):
        with_overrides(config.model_copy(update={"cluster": None}),
                       argparse.Namespace(node="vigie-b", cluster=None, port=None, rtsp_port=None))
