"""GET /api/cluster (admins): the nodes (name, web and RTSP addresses, up since, cameras
pulled, viewers) and each camera's owner, as this node sees them."""

from __future__ import annotations

from aiohttp import web

from server.access.auth import principal_of
from server.access.scope import can_administer
from server.keys import CLUSTER

routes = web.RouteTableDef()


@routes.get("/api/cluster")
async def api_cluster(request: web.Request) -> web.Response:
    if not can_administer(principal_of(request)):
        raise web.HTTPForbidden(text="the cluster's state is for admins")
    cluster = request.app.get(CLUSTER)
    if cluster is None:
        return web.json_response({"node": None, "nodes": [], "cameras": {}})
    return web.json_response(cluster.status())
