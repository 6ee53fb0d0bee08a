"""GET /metrics: Prometheus text, per camera (camera, commune labels) and per wall, for
admins and the metrics token."""

from __future__ import annotations


from aiohttp import web

from ingest.camera.health import CameraState, CameraStatus
from ingest.source.decoding import Decoding
from server.access.auth import principal_of
from server.access.scope import can_read_metrics
from server.api.cluster import cluster_json
from server.keys import CLUSTER, RTSP, RUNTIME
from server.runtime import Runtime

routes = web.RouteTableDef()


def _require(allowed: bool) -> None:
    if not allowed:
        raise web.HTTPForbidden(text="not allowed for your role")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(runtime: Runtime, rtsp: dict[str, tuple[int, int, int, int]] | None = None,
                   cluster: dict | None = None) -> str:
    """Prometheus text exposition, per camera (camera, commune labels) and per wall."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{{{labels}}} {value:g}" for labels, value in samples)

    cameras: list[tuple[str, CameraStatus]] = []
    for worker in runtime.workers.values():
        labels = f'camera="{_label(worker.camera.id)}",commune="{_label(worker.camera.commune_id)}"'
        cameras.append((labels, worker.status()))
    family("vigie_camera_up", "gauge", "1 if the camera is live.",
           [(labels, float(status.state == CameraState.LIVE)) for labels, status in cameras])
    family("vigie_camera_state", "gauge", "Camera state (one series per state, 1 for the current one).",
           [(f'{labels},state="{state.value}"', float(status.state == state))
            for labels, status in cameras for state in CameraState])
    family("vigie_camera_input_fps", "gauge", "Frames per second received from the camera.",
           [(labels, status.input_fps) for labels, status in cameras])
    family("vigie_camera_bitrate_bits_per_second", "gauge", "Bitrate received from the camera.",
           [(labels, status.bitrate_bps) for labels, status in cameras])
    family("vigie_camera_frame_age_seconds", "gauge", "Seconds since the last decoded frame (-1: never).",
           [(labels, -1.0 if status.frame_age is None else status.frame_age) for labels, status in cameras])
    family("vigie_camera_reconnects_last_hour", "gauge", "Reconnections in the last hour.",
           [(labels, float(status.reconnects_last_hour)) for labels, status in cameras])
    family("vigie_camera_behind_seconds", "gauge",
           "Seconds the last picture came behind the camera's clock (link or server delay; -1: not decoding in full).",
           [(labels, -1.0 if status.behind is None else status.behind) for labels, status in cameras])
    family("vigie_camera_lag_skips_total", "counter",
           "Times decoding fell behind the camera and skipped to its next keyframe (short of CPU).",
           [(labels, float(status.lag_skips)) for labels, status in cameras])
    family("vigie_camera_decoding", "gauge",
           "What is decoded of the camera, one series per mode, 1 for the current one: full, "
           "reduced (watched, keyframes only: the server is short of CPU), keyframes (nobody watches).",
           [(f'{labels},mode="{mode.value}"', float(status.decoding == mode))
            for labels, status in cameras for mode in Decoding])
    family("vigie_camera_picture_condition", "gauge",
           "1 while a picture condition is raised (frozen, black, covered, blurred, moved, too_dark, "
           "too_bright), one series per condition the camera is judged on.",
           [(f'{labels},condition="{name}"', float(any(c == name for c, _ in status.picture.conditions)))
            for labels, status in cameras if status.picture is not None for name in status.picture.checks])
    walls = [(f'wall="{_label(wall_id)}"', runtime.wall_stream(wall_id)) for wall_id in runtime.walls]
    family("vigie_wall_fps_delivered", "gauge", "Frames per second sent by the wall's encoder.",
           [(labels, stream.fps_delivered()) for labels, stream in walls])
    family("vigie_wall_viewers", "gauge", "Viewers connected to the wall.",
           [(labels, float(stream.viewer_count)) for labels, stream in walls])
    family("vigie_wall_dropped_frames_total", "counter", "Frames dropped for slow viewers.",
           [(labels, float(stream.dropped_frames())) for labels, stream in walls])
    family("vigie_wall_slow_viewers_disconnected_total", "counter", "Viewers disconnected for being too slow.",
           [(labels, float(stream.disconnected_slow())) for labels, stream in walls])
    if cluster is not None:
        node = f'node="{_label(cluster["node"])}"'
        family("vigie_cluster_nodes", "gauge", "Live nodes of the cluster, as this node sees them.",
               [(node, float(len(cluster["nodes"])))])
        family("vigie_cluster_cameras_pulled", "gauge", "Cameras this node pulls.",
               [(node, float(sum(1 for owner in cluster["cameras"].values() if owner == cluster["node"])))])
        family("vigie_cluster_cameras_unowned", "gauge", "Cameras no live node pulls now.",
               [(node, float(sum(1 for owner in cluster["cameras"].values() if owner is None)))])
        family("vigie_cluster_dropped_messages_total", "counter", "Malformed NATS messages dropped.",
               [(node, float(cluster["dropped_messages"]))])
    if rtsp is not None:
        paths = [(f'path="{_label(path)}"', row) for path, row in sorted(rtsp.items())]
        family("vigie_rtsp_sessions", "gauge", "RTSP sessions open now, by path.",
               [(labels, float(row[0])) for labels, row in paths])
        family("vigie_rtsp_sessions_total", "counter", "RTSP sessions set up, by path.",
               [(labels, float(row[1])) for labels, row in paths])
        family("vigie_rtsp_bytes_sent_total", "counter", "Bytes of RTP and RTCP sent, by path.",
               [(labels, float(row[2])) for labels, row in paths])
        family("vigie_rtsp_dropped_frames_total", "counter",
               "Frames skipped for RTSP clients that fell behind, by path.",
               [(labels, float(row[3])) for labels, row in paths])
    return "\n".join(lines) + "\n"


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    _require(can_read_metrics(principal_of(request)))
    rtsp = request.app.get(RTSP)
    cluster = request.app.get(CLUSTER)
    return web.Response(text=render_metrics(request.app[RUNTIME], rtsp.totals() if rtsp else None,
                                            cluster_json(cluster) if cluster else None),
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})
