"""Vigie's RTSP server with real clients nobody here wrote: FFmpeg (ffmpeg, ffprobe, and its
RTSP client through PyAV) and GStreamer's rtspsrc, over TCP and UDP, with Digest.

One Vigie for the module: an H.264 and an H.265 camera (tests/support/camsim), a synthetic
one, a wall of the three; an admin and a police officer with stream passwords, and partners
refused by address and by date.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.parse

import av
import numpy as np
import pytest

from ingest.encode.rtp import split_annex_b
from ingest.picture.stamp import read_stamp
from server.cli import free_tcp_port, free_udp_pair
from tests.conftest import missing_component, password_hash, start_vigie, users_yaml
from tests.support.camsim import CameraSimulator, Mount, require_gstreamer

STREAM_PASSWORDS = {"ADMIN_STREAM": "admin-stream-Pw", "AGENT_STREAM": "agent-stream-Pw",
                    "PARTNER_STREAM": "partner-stream-Pw"}
FPS = 15


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing_component(f"{name} is not installed")
    return path


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    try:
        require_gstreamer()
    except RuntimeError as error:
        missing_component(str(error))
    for tool in ("ffmpeg", "ffprobe", "gst-launch-1.0"):
        _tool(tool)
    simulator = CameraSimulator([Mount("cam1", tag=1, fps=FPS), Mount("cam2", codec="h265", tag=2, fps=FPS),
                                 Mount("small", tag=5, width=320, height=180, fps=FPS)]).start()
    rtsp_port, udp = free_tcp_port("127.0.0.1"), free_udp_pair("127.0.0.1")
    users = users_yaml().replace("role: admin,", "role: admin, stream_password_env: ADMIN_STREAM,")
    users += (f'  - {{name: agent, role: police, communes: [nord], password_hash: "{password_hash("agent-Pw")}", '
              "stream_password_env: AGENT_STREAM}\n"
              "  - {name: far, role: partner, communes: [nord], allowed_from: [192.0.2.0/24], "
              "stream_password_env: PARTNER_STREAM}\n"
              "  - {name: late, role: partner, cameras: [cam1], valid_until: 2020-01-01T00:00:00Z, "
              "stream_password_env: PARTNER_STREAM}\n")
    config = f"""server: {{listen: "127.0.0.1:{{port}}"}}
rtsp: {{listen: "127.0.0.1:{rtsp_port}", udp_ports: "{udp}-{udp + 1}", session_timeout: 10}}
communes: [{{id: nord, name: Nord}}, {{id: sud, name: Sud}}]
cameras:
  - {{id: cam1, name: One, commune: nord, url: "{simulator.url('cam1')}"}}
  - {{id: cam2, name: Two, commune: sud, url: "{simulator.url('cam2')}"}}
  - {{id: syn, name: Syn, commune: nord, url: "synthetic://syn?width=640&height=360&fps={FPS}&tag=3"}}
  - {{id: duo, name: Duo, commune: sud, url: "{simulator.url('cam2')}", substream_url: "{simulator.url('small')}"}}
  - {{id: masked, name: Masked, commune: nord, url: "{simulator.url('cam1')}",
     privacy_masks: [[[0, 0.5], [1, 0.5], [1, 1], [0, 1]]]}}
walls:
  - {{id: w, name: W, size: 1280x720, fps: {FPS}, layout: 2x2, cameras: [cam1, cam2, syn]}}
""" + users
    server = start_vigie(config, tmp_path_factory.mktemp("rtsp"), env=STREAM_PASSWORDS)
    server.rtsp = f"rtsp://127.0.0.1:{rtsp_port}"
    server.simulator = simulator
    yield server
    server.terminate()
    simulator.stop()


def url(rig, path: str, user: str = "admin", password: str | None = None) -> str:
    password = password or STREAM_PASSWORDS[f"{user.upper()}_STREAM"]
    host = rig.rtsp.removeprefix("rtsp://")
    return f"rtsp://{user}:{urllib.parse.quote(password)}@{host}{path}"


def ffmpeg_frames(source: str, transport: str, seconds: float = 5.0) -> tuple[list[int], str]:
    """Decode `seconds` of the stream with ffmpeg: each frame's pts, and what ffmpeg said."""
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", transport, "-i", source,
         "-t", str(seconds), "-f", "framecrc", "-"], capture_output=True, text=True, timeout=60)
    pts = [int(line.split(",")[2]) for line in result.stdout.splitlines()
           if line and not line.startswith("#")]
    return pts, result.stderr


