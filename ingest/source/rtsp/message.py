"""RTSP messages as a camera sends them, parsed in linear time with hard limits checked
before any byte is kept: status line and headers, Content-Length, SDP, authentication
challenges (and the Digest answer to them). Pure: no socket here (client.py reads)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ingest.digest import ha1, parse_fields, response
from ingest.source.base import SourceError
from ingest.source.rtsp.rtp import DEPACKETISERS

# What a camera may send in one RTSP message, checked before its bytes are kept: past
# these it is not a camera talking but a broken or hostile one, and the session ends with
# the reason. Real answers are far below (a header block of 200-600 bytes, a Digest
# challenge of 150-300, an SDP of 0.5-2 kB); gortsplib and go2rtc bound the same things.
MAX_HEAD = 16_384  # the status line and headers
MAX_LINE = 4_096  # one of those lines
MAX_BODY = 65_536  # a body, by its Content-Length (an SDP, a GET_PARAMETER answer)
MAX_SDP = MAX_BODY


class Unsupported(SourceError):
    """The camera is fine but this client does not handle its stream: use FFmpeg's."""


# Bad request, method not allowed, unsupported media type, parameter not understood,
# unsupported transport, option not supported.
_WORDING = {400, 405, 415, 451, 461, 551}
_STATUS_REASONS = {401: "authentication failed (401 Unauthorized)",
                   403: "access forbidden (403)", 404: "stream not found (404)"}


class TooLarge(SourceError):
    """The camera sent more than an RTSP message may hold: it is disconnected."""


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str, default: str = "") -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else default


@dataclass(frozen=True)
class Track:
    codec: str  # "H264" or "H265" (the SDP's encoding name)
    clock_rate: int
    control: str
    fmtp: dict[str, str]


_STATUS_LINE = re.compile(r"RTSP/\d\.\d[ \t]+(\d{3})[ \t]*(.*)")
# A request from the camera (RFC 2326 allows ANNOUNCE, GET_PARAMETER, SET_PARAMETER...).
_REQUEST_LINE = re.compile(rb"[A-Z_]{1,32} \S{1,4096} RTSP/\d\.\d")


def split_head(head: bytes) -> tuple[str, dict[str, list[str]]]:
    """An RTSP message's first line and its headers (names lowercased), from the bytes
    before the blank line that ends them. Linear in the size; TooLarge past MAX_HEAD or
    past MAX_LINE for one line."""
    if len(head) > MAX_HEAD:
        raise TooLarge(f"camera sent an RTSP header over {MAX_HEAD // 1024} kB")
    lines = head.decode("utf-8", "replace").split("\r\n")
    if max(map(len, lines)) > MAX_LINE:
        raise TooLarge(f"camera sent an RTSP header line over {MAX_LINE // 1024} kB")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return lines[0], headers


def parse_response(head: bytes) -> Response:
    """An RTSP answer's status line and headers (its body is read after, by length)."""
    first, headers = split_head(head)
    match = _STATUS_LINE.match(first)
    if not match:
        raise SourceError("not an RTSP camera (bad answer)")
    return Response(int(match.group(1)), match.group(2).strip(), headers)


def body_length(headers: dict[str, list[str]]) -> int:
    """The body's length by Content-Length; TooLarge past MAX_BODY, which is checked
    before any of the body is read."""
    values = headers.get("content-length")
    text = values[0] if values else ""
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()):
        raise SourceError("not an RTSP camera (bad Content-Length)")
    # Read no further than the limit: a camera may say 99999999999, or a 5,000-digit
    # number (int() of one is slow and refused past 4,300 digits).
    digits = text.lstrip("0") or "0"
    if len(digits) > 9 or int(digits) > MAX_BODY:
        raise TooLarge(f"camera announced an RTSP body of {digits[:12]} bytes, over the "
                       f"{MAX_BODY // 1024} kB limit")
    return int(digits)


