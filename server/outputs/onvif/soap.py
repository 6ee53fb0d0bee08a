"""SOAP 1.2 for the ONVIF facade: requests read safely, answers and faults written, and
WS-Security UsernameToken (PasswordDigest) checked against a user's stream credential.

A request body is network input: bounded (MAX_BODY) before it is parsed, and parsed by
defusedxml with DTDs and entities refused (no XXE, no entity expansion). Nothing a client
sends is ever echoed into an answer unescaped.

PasswordDigest = Base64(SHA-1(nonce + created + password)) needs the password itself: it
is checked against a stream password given by `stream_password_env` or `_file`; a user
whose config holds only `stream_digest` (HA1 values) cannot use WS-Security.
"""

from __future__ import annotations

import base64
import collections
import datetime
import hashlib
import hmac
import time
from dataclasses import dataclass
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeXml
from defusedxml import DefusedXmlException

MAX_BODY = 64 * 1024
CREATED_SKEW = 300.0  # seconds a Created time may be off ours
NONCE_MEMORY = 100_000  # nonces remembered (a replay within the skew window is refused)

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_DIGEST = ("http://docs.oasis-open.org/wss/2004/01/"
                   "oasis-200401-wss-username-token-profile-1.0#PasswordDigest")
NAMESPACES = {
    "env": SOAP,
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "ter": "http://www.onvif.org/ver10/error",
}


class Fault(Exception):
    """Answer a SOAP fault: `code` (env:Sender or env:Receiver), an ONVIF subcode, a reason."""

    def __init__(self, subcode: str, reason: str, code: str = "env:Sender", status: int = 400) -> None:
        super().__init__(reason)
        self.code, self.subcode, self.reason, self.status = code, subcode, reason, status


@dataclass(frozen=True)
class SoapRequest:
    action: str            # the body's first element, local name (GetProfiles)
    namespace: str         # its namespace
    body: Element          # that element
    token: dict[str, str] | None  # the UsernameToken's fields, if any


def _local(tag: str) -> tuple[str, str]:
    namespace, _, name = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return namespace, name


def parse(data: bytes) -> SoapRequest:
    """A SOAP envelope's operation and security header; Fault for anything malformed."""
    if len(data) > MAX_BODY:
        raise Fault("ter:InvalidArgVal", "request body over 64 kB")
    try:
        root = SafeXml.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (SafeXml.ParseError, DefusedXmlException, ValueError):
        raise Fault("ter:WellFormed", "malformed XML, or XML with a DTD or entities") from None
    if root.tag != f"{{{SOAP}}}Envelope":
        raise Fault("ter:WellFormed", "not a SOAP 1.2 envelope")
    body = root.find(f"{{{SOAP}}}Body")
    if body is None or len(body) == 0:
        raise Fault("ter:WellFormed", "no operation in the SOAP body")
    operation = body[0]
    namespace, action = _local(operation.tag)
    token = None
    found = root.find(f"{{{SOAP}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
    if found is not None:
        token = {}
        for child in found:
            _, name = _local(child.tag)
            token[name] = (child.text or "").strip()[:512]
            if name == "Password":
                token["PasswordType"] = child.get("Type", "")
    return SoapRequest(action, namespace, operation, token)


def text_of(element: Element, name: str) -> str | None:
    """The text of the first descendant with this local name (any namespace)."""
    for child in element.iter():
        if _local(child.tag)[1] == name:
            return (child.text or "").strip()
    return None


def envelope(body: str) -> bytes:
    namespaces = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NAMESPACES.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope {namespaces}>'
            f"<env:Body>{body}</env:Body></env:Envelope>").encode()


def fault_body(fault: Fault) -> bytes:
    return envelope(
        f"<env:Fault><env:Code><env:Value>{fault.code}</env:Value>"
        f"<env:Subcode><env:Value>{fault.subcode}</env:Value></env:Subcode></env:Code>"
        f'<env:Reason><env:Text xml:lang="en">{escape(fault.reason)}</env:Text></env:Reason>'
        f"</env:Fault>")


class NonceMemory:
    """Nonces seen within the Created window: a UsernameToken is good once."""

    def __init__(self, size: int = NONCE_MEMORY) -> None:
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._size = size

    def first_time(self, nonce: str, now: float) -> bool:
        while self._seen and (next(iter(self._seen.values())) < now - 2 * CREATED_SKEW
                              or len(self._seen) >= self._size):
            self._seen.popitem(last=False)
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        return True


def check_token(token: dict[str, str], password: str, nonces: NonceMemory,
                now: float | None = None) -> str | None:
    """Why this UsernameToken is refused, or None if it proves `password`."""
    now = time.time() if now is None else now
    if token.get("PasswordType") != PASSWORD_DIGEST:
        return "only PasswordDigest is accepted"
    try:
        nonce = base64.b64decode(token.get("Nonce", ""), validate=True)
        created_text = token.get("Created", "")
        created = datetime.datetime.fromisoformat(created_text.replace("Z", "+00:00"))
    except ValueError:
        return "malformed token"
    if created.tzinfo is None:
        created = created.replace(tzinfo=datetime.UTC)
    if not nonce or abs(created.timestamp() - now) > CREATED_SKEW:
        return "created time too far from the server's clock"
    expected = base64.b64encode(hashlib.sha1(nonce + created_text.encode() + password.encode()).digest())
    if not hmac.compare_digest(expected, token.get("Password", "").encode()):
        return "wrong password"
    if not nonces.first_time(token["Nonce"], now):  # after the digest: a forger fills nothing
        return "nonce already used"
    return None
