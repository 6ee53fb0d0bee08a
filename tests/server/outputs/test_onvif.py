"""The ONVIF facade with onvif-zeep-async (the ONVIF client of Home Assistant and Frigate):
profiles, stream URIs that FFmpeg plays, snapshots by HTTP Digest, scope, WS-Security
refusals (wrong digest, replayed nonce, old Created), faults instead of errors for bad
input, and WS-Discovery by unicast on the loopback (never the multicast group)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import uuid

import aiohttp
import onvif
import pytest
import zeep
from hypothesis import given, settings
from hypothesis import strategies as st

from server.cli import free_tcp_port, free_udp_pair
from tests.conftest import missing_component, password_hash, start_vigie, users_yaml

PASSWORDS = {"ADMIN_STREAM": "admin-onvif-Pw", "AGENT_STREAM": "agent-onvif-Pw"}
WSDL = os.path.join(os.path.dirname(onvif.__file__), "wsdl")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if shutil.which("ffprobe") is None:
        missing_component("ffprobe is not installed")
    rtsp_port, udp, discovery = free_tcp_port("127.0.0.1"), free_udp_pair("127.0.0.1"), free_udp_pair("127.0.0.1")
    users = users_yaml().replace("role: admin,", "role: admin, stream_password_env: ADMIN_STREAM,")
    users += (f'  - {{name: agent, role: police, communes: [nord], password_hash: "{password_hash("agent-Pw")}", '
              "stream_password_env: AGENT_STREAM}\n")
    config = f"""server: {{listen: "127.0.0.1:{{port}}"}}
rtsp: {{listen: "127.0.0.1:{rtsp_port}", udp_ports: "{udp}-{udp + 1}"}}
onvif: {{discovery: true, discovery_port: {discovery}, announce_to: "127.0.0.1:{discovery + 1}"}}
communes: [{{id: nord, name: Nord}}, {{id: sud, name: Sud}}]
cameras:
  - {{id: north-cam, name: "Place <Nord> & co", commune: nord, url: "synthetic://n?width=320&height=180&fps=10&tag=1"}}
  - {{id: south-cam, name: Sud, commune: sud, url: "synthetic://s?width=320&height=180&fps=10&tag=2"}}
walls:
  - {{id: both, name: Both, size: 640x180, fps: 10, layout: 2x1, cameras: [north-cam, south-cam]}}