def parse_sdp(sdp: str) -> tuple[Track | None, str | None, str]:
    """The first video track of an SDP, the codec it names if it is one we lack, and the
    session-level control URL (the aggregate one, for PLAY; often none)."""
    if len(sdp) > MAX_SDP:
        raise TooLarge(f"camera sent an SDP over {MAX_SDP // 1024} kB")
    in_video = False
    seen_media = False
    session_control = ""
    payload_types: list[str] = []
    rtpmap: dict[str, tuple[str, int]] = {}
    fmtp: dict[str, dict[str, str]] = {}
    control = ""
    for line in sdp.splitlines():
        line = line.strip()
        if line.startswith("a=control:") and not seen_media:
            session_control = line[10:].strip()
            continue
        if line.startswith("m="):
            seen_media = True
            if in_video:
                break  # only the first video track
            parts = line[2:].split()
            in_video = bool(parts) and parts[0] == "video"
            payload_types = parts[3:] if in_video else []
        elif not in_video:
            continue
        elif line.startswith("a=rtpmap:"):
            number, _, description = line[9:].partition(" ")
            name, _, rate = description.partition("/")
            clock = rate.split("/")[0].strip()
            # A clock of 0 (or of a thousand digits) is no clock: the entry is ignored.
            if clock.isascii() and clock.isdigit() and 0 < len(clock) <= 8 and int(clock):
                rtpmap[number] = (name.upper(), int(clock))
        elif line.startswith("a=fmtp:"):
            number, _, parameters = line[7:].partition(" ")
            values = {}
            for item in parameters.split(";"):
                key, _, value = item.strip().partition("=")
                if key:
                    values[key.strip().lower()] = value.strip()
            fmtp[number] = values
        elif line.startswith("a=control:"):
            control = line[10:].strip()
    if not payload_types:
        return None, None, session_control
    number = payload_types[0]
    name, rate = rtpmap.get(number, ("JPEG" if number == "26" else "", 90_000))
    if name not in DEPACKETISERS:
        # Cut: it goes to a log line and to the camera's status.
        return None, (name or f"payload type {number}")[:40], session_control
    if fmtp.get(number, {}).get("packetization-mode") == "2":
        # reordering by decoding order number: FFmpeg's job
        return None, f"{name} interleaved mode", session_control
    return Track(name, rate, control, fmtp.get(number, {})), None, session_control


def _digest(username: str, password: str, method: str, uri: str, challenge: dict[str, str],
            count: int) -> str:
    """The Authorization value answering a camera's Digest challenge (MD5, RFC 2617/7616)."""
    realm, nonce = challenge.get("realm", ""), challenge.get("nonce", "")
    user_ha1 = ha1("MD5", username, password, realm)
    fields = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    qop = challenge.get("qop", "")
    if "auth" in [q.strip() for q in qop.split(",")]:
        cnonce = os.urandom(8).hex()
        answer = response("MD5", user_ha1, method, uri, nonce, f"{count:08x}", cnonce, "auth")
        fields += ["qop=auth", f"nc={count:08x}", f'cnonce="{cnonce}"']
    else:
        answer = response("MD5", user_ha1, method, uri, nonce)
    fields.append(f'response="{answer}"')
    if "opaque" in challenge:
        fields.append(f'opaque="{challenge["opaque"]}"')
    if "algorithm" in challenge:
        fields.append(f"algorithm={challenge['algorithm']}")
    return "Digest " + ", ".join(fields)


def _choose_challenge(values: list[str]) -> tuple[str, dict[str, str]] | None:
    """Digest with MD5 (what cameras do; SHA-256 and -sess variants are not spoken
    here), else Basic."""
    challenges = [parse_fields(value) for value in values]
    for scheme, fields in challenges:
        if scheme == "digest" and fields.get("algorithm", "MD5").upper() == "MD5":
            return scheme, fields
    return next(((scheme, fields) for scheme, fields in challenges if scheme == "basic"), None)
