"""docker-compose.cluster.yml and its files (deploy/cluster/) as a centre would use them:
the compose file is valid for docker-compose, the certificates script makes what the NATS
servers need, Debian's nats-server and HAProxy accept their configs, and Vigie loads the
nodes' config with each node's --node, trusting exactly the load balancer's address."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

import pytest
import yaml

from server.cli import with_overrides
from server.config import load_config
from tests.conftest import REPO, missing_component

COMPOSE = REPO / "docker-compose.cluster.yml"
DEPLOY = REPO / "deploy" / "cluster"


def need(command: str, package: str) -> str:
    path = shutil.which(command)
    if path is None:
        missing_component(f"{command} is missing (Debian package {package})")
    return path


def test_the_compose_file_is_valid_and_asks_for_the_nats_password():
    compose = need("docker-compose", "docker-compose")
    env = {key: value for key, value in os.environ.items() if key != "NATS_PASSWORD"}
    ok = subprocess.run([compose, "-f", str(COMPOSE), "config", "-q"], cwd=REPO, capture_output=True, text=True,
                        timeout=60, env={**env, "NATS_PASSWORD": "nats-Pw-1"})
    assert ok.returncode == 0, ok.stderr
    refused = subprocess.run([compose, "-f", str(COMPOSE), "config", "-q"], cwd=REPO, capture_output=True,
                             text=True, timeout=60, env=env)
    assert refused.returncode != 0 and "set NATS_PASSWORD" in refused.stderr
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {"nats1", "nats2", "nats3", "vigie-a", "vigie-b", "vigie-c", "cameras", "haproxy"} <= set(services)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    need("openssl", "openssl")
    folder = tmp_path_factory.mktemp("deploy") / "cluster"
    shutil.copytree(DEPLOY, folder, ignore=shutil.ignore_patterns("certs"))
    made = subprocess.run(["sh", str(folder / "make-certs.sh")], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    return folder


def test_the_nats_servers_accept_their_config_and_certificates(certificates):
    nats = need("nats-server", "nats-server")
    certs = certificates / "certs"
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(certs / "ca.pem"), str(certs / "nats.pem")],
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    names = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(certs / "nats.pem")],
                           capture_output=True, text=True).stdout
    assert all(f"DNS:nats{i}" in names for i in (1, 2, 3)), names
    conf = certificates / "nats-test.conf"
    conf.write_text((certificates / "nats.conf").read_text().replace("/certs/", f"{certs}/")
                    .replace("store_dir: /data", f"store_dir: {certificates / 'data'}"))
    checked = subprocess.run([nats, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=30,
                             env={**os.environ, "NATS_NAME": "nats1", "NATS_PASSWORD": "nats-Pw-1"})
    assert checked.returncode == 0 and "valid" in checked.stdout + checked.stderr, checked.stderr


def test_haproxy_accepts_its_config():
    haproxy = need("haproxy", "haproxy")
    checked = subprocess.run([haproxy, "-c", "-f", str(DEPLOY / "haproxy.cfg")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_every_node_loads_the_one_config_under_its_own_name(certificates, monkeypatch):
    monkeypatch.setenv("NATS_PASSWORD", "nats-Pw-1")
    path = certificates / "vigie-test.yaml"
    path.write_text((DEPLOY / "vigie.yaml").read_text().replace("/etc/vigie/certs/ca.pem",
                                                               str(certificates / "certs" / "ca.pem")))
    config = load_config(path)
    nodes = [with_overrides(config, argparse.Namespace(node=f"vigie-{n}", cluster=None, port=None, rtsp_port=None))
             for n in "abc"]
    assert [node.cluster.node for node in nodes] == ["vigie-a", "vigie-b", "vigie-c"]
    assert len({node.fingerprint() for node in nodes}) == 1 and config.cluster.replicas == 3
    compose = yaml.safe_load(COMPOSE.read_text())
    balancer = compose["services"]["haproxy"]["networks"]["centre"]["ipv4_address"]
    assert [str(network) for network in config.server.trusted_proxies] == [f"{balancer}/32"]
    commands = [compose["services"][f"vigie-{n}"]["command"] for n in "abc"]
    assert all(command[-2:] == ["--node", f"vigie-{n}"] for command, n in zip(commands, "abc"))
