"""RTSPS (RTSP over TLS, `rtsp.tls`) with FFmpeg's client, Basic offered only there, and
RTSP logins through the web's throttle. A Vigie of its own: the failed logins it provokes
must not lock out the other tests' users."""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse

from server.cli import free_tcp_port, free_udp_pair
from tests.conftest import missing_component, users_yaml
from tests.support.mjpeg import wait_until

PASSWORD = "tls-stream-Pw"


def probe(source: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                           "-of", "csv=p=0", source], capture_output=True, text=True, timeout=60)


def test_rtsps_serves_over_tls_and_logins_are_throttled(vigie, tmp_path) -> None:
    for tool in ("ffprobe", "openssl"):
        if shutil.which(tool) is None:
            missing_component(f"{tool} is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port, udp = free_tcp_port("127.0.0.1"), free_udp_pair("127.0.0.1")
    server = vigie(f"""server: {{listen: "127.0.0.1:{{port}}"}}
rtsp: {{listen: "127.0.0.1:{port}", udp_ports: "{udp}-{udp + 1}", tls: {{cert: "{cert}", key: "{key}"}}}}
communes: [{{id: nord, name: Nord}}]
cameras:
  - {{id: syn, name: Syn, commune: nord, url: "synthetic://syn?width=320&height=180&fps=10&tag=4"}}
""" + users_yaml().replace("role: admin,", "role: admin, stream_password_env: STREAM_PW,"),
        env={"STREAM_PW": PASSWORD})
    wait_until(lambda: server.get_json("/api/cameras")[0]["state"] == "live", 10, message="camera live")
    base = f"rtsps://admin:{urllib.parse.quote(PASSWORD)}@127.0.0.1:{port}/cameras/syn"
    assert probe(base).stdout.strip() == "h264,320,180"
    plain = probe(f"rtsp://admin:{urllib.parse.quote(PASSWORD)}@127.0.0.1:{port}/cameras/syn")
    assert plain.returncode != 0  # plain RTSP on a TLS port: nothing

    # Basic is offered over TLS only, and checked against the same stream credential.
    import base64
    import socket
    import ssl

    def basic_describe(password: str) -> bytes:
        context = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            token = base64.b64encode(f"admin:{password}".encode()).decode()
            tls.sendall(f"DESCRIBE rtsps://127.0.0.1:{port}/cameras/syn RTSP/1.0\r\nCSeq: 1\r\n"
                        f"Authorization: Basic {token}\r\n\r\n".encode())
            return tls.recv(4096)
    assert basic_describe(PASSWORD).startswith(b"RTSP/1.0 200")
    refused = basic_describe("wrong-basic")
    assert refused.startswith(b"RTSP/1.0 401") and b'Basic realm="Vigie"' in refused

    # Wrong answers count per user and per address, as web logins do: after the free
    # attempts even the right password waits (503 with Retry-After), and it is journaled.
    for _ in range(4):  # the wrong Basic password above was the first of five
        assert "401" in probe(base.replace(PASSWORD, "wrong-guess")).stderr
    refused = probe(base)
    assert "503" in refused.stderr, refused.stderr
    rows = server.get_json("/api/audit?kind=login_failed&limit=50")
    reasons = [row["detail"]["reason"] for row in rows if row["detail"].get("output") == "rtsp"]
    assert reasons.count("bad credentials") == 5 and "throttled" in reasons
    assert PASSWORD not in server.log() and "wrong-guess" not in server.log()
