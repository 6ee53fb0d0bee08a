"""Debian's HAProxy in front of Vigie nodes, with the config a centre deploys
(deploy/cluster/haproxy.cfg, for docker-compose.cluster.yml): health checks on /readyz, a
request to a dead node sent to another, X-Forwarded-For added, WebSockets tunnelled."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO, free_port, missing_component
from tests.support.mjpeg import wait_until

DEPLOYED = REPO / "deploy" / "cluster" / "haproxy.cfg"
SOURCE = "127.0.0.9"  # HAProxy reaches the nodes from here: the nodes' only trusted proxy


def config(port: int, nodes: dict[str, str]) -> str:
    """deploy/cluster/haproxy.cfg as it ships, with what only Docker has taken out: this
    frontend's port, these `nodes` (name -> host:port) for Docker's service names, reached
    from SOURCE, and no Docker DNS resolver."""
    text = DEPLOYED.read_text()
    servers = "".join(f"  server {name} {address} check\n" for name, address in nodes.items())
    for pattern, replacement in ((r"\nresolvers docker[^\n]*\n(  [^\n]*\n)+", "\n"),
                                 (r" resolvers docker init-addr last,libc,none", f" source {SOURCE}"),
                                 (r"\n  bind :8080\n", f"\n  bind 127.0.0.1:{port}\n"),
                                 (r"(  server vigie-\w+ [^\n]*\n)+", servers)):
        text, count = re.subn(pattern, lambda _: replacement, text)
        assert count == 1, f"{DEPLOYED}: no longer has what the test replaces ({pattern!r})"
    return text


class LoadBalancer:
    def __init__(self, folder: Path, nodes: dict[str, str]) -> None:
        if shutil.which("haproxy") is None:
            missing_component("haproxy is not installed (Debian package haproxy)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.path = folder / "haproxy.cfg"
        self.path.write_text(config(self.port, nodes))
        check = subprocess.run(["haproxy", "-c", "-f", str(self.path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.process = subprocess.Popen(["haproxy", "-db", "-f", str(self.path)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_ready(self, timeout: float = 10.0) -> None:
        import urllib.request

        def ready() -> bool:
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as response:
                    return response.status == 200
            except OSError:
                return False
        wait_until(ready, timeout, message="HAProxy passing requests")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
