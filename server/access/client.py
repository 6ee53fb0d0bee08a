"""Who sent a request: its peer's address, or behind a trusted load balancer the address it
forwards. The journal, the login throttle and the view limits all count by it."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from server.keys import CONFIG


def client_address(request: web.Request) -> str:
    """Who sent the request: its peer, or behind a trusted load balancer (server.
    trusted_proxies) the nearest forwarded address that is not a trusted proxy itself."""
    remote = request.remote or "-"
    server = request.app[CONFIG].server
    if not server.trusted_proxies:
        return remote
    try:
        if not server.trusted(ipaddress.ip_address(remote)):
            return remote
        hops = [hop.strip() for value in request.headers.getall("X-Forwarded-For", [])[-8:]
                for hop in value[:2048].split(",")][-32:]
        for hop in reversed(hops):
            address = ipaddress.ip_address(hop)
            if not server.trusted(address):
                return str(address)
    except ValueError:
        pass  # garbage: the peer's own address, never a made-up one
    return remote
