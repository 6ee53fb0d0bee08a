"""WS-Discovery (2005/04, as ONVIF uses it) on UDP: answers Probe messages with Vigie's
ONVIF device address, and announces it with Hello when starting and Bye when stopping.
Off by default (`onvif.discovery`).

A datagram is hostile input: parsed by defusedxml (no DTD, no entity), and answered at most
ANSWERS_PER_SECOND times a second in all, so a forged source address cannot turn Vigie
into a traffic amplifier. Answers go to the prober's own address only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
import uuid
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeXml
from aiohttp import web
from defusedxml import DefusedXmlException

from server.keys import CONFIG

logger = logging.getLogger(__name__)

MULTICAST_GROUP = "239.255.255.250"
ANSWERS_PER_SECOND = 20
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
SOAP = "http://www.w3.org/2003/05/soap-envelope"
TYPES = "dn:NetworkVideoTransmitter tds:Device"
SCOPES = ("onvif://www.onvif.org/Profile/Streaming onvif://www.onvif.org/type/video_encoder "
          "onvif://www.onvif.org/name/Vigie onvif://www.onvif.org/hardware/vigie")


def _message(action: str, body: str, relates_to: str | None = None) -> bytes:
    relates = f"<wsa:RelatesTo>{escape(relates_to)}</wsa:RelatesTo>" if relates_to else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope xmlns:env="{SOAP}" '
            f'xmlns:wsa="{WSA}" xmlns:wsd="{WSD}" xmlns:dn="http://www.onvif.org/ver10/network/wsdl" '
            'xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><env:Header>'
            f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>{relates}"
            "<wsa:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To>"
            f"<wsa:Action>{WSD}/{action}</wsa:Action></env:Header>"
            f"<env:Body>{body}</env:Body></env:Envelope>").encode()


def _endpoint(address: str) -> str:
    return f"<wsa:EndpointReference><wsa:Address>{address}</wsa:Address></wsa:EndpointReference>"


def parse_probe(data: bytes) -> str | None:
    """The MessageID of a Probe for an ONVIF device (or for anything), else None."""
    try:
        root = SafeXml.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (SafeXml.ParseError, DefusedXmlException, ValueError):
        return None
    probe = root.find(f"{{{SOAP}}}Body/{{{WSD}}}Probe")
    if probe is None:
        return None
    types = (probe.findtext(f"{{{WSD}}}Types") or "").strip()
    wanted = {name.rsplit(":", 1)[-1] for name in types.split()}
    if wanted and not wanted & {"NetworkVideoTransmitter", "Device"}:
        return None
    message_id = (root.findtext(f"{{{SOAP}}}Header/{{{WSA}}}MessageID") or "").strip()
    return message_id[:200] or None


class Discovery(asyncio.DatagramProtocol):
    def __init__(self, endpoint: str, web_port: int) -> None:
        self.endpoint = endpoint  # urn:uuid:..., the same for this server's whole life
        self.web_port = web_port
        self.transport: asyncio.DatagramTransport | None = None
        self._window = (0.0, 0)  # (second, answers in it)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def xaddr(self, peer: str) -> str:
        """Our device service as seen from `peer`: the address our packets to it leave from."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect((peer, 9))
                own = probe.getsockname()[0]
            except OSError:
                own = "127.0.0.1"
        return f"http://{own}:{self.web_port}/onvif/device_service"

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        message_id = parse_probe(data)
        if message_id is None or self.transport is None:
            return
        second = int(time.monotonic())
        start, count = self._window
        if start == second and count >= ANSWERS_PER_SECOND:
            return
        self._window = (second, count + 1 if start == second else 1)
        match = (f"<wsd:ProbeMatches><wsd:ProbeMatch>{_endpoint(self.endpoint)}"
                 f"<wsd:Types>{TYPES}</wsd:Types><wsd:Scopes>{SCOPES}</wsd:Scopes>"
                 f"<wsd:XAddrs>{self.xaddr(addr[0])}</wsd:XAddrs>"
                 "<wsd:MetadataVersion>1</wsd:MetadataVersion></wsd:ProbeMatch></wsd:ProbeMatches>")
        self.transport.sendto(_message("ProbeMatches", match, message_id), addr)

    def announcement(self, kind: str, peer: str) -> bytes:
        if kind == "Hello":
            body = (f"<wsd:Hello>{_endpoint(self.endpoint)}<wsd:Types>{TYPES}</wsd:Types>"
                    f"<wsd:Scopes>{SCOPES}</wsd:Scopes><wsd:XAddrs>{self.xaddr(peer)}</wsd:XAddrs>"
                    "<wsd:MetadataVersion>1</wsd:MetadataVersion></wsd:Hello>")
        else:
            body = f"<wsd:Bye>{_endpoint(self.endpoint)}</wsd:Bye>"
        return _message(kind, body)


async def discovery_ctx(app: web.Application):
    """WS-Discovery for the app's lifetime, if `onvif.discovery` is on."""
    config = app[CONFIG]
    settings = config.onvif
    if not settings.discovery:
        yield
        return
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", settings.discovery_port))
    try:  # probes to the standard's group; a host without multicast still gets unicast ones
        membership = struct.pack("4s4s", socket.inet_aton(MULTICAST_GROUP), socket.inet_aton("0.0.0.0"))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    except OSError as error:
        logger.warning("WS-Discovery: cannot join %s (%s): unicast probes only", MULTICAST_GROUP, error)
    endpoint = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'vigie:' + socket.gethostname() + ':' + str(config.server.port))}"
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: Discovery(endpoint, config.server.port), sock=sock)
    host, port = settings.announce_to.rsplit(":", 1)
    target = (host.strip("[]"), int(port))
    transport.sendto(protocol.announcement("Hello", target[0]), target)
    logger.info("WS-Discovery on UDP %d (Hello sent to %s)", settings.discovery_port, settings.announce_to)
    yield
    try:
        transport.sendto(protocol.announcement("Bye", target[0]), target)
        await asyncio.sleep(0.05)  # let the datagram leave before the socket closes
    finally:
        transport.close()
