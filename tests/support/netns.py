"""A network namespace joined to the host by a veth pair, for link-quality tests.

    with NetNamespace() as ns:                       # needs root (ip netns, ip link, tc)
        camera = NamespacedSimulator(ns, [Mount("farm", tag=5)]).start()
        url = camera.url("farm")                     # rtsp://198.18.x.2:PORT/farm
        ns.limit_rate("1mbit", burst="32kbit", latency="400ms")   # tbf on the camera's side
        ns.unlimit()

Addresses: a /30 of 198.18.0.0/15 (RFC 2544 benchmarking range, never routed on the
Internet), one end in the host namespace, the other in the new one. A blackhole route for
that /30 (higher metric than the veth's own route) sits in the host's table while the pair
exists, so that nothing addressed to it can ever take the default route off the machine,
even while the pair is being torn down. Everything is removed by `delete()` (idempotent),
which `__exit__` calls.

Only `tc ... tbf` is used for shaping: `netem` (delay, loss) is not in this kernel
(FIELD-NOTES); latency, stalls and resets come from `tests.support.faultproxy`.
"""

from __future__ import annotations

import collections
import ipaddress
import itertools
import json
import os
import subprocess
import threading
import time
from dataclasses import asdict

from tests.support.camsim import SERVER_SCRIPT, SYSTEM_PYTHON, Mount, stop_process

__all__ = ["NetNamespace", "NamespacedSimulator", "NamespaceUnavailable", "require_netns"]

RANGE = ipaddress.ip_network("198.18.0.0/15")
_counter = itertools.count()


class NamespaceUnavailable(RuntimeError):
    """Not root, or `ip netns` / veth / tc do not work here."""


def _run(args: list[str], check: bool = True, timeout: float = 10.0) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, args, result.stdout, result.stderr)
    return result


def require_netns() -> None:
    """Raise NamespaceUnavailable (with the reason) if namespaces cannot be made here."""
    if os.geteuid() != 0:
        raise NamespaceUnavailable("network namespaces need root")
    probe = NetNamespace()
    try:
        probe.create()
        probe.limit_rate()
    except (OSError, subprocess.SubprocessError) as error:
        raise NamespaceUnavailable(f"tc in a network namespace: {error}") from error
    finally:
        probe.delete()


def _used_addresses() -> set[ipaddress.IPv4Address]:
    output = _run(["ip", "-o", "-4", "addr", "show"], check=False).stdout
    found = set()
    for line in output.splitlines():
        fields = line.split()
        if "inet" in fields:
            found.add(ipaddress.ip_interface(fields[fields.index("inet") + 1]).ip)
    return found


