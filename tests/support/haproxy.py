"""Debian's HAProxy in front of Vigie nodes, as a centre deploys it (docker-compose.cluster.yml
has the same settings): health checks on /readyz, a request to a dead node sent to another,
X-Forwarded-For added, WebSockets tunnelled."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import free_port, missing_component
from tests.support.mjpeg import wait_until

SOURCE = "127.0.0.9"  # HAProxy reaches the nodes from here: the nodes' only trusted proxy


def config(port: int, nodes: dict[str, str]) -> str:
    """`nodes`: name -> host:port."""
    servers = "\n".join(f"  server {name} {address} check" for name, address in nodes.items())
    return f"""global
  maxconn 512
defaults
  mode http
  timeout connect 1s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  option redispatch
  retries 3
  option forwardfor
frontend vigie
  bind 127.0.0.1:{port}
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 500ms fall 2 rise 2 source {SOURCE}
{servers}
"""


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