def probe(source: str, transport: str = "tcp") -> tuple[str, str]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", transport, "-show_entries",
         "stream=codec_name,width,height", "-of", "csv=p=0", source],
        capture_output=True, text=True, timeout=60)
    return result.stdout.strip(), result.stderr


@pytest.mark.parametrize("path, transport, codec, size", [
    ("/cameras/cam1", "tcp", "h264", "640,360"),
    ("/cameras/cam2", "udp", "hevc", "640,360"),
    ("/cameras/syn", "udp", "h264", "640,360"),
    ("/walls/w", "tcp", "h264", "1280,720"),
])
def test_ffmpeg_plays_cameras_and_walls_with_digest(rig, path, transport, codec, size) -> None:
    assert probe(url(rig, path), transport)[0] == f"{codec},{size}"
    pts, said = ffmpeg_frames(url(rig, path), transport)
    assert not said.strip(), said  # no decoding error, nothing refused
    assert len(pts) >= 0.9 * FPS * 5, len(pts)
    assert all(b > a for a, b in zip(pts, pts[1:])), "timestamps go back"


def test_substreams_and_masked_cameras(rig) -> None:
    """A substream plays as it is; a camera with privacy masks is never sent as it came:
    re-encoded from its masked tiles (H.264, composed), whatever the camera sends."""
    assert probe(url(rig, "/cameras/duo"))[0] == "hevc,640,360"
    assert probe(url(rig, "/cameras/duo/sub"))[0] == "h264,320,180"
    assert "404" in probe(url(rig, "/cameras/cam1/sub"))[1]  # no substream: like an unknown path
    with av.open(url(rig, "/cameras/masked"), options={"rtsp_transport": "tcp"}, timeout=20) as container:
        sources = [s["source"] for s in _rtsp_sessions(rig) if s["path"] == "/cameras/masked"]
        for index, frame in enumerate(container.decode(video=0)):
            gray = frame.to_ndarray(format="gray")
            if index >= 20:
                break
    height = gray.shape[0]
    assert sources == ["composed"]
    assert read_stamp(np.ascontiguousarray(gray)) is not None  # the top half shows
    masked_half = gray[height // 2 + 8:height * 85 // 100, 8:-8]  # above the label and clock
    assert masked_half.std() < 3, "the masked half must be uniform"
    from tests.support.mjpeg import fetch

    metrics = fetch("GET", rig.base_url + "/metrics", headers=rig.headers)[2].decode()
    sessions = re.search(r'vigie_rtsp_sessions_total\{path="/cameras/masked"\} (\d+)', metrics)
    assert sessions is not None and int(sessions[1]) >= 1  # FFmpeg's client may set up more than once
    assert 'vigie_rtsp_bytes_sent_total{path="/cameras/duo/sub"}' in metrics


def test_refusals_look_like_rtsp_should(rig) -> None:
    assert "401" in probe(url(rig, "/cameras/cam1", password="wrong-one"))[1]
    # A police officer: their own camera plays; a foreign one is 404 like an unknown one.
    assert probe(url(rig, "/cameras/cam1", "agent"))[0] == "h264,640,360"
    foreign, unknown = probe(url(rig, "/cameras/cam2", "agent"))[1], probe(url(rig, "/cameras/nope", "agent"))[1]
    assert "404" in foreign and "404" in unknown
    assert "404" in probe(url(rig, "/walls/w", "agent"))[1]  # a centre wall with a foreign camera
    # Partners: outside allowed_from, after valid_until: refused once authenticated.
    for partner in ("far", "late"):
        assert "403" in probe(url(rig, "/cameras/cam1", partner, STREAM_PASSWORDS["PARTNER_STREAM"]))[1]
    rows = rig.get_json("/api/audit?limit=500")
    failed = [row for row in rows if row["kind"] == "login_failed" and row["detail"].get("output") == "rtsp"]
    assert failed and all(row["user"] in ("admin", "(unknown user)") for row in failed)
    denied = {row["user"] for row in rows if row["kind"] == "access_denied"}
    assert denied == {"far", "late"}
    views = [row for row in rows if row["kind"] == "view" and str(row["output"]).startswith("rtsp-")]
    assert {(row["user"], row["target"]) for row in views} >= {("admin", "cam1"), ("agent", "cam1")}


def test_gstreamer_rtspsrc_counts_buffers(rig) -> None:
    source = url(rig, "/cameras/cam1")
    parts = urllib.parse.urlsplit(source)
    location = f"rtsp://{parts.hostname}:{parts.port}{parts.path}"
    result = subprocess.run(
        ["timeout", "-s", "INT", "8", "gst-launch-1.0", "-e", "-v", "rtspsrc", f"location={location}",
         f"user-id={parts.username}", f"user-pw={urllib.parse.unquote(parts.password)}", "protocols=tcp",
         "!", "rtph264depay", "!", "h264parse", "!", "fakesink", "silent=false"],
        capture_output=True, text=True, timeout=30)
    buffers = result.stdout.count("fakesink0:sink") + result.stdout.count("chain   ******")
    assert buffers >= 3 * FPS, result.stdout[-2000:] + result.stderr[-2000:]


def nal_units(raw: bytes) -> list[bytes]:
    return split_annex_b(raw)


def test_passthrough_is_byte_exact(rig, tmp_path) -> None:
    """The camera's access units through Vigie equal the camera's own, read at the same
    time by the same client, except the parameter sets put before the first keyframe."""
    direct, relayed = tmp_path / "direct.h264", tmp_path / "relayed.h264"
    readers = [subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", source,
                                 "-t", "4", "-c", "copy", "-f", "h264", str(out)])
               for source, out in ((rig.simulator.url("cam1"), direct), (url(rig, "/cameras/cam1"), relayed))]
    for reader in readers:
        assert reader.wait(60) == 0
    ours, theirs = nal_units(relayed.read_bytes()), nal_units(direct.read_bytes())
    first_picture = next(i for i, nal in enumerate(ours) if nal[0] & 0x1F in (1, 5))
    assert ours[first_picture][0] & 0x1F == 5, "a client starts on a keyframe"
    assert {nal[0] & 0x1F for nal in ours[:first_picture]} >= {7, 8}, "parameter sets before it"
    start = theirs.index(ours[first_picture])
    compared = ours[first_picture:]
    length = min(len(compared), len(theirs) - start) - 2  # the last may be cut by -t
    assert length >= 20
    assert compared[:length] == theirs[start:start + length]