""" + users
    # Hello goes to announce_to: a socket there before the server starts hears it.
    announcements = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    announcements.bind(("127.0.0.1", discovery + 1))
    announcements.settimeout(10)
    vigie = start_vigie(config, tmp_path_factory.mktemp("onvif"), env=PASSWORDS)
    vigie.port = int(vigie.base_url.rsplit(":", 1)[1])
    vigie.rtsp_port, vigie.discovery = rtsp_port, discovery
    vigie.hello = announcements.recv(65536)
    yield vigie
    vigie.terminate()
    bye = announcements.recv(65536)
    announcements.close()
    assert b"/Bye</" in bye and b"Bye>" in bye


async def camera_for(server, user: str = "admin", password: str | None = None):
    password = password or PASSWORDS[f"{user.upper()}_STREAM"]
    camera = onvif.ONVIFCamera("127.0.0.1", server.port, user, password, WSDL)
    try:
        await camera.update_xaddrs()
    except BaseException:
        await camera.close()
        raise
    return camera


async def test_profiles_stream_uris_that_play_and_snapshots(server) -> None:
    camera = await camera_for(server)
    try:
        device = await camera.create_devicemgmt_service()
        info = await device.GetDeviceInformation()
        assert info.Manufacturer == "Vigie"
        assert (await device.GetHostname()).Name == socket.gethostname()
        assert len(await device.GetScopes()) >= 1 and len(await device.GetNetworkInterfaces()) == 1
        media = await camera.create_media_service()
        profiles = await media.GetProfiles()
        tokens = [profile.token for profile in profiles]
        assert tokens == ["c.north-cam", "c.south-cam", "w.both", "w.commune-nord", "w.commune-sud"]
        assert profiles[0].Name == "Place <Nord> & co"  # escaped on the way out, whole on the way in
        assert profiles[2].VideoEncoderConfiguration.Resolution.Width == 640
        assert len(await media.GetVideoSources()) == 5 and len(await media.GetVideoEncoderConfigurations()) == 5
        assert (await media.GetProfile({"ProfileToken": "w.both"})).token == "w.both"
        setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
        uri = (await media.GetStreamUri({"StreamSetup": setup, "ProfileToken": "c.north-cam"})).Uri
        assert uri == f"rtsp://127.0.0.1:{server.rtsp_port}/cameras/north-cam"
        secret = urllib.parse.quote(PASSWORDS["ADMIN_STREAM"])
        played = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
                                 uri.replace("rtsp://", f"rtsp://admin:{secret}@")],
                                capture_output=True, text=True, timeout=60)
        assert played.stdout.strip() == "h264", played.stderr
        snapshot = await camera.get_snapshot("w.both")  # HTTP Digest with the stream password
        assert snapshot[:2] == b"\xff\xd8"
    finally:
        await camera.close()
    rows = server.get_json("/api/audit?kind=snapshot&limit=20")
    assert any(row["user"] == "admin" and row["target"] == "wall:both" for row in rows)


async def test_a_police_officer_sees_exactly_their_profiles(server) -> None:
    camera = await camera_for(server, "agent")
    try:
        media = await camera.create_media_service()
        assert [profile.token for profile in await media.GetProfiles()] == ["c.north-cam", "w.commune-nord"]
        setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
        answers = []
        for token in ("c.south-cam", "c.no-such-camera"):  # foreign and unknown answer alike
            with pytest.raises(Exception) as refused:
                await media.GetStreamUri({"StreamSetup": setup, "ProfileToken": token})
            answers.append(str(refused.value))
        assert answers[0] == answers[1] and "does not exist" in answers[0]
    finally:
        await camera.close()


def _token_header(user: str, password: str, nonce: bytes, created: str) -> str:
    digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()
    return ('<env:Header><wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" '
            'xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">'
            f"<wsse:UsernameToken><wsse:Username>{user}</wsse:Username>"
            '<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">'
            f"{digest}</wsse:Password><wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
            f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security></env:Header>")


def _envelope(body: str, header: str = "") -> bytes:
    return ('<?xml version="1.0"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
            f"{header}<env:Body>{body}</env:Body></env:Envelope>").encode()


async def _post(server, path: str, body: bytes) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.base_url}{path}", data=body,
                                headers={"Content-Type": "application/soap+xml"}) as response:
            return response.status, await response.text()


@pytest.mark.parametrize("body, status, subcode", [
    (b"<not xml", 400, "ter:WellFormed"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', 400, "ter:WellFormed"),
    (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
     b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]><l>&d;</l>',
     400, "ter:WellFormed"),
    (_envelope("<tds:GetUsers/>"), 400, "ter:ActionNotSupported"),
    (_envelope("<tds:SystemReboot/>"), 400, "ter:ActionNotSupported"),
    (b"<a>" + b"x" * 70_000 + b"</a>", 413, "ter:InvalidArgVal"),
])
async def test_bad_input_gets_a_soap_fault_never_an_error(server, body, status, subcode) -> None:
    answer_status, text = await _post(server, "/onvif/device_service", body)
    assert (answer_status, subcode in text) == (status, True), text[:300]
    assert "root:" not in text and "Traceback" not in text


def test_ws_discovery_answers_probes_and_says_hello(server) -> None:
    assert b"/Hello</" in server.hello and b"/onvif/device_service" in server.hello
    message_id = f"urn:uuid:{uuid.uuid4()}"
    probe = (f'<?xml version="1.0"?><e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" '
             'xmlns:w="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
             'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
             'xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><e:Header>'
             f"<w:MessageID>{message_id}</w:MessageID>"
             "<w:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>"
             "<w:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</w:Action></e:Header>"
             "<e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body></e:Envelope>")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        client.sendto(probe.encode(), ("127.0.0.1", server.discovery))
        answer, _ = client.recvfrom(65536)
        client.sendto(b"<not a probe", ("127.0.0.1", server.discovery))
        client.sendto(probe.replace("dn:NetworkVideoTransmitter", "dn:Printer").encode(),
                      ("127.0.0.1", server.discovery))
        client.settimeout(1)
        with pytest.raises(socket.timeout):
            client.recvfrom(65536)  # neither garbage nor a probe for printers is answered
    text = answer.decode()
    assert "ProbeMatches" in text and f"<wsa:RelatesTo>{message_id}</wsa:RelatesTo>" in text
    assert f"http://127.0.0.1:{server.port}/onvif/device_service" in text


def test_discovery_is_off_by_default(vigie) -> None:
    port = free_udp_pair("127.0.0.1")
    vigie('server: {listen: "127.0.0.1:{port}"}\ncommunes: [{id: a, name: A}]\n'
          f"onvif: {{discovery_port: {port}}}\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))  # free: nobody listens for probes


async def test_snapshots_take_digest_only_with_a_stream_credential(server) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.base_url}/cameras/north-cam/snapshot.jpg") as refused:
            assert refused.status == 401
            challenges = refused.headers.getall("WWW-Authenticate")
            assert any("SHA-256" in c for c in challenges) and any("MD5" in c for c in challenges)
        async with session.get(f"{server.base_url}/api/cameras") as api:
            assert api.status == 401 and "WWW-Authenticate" not in api.headers  # no browser prompt
        digest = aiohttp.DigestAuthMiddleware("agent", PASSWORDS["AGENT_STREAM"])
        async with session.get(f"{server.base_url}/cameras/north-cam/snapshot.jpg", middlewares=(digest,)) as own:
            assert own.status == 200 and (await own.read())[:2] == b"\xff\xd8"
        async with session.get(f"{server.base_url}/cameras/south-cam/snapshot.jpg", middlewares=(digest,)) as foreign:
            assert foreign.status == 404
        async with session.get(f"{server.base_url}/api/cameras", middlewares=(digest,)) as api:
            assert api.status == 401  # a stream credential opens snapshots, not the API


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda action, junk: _envelope(f"<tds:{action}>{junk}</tds:{action}>"),
              st.sampled_from(["GetProfiles", "GetStreamUri", "GetSystemDateAndTime", "X"]),
              st.text(max_size=200)),
    st.builds(lambda header: _envelope("<trt:GetProfiles/>", header), st.text(max_size=500)),
))
def test_the_soap_reader_takes_any_bytes(data: bytes) -> None:
    """Fuzzed bodies: a request or a Fault, nothing else, whatever arrives."""
    from server.outputs.onvif.soap import Fault, parse

    try:
        request = parse(data)
    except Fault as fault:
        assert fault.status in (400, 413)
    else:
        assert request.action


async def test_a_10_mb_body_is_refused_quickly_and_the_server_goes_on(server) -> None:
    started = time.monotonic()
    status, text = await _post(server, "/onvif/device_service", b"<a>" + b"x" * 10_000_000 + b"</a>")
    assert status == 413 and "ter:InvalidArgVal" in text
    assert time.monotonic() - started < 15
    status, text = await _post(server, "/onvif/device_service", _envelope("<tds:GetSystemDateAndTime/>"))
    assert status == 200 and "UTCDateTime" in text


async def test_ws_security_refuses_wrong_digests_replays_and_old_tokens(server) -> None:
    """Last in the module: its failures hold the loopback address in the login throttle."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    nonce = os.urandom(16)
    good = _envelope("<trt:GetProfiles/>", _token_header("admin", PASSWORDS["ADMIN_STREAM"], nonce, now))
    status, text = await _post(server, "/onvif/media_service", good)
    assert status == 200 and "c.north-cam" in text
    status, text = await _post(server, "/onvif/media_service", good)  # the same nonce again
    assert status == 400 and "NotAuthorized" in text and "c.north-cam" not in text
    old = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for header in (_token_header("admin", "wrong-password", os.urandom(16), now),
                   _token_header("admin", PASSWORDS["ADMIN_STREAM"], os.urandom(16), old),
                   _token_header("nobody", "whatever-pw", os.urandom(16), now), ""):
        status, text = await _post(server, "/onvif/media_service", _envelope("<trt:GetProfiles/>", header))
        assert status == 400 and "ter:NotAuthorized" in text
    # The clock a client adjusts to is public, as the standard requires.
    status, text = await _post(server, "/onvif/device_service", _envelope("<tds:GetSystemDateAndTime/>"))
    assert status == 200 and f"<tt:Year>{datetime.datetime.now(datetime.UTC).year}</tt:Year>" in text
    with pytest.raises((onvif.exceptions.ONVIFError, zeep.exceptions.Fault)):
        await camera_for(server, "admin", "wrong-password")
    failures = [row for row in server.get_json("/api/audit?kind=login_failed&limit=50")
                if row["detail"].get("output") == "onvif"]
    assert {row["detail"]["reason"] for row in failures} >= {"wrong password", "nonce already used",
                                                            "created time too far from the server's clock"}
    assert PASSWORDS["ADMIN_STREAM"] not in server.log()