class NetNamespace:
    """`ip netns` NAME + veth pair (host side / namespace side) on a /30 of 198.18.0.0/15."""

    def __init__(self) -> None:
        serial = next(_counter)
        tag = f"{os.getpid() % 100000}{serial}"
        self.name = f"vigie-ns-{tag}"
        self.host_device = f"vgh{tag}"[:15]   # interface names: at most 15 characters
        self.ns_device = f"vgn{tag}"[:15]
        used = _used_addresses()
        blocks = RANGE.num_addresses // 4
        start = (os.getpid() * 16 + serial) % blocks
        for offset in range(blocks):
            subnet = ipaddress.ip_network(
                (int(RANGE.network_address) + 4 * ((start + offset) % blocks), 30))
            hosts = list(subnet.hosts())
            if not used.intersection(hosts):
                break
        self.subnet = subnet
        self.host_address, self.ns_address = str(hosts[0]), str(hosts[1])
        self._created = False
        self._limited = False

    # -- lifecycle ---------------------------------------------------------------------------
    def create(self) -> NetNamespace:
        if os.geteuid() != 0:
            raise NamespaceUnavailable("network namespaces need root")
        self._created = True  # from here on, delete() cleans whatever exists
        prefix = f"/{self.subnet.prefixlen}"
        steps = [
            ["ip", "route", "add", "blackhole", str(self.subnet), "metric", "4242"],
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", self.host_device, "type", "veth",
             "peer", "name", self.ns_device, "netns", self.name],
            ["ip", "addr", "add", self.host_address + prefix, "dev", self.host_device],
            ["ip", "link", "set", self.host_device, "up"],
            ["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"],
            ["ip", "netns", "exec", self.name, "ip", "addr", "add", self.ns_address + prefix,
             "dev", self.ns_device],
            ["ip", "netns", "exec", self.name, "ip", "link", "set", self.ns_device, "up"],
        ]
        try:
            for step in steps:
                _run(step)
        except (OSError, subprocess.SubprocessError) as error:
            detail = getattr(error, "stderr", "") or str(error)
            self.delete()
            raise NamespaceUnavailable(f"cannot set up a network namespace: "
                                       f"{' '.join(step)}: {detail.strip()}") from error
        self._wait_reachable()
        return self

    def _wait_reachable(self, timeout: float = 5.0) -> None:
        """The pair is up once the namespace side answers a TCP connect (RST counts)."""
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                sock.settimeout(0.5)
                try:
                    sock.connect((self.ns_address, 9))
                    return
                except ConnectionRefusedError:
                    return
                except OSError:
                    time.sleep(0.1)
        raise NamespaceUnavailable(f"{self.ns_address} unreachable over the veth pair")

    def delete(self) -> None:
        """Remove the namespace, the pair and the blackhole route (idempotent, never raises)."""
        if not self._created:
            return
        self._created = False
        _run(["ip", "netns", "delete", self.name], check=False)  # takes its veth end along
        _run(["ip", "link", "delete", self.host_device], check=False)  # in case it lingers
        _run(["ip", "route", "del", "blackhole", str(self.subnet), "metric", "4242"], check=False)

    def __enter__(self) -> NetNamespace:
        return self.create()

    def __exit__(self, *exc_info: object) -> None:
        self.delete()

    # -- inside ------------------------------------------------------------------------------
    def command(self, args: list[str]) -> list[str]:
        """The argv running `args` inside the namespace."""
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return _run(self.command(args), check=check)

    # -- shaping -----------------------------------------------------------------------------
    def limit_rate(self, rate: str = "1mbit", burst: str = "32kbit", latency: str = "400ms") -> None:
        """Cap what leaves the namespace (the camera's upstream) with a token bucket."""
        self.run(["tc", "qdisc", "replace", "dev", self.ns_device, "root", "tbf",
                  "rate", rate, "burst", burst, "latency", latency])
        self._limited = True

    def unlimit(self) -> None:
        self.run(["tc", "qdisc", "del", "dev", self.ns_device, "root"], check=False)
        self._limited = False

    def qdisc(self) -> str:
        return self.run(["tc", "-s", "qdisc", "show", "dev", self.ns_device], check=False).stdout


class NamespacedSimulator:
    """tests/support/camsim/rtsp_server.py run inside a namespace (same CLI as CameraSimulator)."""

    def __init__(self, namespace: NetNamespace, mounts: list[Mount], port: int = 8554) -> None:
        self.namespace = namespace
        self.mounts = list(mounts)
        self.port = port
        self._process: subprocess.Popen | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=200)

    def start(self, timeout: float = 15.0) -> NamespacedSimulator:
        config = {"host": self.namespace.ns_address, "port": self.port,
                  "mounts": [asdict(mount) for mount in self.mounts]}
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["PYTHONUNBUFFERED"] = "1"
        self._process = subprocess.Popen(
            self.namespace.command([SYSTEM_PYTHON, str(SERVER_SCRIPT), "--config",
                                    json.dumps(config), "--exit-on-stdin-eof"]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, text=True, bufsize=1)
        ready = threading.Event()
        found: list[int] = []

        def drain_stdout(process: subprocess.Popen) -> None:
            try:
                for line in process.stdout:
                    if not found and line.startswith("READY "):
                        found.append(int(line.split()[1]))
                        ready.set()
            except (OSError, ValueError):
                pass
            ready.set()

        def drain_stderr(process: subprocess.Popen) -> None:
            try:
                for line in process.stderr:
                    self._stderr.append(line.rstrip("\n"))
            except (OSError, ValueError):
                pass

        threading.Thread(target=drain_stdout, args=(self._process,), daemon=True).start()
        threading.Thread(target=drain_stderr, args=(self._process,), daemon=True).start()
        ready.wait(timeout)
        if not found:
            self.stop()
            raise RuntimeError("camera simulator in namespace not ready; stderr:\n"
                               + "\n".join(list(self._stderr)[-30:]))
        self.port = found[0]
        return self

    def url(self, path: str) -> str:
        return f"rtsp://{self.namespace.ns_address}:{self.port}/{path.strip('/')}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)

    def stderr_tail(self, lines: int = 30) -> str:
        return "\n".join(list(self._stderr)[-lines:])

    def __enter__(self) -> NamespacedSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