def test_capture_time_carried_by_rtcp(rig) -> None:
    """FFmpeg's client computes each picture's time from the sender reports
    (start_time_realtime + pts): within 100 ms of the time camsim stamped in it."""
    errors = []
    with av.open(url(rig, "/cameras/cam1"), options={"rtsp_transport": "tcp"}, timeout=20) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            frames = packet.decode()  # no B-frames: the packet's own picture, if any
            realtime = container.start_time_realtime
            if not frames or packet.pts is None or not realtime or realtime < 0:
                continue  # no sender report yet
            stamp = read_stamp(np.ascontiguousarray(frames[0].to_ndarray(format="gray")))
            if stamp is None:
                continue
            seen_ms = (realtime / 1e6 + float(packet.pts * packet.time_base)) * 1000
            errors.append(((int(seen_ms) - stamp.ms + 2**31) % 2**32) - 2**31)
            if len(errors) >= 45:
                break
    assert len(errors) >= 30
    assert max(abs(e) for e in errors) < 100, errors


def _rtsp_exchange(sock: socket.socket, request: str) -> str:
    """Send a request, read its whole answer (head and body); nothing else is in flight."""
    sock.sendall(request.encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    head = answer.split(b"\r\n\r\n")[0].decode(errors="replace")
    length = next((int(line.split(":")[1]) for line in head.split("\r\n")
                   if line.lower().startswith("content-length:")), 0)
    while len(answer) < len(head) + 4 + length:
        answer += sock.recv(4096)
    return answer.decode(errors="replace")


def _play_raw(rig, path: str, transport: str, rcvbuf: int | None = None) -> socket.socket:
    """A client that logs in (Digest, with ingest/digest.py), sets up and plays, then does
    whatever the test wants with the socket: read nothing, or vanish."""
    from ingest.digest import parse_fields, response
    from server.access.digest import ha1

    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    host, port = rig.rtsp.removeprefix("rtsp://").split(":")
    sock.connect((host, int(port)))
    target = f"{rig.rtsp}{path}"
    challenge = _rtsp_exchange(sock, f"DESCRIBE {target} RTSP/1.0\r\nCSeq: 1\r\n\r\n")
    line = next(line for line in challenge.split("\r\n") if "algorithm=MD5" in line)
    fields = parse_fields(line.split(":", 1)[1].strip())[1]
    secret = ha1("MD5", "admin", STREAM_PASSWORDS["ADMIN_STREAM"])

    def authorization(method: str, uri: str) -> str:
        answer = response("MD5", secret, method, uri, fields["nonce"], "00000001", "c0ffee", "auth")
        return (f'Authorization: Digest username="admin", realm="Vigie", nonce="{fields["nonce"]}", '
                f'uri="{uri}", response="{answer}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee"\r\n')
    described = _rtsp_exchange(sock, f"DESCRIBE {target} RTSP/1.0\r\nCSeq: 2\r\n{authorization('DESCRIBE', target)}\r\n")
    assert described.startswith("RTSP/1.0 200"), described
    spec = ("RTP/AVP/TCP;unicast;interleaved=0-1" if transport == "tcp"
            else "RTP/AVP;unicast;client_port=40000-40001;destination=192.0.2.7")
    setup = _rtsp_exchange(sock, f"SETUP {target}/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: {spec}\r\n\r\n")
    assert setup.startswith("RTSP/1.0 200"), setup
    session = next(line for line in setup.split("\r\n") if line.startswith("Session:")).split(":")[1].split(";")[0].strip()
    if transport == "udp":
        assert "192.0.2.7" not in setup and "destination" not in setup  # never sent elsewhere
    sock.sendall(f"PLAY {target} RTSP/1.0\r\nCSeq: 4\r\nSession: {session}\r\n\r\n".encode())
    return sock


def _rtsp_sessions(rig) -> list[dict]:
    return rig.get_json("/api/status")["rtsp"]["sessions"]


def test_a_client_that_reads_nothing_costs_others_nothing_and_is_dropped(rig) -> None:
    stalled = _play_raw(rig, "/cameras/cam1", "tcp", rcvbuf=4096)
    try:
        pts, said = ffmpeg_frames(url(rig, "/cameras/cam1"), "tcp", seconds=10)
        assert len(pts) >= 0.95 * FPS * 10, (len(pts), said)
        deadline = time.monotonic() + 3 * 10
        while time.monotonic() < deadline and any(s["user"] == "admin" and s["transport"] == "tcp"
                                                  for s in _rtsp_sessions(rig)):
            time.sleep(0.5)
        assert not _rtsp_sessions(rig), "the stalled client is still served"
    finally:
        stalled.close()
    rows = rig.get_json("/api/audit?limit=50")
    assert any(row["kind"] == "view" and row["close_reason"] == "too slow" for row in rows)


def test_a_udp_client_that_vanishes_is_reaped_after_the_session_timeout(rig) -> None:
    vanished = _play_raw(rig, "/cameras/syn", "udp")  # sends no RTCP, no keep-alive
    try:
        time.sleep(1)
        assert [s["transport"] for s in _rtsp_sessions(rig)] == ["udp"]
        deadline = time.monotonic() + 3 * 10  # session_timeout: 10
        while time.monotonic() < deadline and _rtsp_sessions(rig):
            time.sleep(0.5)
        assert not _rtsp_sessions(rig)
    finally:
        vanished.close()


def test_garbage_and_missing_cseq_get_4xx_and_a_closed_connection(rig) -> None:
    host, port = rig.rtsp.removeprefix("rtsp://").split(":")
    for garbage in (b"OPTIONS * RTSP/1.0\r\n\r\n", b"\x16\x03\x01\x02\x00garbage\r\n\r\n",
                    b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: " + b"a" * 20_000):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(garbage)
            answer = sock.recv(4096)
            assert answer.startswith((b"RTSP/1.0 400", b"RTSP/1.0 431")), answer
            assert sock.recv(4096) == b""  # closed, never left hanging
    assert probe(url(rig, "/cameras/cam1"))[0] == "h264,640,360"  # and the server still serves


def test_a_reload_ends_rtsp_sessions_that_may_no_longer_see(rig) -> None:
    """The security issue's re-check covers RTSP: a camera moved out of a police officer's
    commune ends their session, a changed stream password ends the sessions it opened; a
    session that may still see goes on. Runs last: it restores the module's config."""
    from pathlib import Path

    from server.access.digest import ha1
    from tests.support.mjpeg import fetch

    path = Path(rig.log_path).parent / "vigie.yaml"
    original = path.read_text()
    started = time.time()
    players = {name: subprocess.Popen(
        ["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", url(rig, target, user),
         "-t", "60", "-f", "null", "-"], stderr=subprocess.DEVNULL)
        for name, user, target in (("agent", "agent", "/cameras/cam1"), ("admin", "admin", "/cameras/syn"),
                                   ("stays", "agent", "/cameras/syn"))}
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len([s for s in _rtsp_sessions(rig) if s["frames_sent"]]) < 3:
            time.sleep(0.3)
        assert len(_rtsp_sessions(rig)) == 3
        sent_before = {(s["user"], s["path"].rsplit("/", 1)[1]): s["bytes_sent"] for s in _rtsp_sessions(rig)
                       if s["user"] == "admin" or s["path"] == "/cameras/cam1"}
        new_password = "changed-stream-Pw"
        digest = f'{{md5: {ha1("MD5", "admin", new_password)}, sha256: {ha1("SHA-256", "admin", new_password)}}}'
        changed = (original.replace("{id: cam1, name: One, commune: nord", "{id: cam1, name: One, commune: sud")
                   .replace("stream_password_env: ADMIN_STREAM", f"stream_digest: {digest}"))
        assert changed.count("commune: sud") == original.count("commune: sud") + 1
        path.write_text(changed)
        assert fetch("POST", rig.base_url + "/api/admin/reload", b"", rig.headers)[0] == 200
        for name in ("agent", "admin"):
            players[name].wait(15)  # the server ended its connection
        time.sleep(1)
        assert players["stays"].poll() is None
        assert [s["path"] for s in _rtsp_sessions(rig)] == ["/cameras/syn"]
        rows = rig.get_json("/api/audit?kind=view&limit=50")
        reasons: dict[tuple[str, str], str] = {}
        for row in rows:  # newest first: the views this test opened, not earlier tests'
            if str(row["output"]).startswith("rtsp") and row["end"] is not None:
                reasons.setdefault((row["user"], row["target"]), row["close_reason"])
        assert reasons[("agent", "cam1")] == "no longer allowed"
        assert reasons[("admin", "syn")] == "session ended"
        journaled = {(row["user"], row["target"]): row["bytes_sent"] for row in rows
                     if str(row["output"]).startswith("rtsp") and row["end"] and row["time"] >= started}
        assert all(journaled[key] >= before > 0 for key, before in sent_before.items()), (journaled, sent_before)
    finally:
        for player in players.values():
            player.kill()
            player.wait()
        path.write_text(original)
        fetch("POST", rig.base_url + "/api/admin/reload", b"", rig.headers)
