"""`vigie demo`: nine synthetic cameras in three communes and a 3x3 wall; no camera needed.

Users: `admin`, `operator` and one police user per commune (`police-<commune id>`), each
with a random password printed at start, or the one given with --password; the same
password reads the RTSP streams (Digest).
"""

from __future__ import annotations

import json
import secrets
import tempfile
from pathlib import Path

from server.config import VigieConfig, parse_config
from server.access.digest import ha1
from server.access.secrets import hash_password

DEMO_COMMUNES = (
    ("st-martin", "Saint-Martin", ("Mairie", "Place de l'Eglise", "Ecole")),
    ("les-granges", "Les Granges", ("Salle des fetes", "Stade", "Rond-point D12")),
    ("val-d-orge", "Val-d'Orge", ("Gare", "Parking centre", "Pont de l'Orge")),
)
DEMO_WALL_ID = "demo"


def demo_users(password: str | None) -> dict[str, tuple[str, str, list[str]]]:
    """{name: (role, password, communes)}"""
    def pick() -> str:
        return password or secrets.token_urlsafe(9)
    users = {"admin": ("admin", pick(), []), "operator": ("operator", pick(), [])}
    for commune_id, _, _ in DEMO_COMMUNES:
        users[f"police-{commune_id}"] = ("police", pick(), [commune_id])
    return users


def private_state_dir() -> Path:
    """A new folder only this user may enter (mode 0700), for the demo's journal and
    sessions: at a fixed path in /tmp another local user could create them first (and
    read or plant sessions)."""
    return Path(tempfile.mkdtemp(prefix="vigie-demo-"))


def demo_yaml(host: str, port: int, users: dict[str, tuple[str, str, list[str]]],
              audit_path: str | None = None, rtsp_port: int | None = 8554,
              udp_first: int = 8000) -> str:
    if audit_path is None:
        audit_path = str(private_state_dir() / "vigie-demo-audit.sqlite")
    lines = ["server:", f'  listen: "{host}:{port}"', "rtsp:",
             f'  listen: "{host}:{rtsp_port}"' if rtsp_port else "  listen: null",
             f'  udp_ports: "{udp_first}-{udp_first + 1}"', "communes:"]
    lines += [f'  - {{id: {commune_id}, name: "{name}"}}' for commune_id, name, _ in DEMO_COMMUNES]
    lines.append("cameras:")
    camera_ids = []
    tag = 0
    scenes = ("hall", "square", "school", "hall", "stadium", "roundabout", "station", "parking", "bridge")
    for commune_id, _, places in DEMO_COMMUNES:
        for index, place in enumerate(places, start=1):
            tag += 1
            camera_id = f"{commune_id}-{index}"
            camera_ids.append(camera_id)
            lines.append(f'  - {{id: {camera_id}, name: "{place}", commune: {commune_id}, '
                         f'url: "synthetic://{camera_id}?width=640&height=360&fps=15&tag={tag}'
                         f'&scene={scenes[tag - 1]}"}}')
    lines += ["walls:", f"  - id: {DEMO_WALL_ID}", '    name: "Mur de demonstration"',
              "    size: 1920x1080", "    fps: 15", "    layout: 3x3",
              f"    cameras: [{', '.join(camera_ids)}]", "users:"]
    for name, (role, password, communes) in users.items():
        communes_yaml = f", communes: [{', '.join(communes)}]" if communes else ""
        # The same password for RTSP (Digest), kept as its HA1 values like a real config.
        digest = f'{{md5: {ha1("MD5", name, password)}, sha256: {ha1("SHA-256", name, password)}}}'
        lines.append(f'  - {{name: {name}, role: {role}{communes_yaml}, '
                     f'password_hash: "{hash_password(password)}", stream_digest: {digest}}}')
    lines += ["audit:", f"  path: {json.dumps(audit_path)}"]
    return "\n".join(lines) + "\n"


def demo_config(host: str, port: int, users: dict[str, tuple[str, str, list[str]]],
                rtsp_port: int | None = 8554, udp_first: int = 8000) -> VigieConfig:
    return parse_config(demo_yaml(host, port, users, rtsp_port=rtsp_port, udp_first=udp_first),
                        "<vigie demo>")
