"""GET /api/cluster (admins): the nodes (name, web and RTSP addresses, up since, cameras
pulled, viewers) and each camera's owner, as this node sees them."""

from __future__ import annotations

import json

from aiohttp import web

from server.access.auth import principal_of
from server.cluster.node import ClusterNode
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
    return web.json_response(cluster_json(cluster))


def cluster_json(node: ClusterNode) -> dict:
    """Live nodes (as their heartbeats say), each camera's owner, relay counters."""
    nodes = []
    for name in node.live_nodes():
        try:
            nodes.append(node.heartbeat() if name == node.name else json.loads(node.nodes[name].value))
        except (KeyError, ValueError):
            nodes.append({"node": name})
    config = node.runtime.config.fingerprint()
    return {"node": node.name, "nats_connected": node.connected, "nodes": nodes, "config": config,
            # Nodes running another config than this one (a reload that failed there, a
            # file not copied to every node).
            "config_differs": sorted(entry["node"] for entry in nodes
                                     if entry.get("config", config) != config and "node" in entry),
            "dropped_messages": node.relay.dropped_messages, "units_too_big": node.relay.units_too_big,
            "relay": {"received": dict(node.relay.feeds.received), "sent": dict(node.relay.published)},
            "journal": None if node.journal is None else {
                "published": node.journal.published, "applied": node.journal.applied,
                "dropped_messages": node.journal.dropped},
            "cameras": {camera.id: node.owner(camera.id) for camera in node.runtime.config.cameras}}
