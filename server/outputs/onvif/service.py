"""The ONVIF device and media services on the web port: `POST /onvif/device_service` and
`POST /onvif/media_service`, SOAP 1.2.

Their own authentication path (no cookie, no Origin check): a WS-Security UsernameToken
with PasswordDigest, checked against the user's stream credential; only
GetSystemDateAndTime answers without it, as the standard requires. A failure goes through
the login throttle (per user and per address) and the journal. Anything not implemented is
a SOAP fault `ter:ActionNotSupported`, malformed XML a fault with 400: never a 500.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
from collections.abc import Callable

from aiohttp import web

from server.access.client import client_address
from server.access.scope import Principal, refusal
from server.audit import Client
from server.keys import AUTH, JOURNAL, ONVIF_NONCES, RTSP, RUNTIME
from server.outputs.onvif import answers
from server.outputs.onvif.profiles import Profile, profile, profiles
from server.outputs.onvif.soap import Fault, NonceMemory, SoapRequest, check_token, envelope, fault_body, parse, text_of

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")
CONTENT_TYPE = "application/soap+xml"
PUBLIC_ACTIONS = frozenset({"GetSystemDateAndTime"})
DEVICE_ACTIONS = frozenset({"GetSystemDateAndTime", "GetDeviceInformation", "GetCapabilities",
                            "GetServices", "GetScopes", "GetNetworkInterfaces", "GetHostname"})
MEDIA_ACTIONS = frozenset({"GetProfiles", "GetProfile", "GetStreamUri", "GetSnapshotUri",
                           "GetVideoSources", "GetVideoEncoderConfigurations"})


def _host(request: web.Request) -> str:
    """host[:port] the caller used to reach us (its own Host header: it only shapes the URLs
    it is answered), or our address if that header is unusable."""
    host = request.headers.get("Host", "")
    if _HOST.fullmatch(host):
        return host
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return f"{sockname[0]}:{sockname[1]}" if sockname else "127.0.0.1"


def _answer(body: str) -> web.Response:
    return web.Response(body=envelope(body), content_type=CONTENT_TYPE, charset="utf-8")


def _fault(fault: Fault) -> web.Response:
    return web.Response(body=fault_body(fault), status=fault.status, content_type=CONTENT_TYPE,
                        charset="utf-8")


async def _authenticate(request: web.Request, soap: SoapRequest) -> Principal:
    auth = request.app[AUTH]
    address = client_address(request)
    token = soap.token
    if token is None or not token.get("Username"):
        raise Fault("ter:NotAuthorized", "a WS-Security UsernameToken is required")
    user = token["Username"][:64]
    wait, attempt = await auth.async_reserve(user, address)
    if wait > 0:
        await _journal_failure(request, user, "throttled")
        raise Fault("ter:NotAuthorized", f"too many failed logins: retry in {int(wait) + 1} s")
    account = auth.directory.streams.get(user)
    problem = ("no stream password usable with WS-Security" if account is None or account.password is None
               else check_token(token, account.password, request.app[ONVIF_NONCES]))
    if problem is not None:
        await _journal_failure(request, user, problem)
        raise Fault("ter:NotAuthorized", "the security token could not be authenticated")
    auth.login_succeeded(user, address, attempt)
    reason = refusal(account.principal, "rtsp", address, time.time())
    if reason is not None:
        raise Fault("ter:NotAuthorized", reason)
    return account.principal


async def _journal_failure(request: web.Request, user: str, reason: str) -> None:
    known = user in request.app[AUTH].directory.streams
    client = Client(user=user if known else "(unknown user)", role="anonymous",
                    address=client_address(request), user_agent=request.headers.get("User-Agent", "")[:300])
    await request.app[JOURNAL].async_event("login_failed", client, detail={"output": "onvif", "reason": reason})


def _profile_of(request: web.Request, principal: Principal, soap: SoapRequest) -> Profile:
    token = text_of(soap.body, "ProfileToken") or ""
    found = profile(request.app[RUNTIME], principal, token)
    if found is None:  # unknown and out of scope alike
        raise Fault("ter:InvalidArgVal", "the requested profile token does not exist")
    return found


def _stream_uri(request: web.Request, found: Profile) -> str:
    server = request.app.get(RTSP)
    if server is None:
        raise Fault("ter:ActionNotSupported", "the RTSP server is turned off", code="env:Receiver")
    host = _host(request).rsplit(":", 1)[0] if not _host(request).endswith("]") else _host(request)
    scheme = "rtsps" if server.tls else "rtsp"
    return f"{scheme}://{host}:{server.port}{found.path}"


def _device(request: web.Request, soap: SoapRequest, principal: Principal | None) -> str:
    base = f"{request.scheme}://{_host(request)}"
    handlers: dict[str, Callable[[], str]] = {
        "GetSystemDateAndTime": lambda: answers.system_date_and_time(datetime.datetime.now(datetime.UTC)),
        "GetDeviceInformation": answers.device_information,
        "GetCapabilities": lambda: answers.capabilities(base),
        "GetServices": lambda: answers.services(base),
        "GetScopes": answers.scopes,
        "GetNetworkInterfaces": lambda: answers.network_interfaces(_host(request).rsplit(":", 1)[0]),
        "GetHostname": answers.hostname,
    }
    return handlers[soap.action]()


def _media(request: web.Request, soap: SoapRequest, principal: Principal) -> str:
    runtime = request.app[RUNTIME]
    action = soap.action
    if action == "GetProfiles":
        return answers.get_profiles(profiles(runtime, principal))
    if action == "GetProfile":
        return answers.get_profile(_profile_of(request, principal, soap))
    if action == "GetStreamUri":
        return answers.media_uri(action, _stream_uri(request, _profile_of(request, principal, soap)))
    if action == "GetSnapshotUri":
        found = _profile_of(request, principal, soap)
        return answers.media_uri(action, f"{request.scheme}://{_host(request)}{found.snapshot}")
    if action == "GetVideoSources":
        return answers.video_sources(profiles(runtime, principal))
    return answers.encoder_configurations(profiles(runtime, principal))


async def _serve(request: web.Request, actions: frozenset[str],
                 handle: Callable[[web.Request, SoapRequest, Principal], str]) -> web.Response:
    if (request.content_length or 0) > 64 * 1024:
        return _fault(Fault("ter:InvalidArgVal", "request body over 64 kB", status=413))
    try:
        soap = parse(await request.read())
        if soap.action not in actions:
            raise Fault("ter:ActionNotSupported", "this operation is not supported",
                        code="env:Receiver")
        principal = None if soap.action in PUBLIC_ACTIONS else await _authenticate(request, soap)
        return _answer(handle(request, soap, principal))  # type: ignore[arg-type]
    except Fault as fault:
        return _fault(fault)
    except web.HTTPException as refused:  # the body was too large for aiohttp
        return _fault(Fault("ter:InvalidArgVal", refused.reason or "refused", status=refused.status))


@routes.post("/onvif/device_service")
async def device_service(request: web.Request) -> web.Response:
    return await _serve(request, DEVICE_ACTIONS, _device)


@routes.post("/onvif/media_service")
async def media_service(request: web.Request) -> web.Response:
    return await _serve(request, MEDIA_ACTIONS, _media)


def setup_onvif(app: web.Application) -> None:
    app[ONVIF_NONCES] = NonceMemory()
    app.add_routes(routes)
