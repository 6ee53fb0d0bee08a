"""The SDP a DESCRIBE answers (RFC 8866, RFC 6184 and RFC 7798 payload formats): one video
track, H.264 or H.265, its parameter sets out of band (they also go in band before every
keyframe), its frame rate and its control URL. Never an audio track: public-space video
protection may not capture sound.
"""

from __future__ import annotations

import base64

from ingest.encode.annexb import parameter_sets_of

PAYLOAD_TYPE = 96
CLOCK_RATE = 90_000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def fmtp(codec: str, sets: dict[str, list[bytes]]) -> str:
    if codec == "H264":
        values = ["packetization-mode=1"]
        if sets["sps"] and len(sets["sps"][0]) >= 4:
            values.append("profile-level-id=" + sets["sps"][0][1:4].hex().upper())
        if sets["sps"] or sets["pps"]:
            values.append("sprop-parameter-sets=" + ",".join(_b64(s) for s in sets["sps"] + sets["pps"]))
        return "; ".join(values)
    return "; ".join(f"sprop-{kind}=" + ",".join(_b64(s) for s in sets[kind])
                     for kind in ("vps", "sps", "pps") if sets[kind])


def session_description(codec: str, parameter_sets: bytes, fps: float | None, control: str,
                        address: str = "0.0.0.0", port: int = 0, name: str = "Vigie") -> str:
    """The SDP of one stream. `control` is the track's URL (absolute, or relative to the
    request's); `address` and `port` matter only outside RTSP (an SDP file for RTP/UDP)."""
    encoding = "H264" if codec == "H264" else "H265"
    lines = ["v=0", f"o=- 0 0 IN IP4 {address}", f"s={name}", f"c=IN IP4 {address}", "t=0 0",
             f"m=video {port} RTP/AVP {PAYLOAD_TYPE}",
             f"a=rtpmap:{PAYLOAD_TYPE} {encoding}/{CLOCK_RATE}"]
    parameters = fmtp(codec, parameter_sets_of(codec, parameter_sets))
    if parameters:
        lines.append(f"a=fmtp:{PAYLOAD_TYPE} {parameters}")
    if fps:
        lines.append(f"a=framerate:{fps:g}")
    lines += [f"a=control:{control}", "a=sendonly"]
    return "\r\n".join(lines) + "\r\n"
