"""The answers of the ONVIF device and media services (Profile S), as XML text.

Every value that comes from the config or the request (names, ids, host names) is escaped.
Element order follows the ONVIF schema (onvif.xsd, devicemgmt.wsdl, media.wsdl): clients
such as zeep read by it.
"""

from __future__ import annotations

import datetime
import socket
from importlib.metadata import PackageNotFoundError, version
from xml.sax.saxutils import escape, quoteattr

from server.outputs.onvif.profiles import Profile

DEVICE_NS = "http://www.onvif.org/ver10/device/wsdl"
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"


def _version() -> str:
    try:
        return version("vigie")
    except PackageNotFoundError:
        return "0"


def system_date_and_time(now: datetime.datetime) -> str:
    return ("<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
            "<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone><tt:UTCDateTime>"
            f"<tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute>"
            f"<tt:Second>{now.second}</tt:Second></tt:Time>"
            f"<tt:Date><tt:Year>{now.year}</tt:Year><tt:Month>{now.month}</tt:Month>"
            f"<tt:Day>{now.day}</tt:Day></tt:Date>"
            "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>")


def device_information() -> str:
    return ("<tds:GetDeviceInformationResponse><tds:Manufacturer>Vigie</tds:Manufacturer>"
            "<tds:Model>Vigie stream aggregation server</tds:Model>"
            f"<tds:FirmwareVersion>{escape(_version())}</tds:FirmwareVersion>"
            f"<tds:SerialNumber>{escape(socket.gethostname())}</tds:SerialNumber>"
            "<tds:HardwareId>vigie</tds:HardwareId></tds:GetDeviceInformationResponse>")


def capabilities(base: str) -> str:
    return ("<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{escape(base)}/onvif/device_service</tt:XAddr></tt:Device>"
            f"<tt:Media><tt:XAddr>{escape(base)}/onvif/media_service</tt:XAddr>"
            "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
            "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
            "</tt:StreamingCapabilities></tt:Media>"
            "</tds:Capabilities></tds:GetCapabilitiesResponse>")


def services(base: str) -> str:
    items = "".join(
        f"<tds:Service><tds:Namespace>{namespace}</tds:Namespace>"
        f"<tds:XAddr>{escape(base)}/onvif/{path}</tds:XAddr>"
        "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>"
        for namespace, path in ((DEVICE_NS, "device_service"), (MEDIA_NS, "media_service")))
    return f"<tds:GetServicesResponse>{items}</tds:GetServicesResponse>"


def scopes() -> str:
    items = "".join(
        f"<tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef><tt:ScopeItem>{item}</tt:ScopeItem></tds:Scopes>"
        for item in ("onvif://www.onvif.org/Profile/Streaming", "onvif://www.onvif.org/type/video_encoder",
                     "onvif://www.onvif.org/name/Vigie", "onvif://www.onvif.org/hardware/vigie"))
    return f"<tds:GetScopesResponse>{items}</tds:GetScopesResponse>"


def hostname() -> str:
    return ("<tds:GetHostnameResponse><tds:HostnameInformation><tt:FromDHCP>false</tt:FromDHCP>"
            f"<tt:Name>{escape(socket.gethostname())}</tt:Name>"
            "</tds:HostnameInformation></tds:GetHostnameResponse>")


def network_interfaces(address: str) -> str:
    """The interface the caller reached us on, as far as it can be told: its address."""
    return ('<tds:GetNetworkInterfacesResponse><tds:NetworkInterfaces token="eth0">'
            "<tt:Enabled>true</tt:Enabled><tt:Info><tt:Name>eth0</tt:Name>"
            "<tt:HwAddress>00:00:00:00:00:00</tt:HwAddress><tt:MTU>1500</tt:MTU></tt:Info>"
            "<tt:IPv4><tt:Enabled>true</tt:Enabled><tt:Config><tt:Manual>"
            f"<tt:Address>{escape(address)}</tt:Address><tt:PrefixLength>24</tt:PrefixLength>"
            "</tt:Manual><tt:DHCP>false</tt:DHCP></tt:Config></tt:IPv4>"
            "</tds:NetworkInterfaces></tds:GetNetworkInterfacesResponse>")


# -- media ----------------------------------------------------------------------------------

def _source(profile: Profile) -> str:
    return (f"<tt:Name>{escape(profile.name)}</tt:Name><tt:UseCount>1</tt:UseCount>"
            f"<tt:SourceToken>vs.{escape(profile.token)}</tt:SourceToken>"
            f'<tt:Bounds x="0" y="0" width="{profile.width}" height="{profile.height}"/>')


def _encoder(profile: Profile) -> str:
    h264 = ("<tt:H264><tt:GovLength>15</tt:GovLength><tt:H264Profile>Baseline</tt:H264Profile></tt:H264>"
            if profile.encoding == "H264" else "")
    return (f"<tt:Name>{escape(profile.name)}</tt:Name><tt:UseCount>1</tt:UseCount>"
            f"<tt:Encoding>{profile.encoding}</tt:Encoding>"
            f"<tt:Resolution><tt:Width>{profile.width}</tt:Width><tt:Height>{profile.height}</tt:Height></tt:Resolution>"
            "<tt:Quality>5</tt:Quality>"
            f"<tt:RateControl><tt:FrameRateLimit>{round(profile.fps)}</tt:FrameRateLimit>"
            "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>4096</tt:BitrateLimit></tt:RateControl>"
            f"{h264}<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address>"
            "</tt:Address><tt:Port>0</tt:Port><tt:TTL>0</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
            "<tt:SessionTimeout>PT60S</tt:SessionTimeout>")


def _profile(profile: Profile, element: str) -> str:
    token = quoteattr(profile.token)
    return (f"<{element} token={token} fixed=\"true\"><tt:Name>{escape(profile.name)}</tt:Name>"
            f"<tt:VideoSourceConfiguration token={quoteattr('vsc.' + profile.token)}>{_source(profile)}"
            "</tt:VideoSourceConfiguration>"
            f"<tt:VideoEncoderConfiguration token={quoteattr('vec.' + profile.token)}>{_encoder(profile)}"
            f"</tt:VideoEncoderConfiguration></{element}>")


def get_profiles(found: list[Profile]) -> str:
    return f"<trt:GetProfilesResponse>{''.join(_profile(p, 'trt:Profiles') for p in found)}</trt:GetProfilesResponse>"


def get_profile(found: Profile) -> str:
    return f"<trt:GetProfileResponse>{_profile(found, 'trt:Profile')}</trt:GetProfileResponse>"


def video_sources(found: list[Profile]) -> str:
    items = "".join(
        f"<trt:VideoSources token={quoteattr('vs.' + p.token)}><tt:Framerate>{p.fps:g}</tt:Framerate>"
        f"<tt:Resolution><tt:Width>{p.width}</tt:Width><tt:Height>{p.height}</tt:Height></tt:Resolution>"
        "</trt:VideoSources>" for p in found)
    return f"<trt:GetVideoSourcesResponse>{items}</trt:GetVideoSourcesResponse>"


def encoder_configurations(found: list[Profile]) -> str:
    items = "".join(f"<trt:Configurations token={quoteattr('vec.' + p.token)}>{_encoder(p)}</trt:Configurations>"
                    for p in found)
    return f"<trt:GetVideoEncoderConfigurationsResponse>{items}</trt:GetVideoEncoderConfigurationsResponse>"


def media_uri(action: str, uri: str) -> str:
    return (f"<trt:{action}Response><trt:MediaUri><tt:Uri>{escape(uri)}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
            "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout>"
            f"</trt:MediaUri></trt:{action}Response>")
