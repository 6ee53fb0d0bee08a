"""`vigie demo`: nine synthetic cameras in three communes and a 3x3 wall; no camera needed."""

from __future__ import annotations

from server.config import VigieConfig, parse_config

DEMO_COMMUNES = (
    ("st-martin", "Saint-Martin", ("Mairie", "Place de l'Eglise", "Ecole")),
    ("les-granges", "Les Granges", ("Salle des fetes", "Stade", "Rond-point D12")),
    ("val-d-orge", "Val-d'Orge", ("Gare", "Parking centre", "Pont de l'Orge")),
)
DEMO_WALL_ID = "demo"


def demo_yaml(host: str, port: int) -> str:
    lines = ["server:", f'  listen: "{host}:{port}"', "communes:"]
    lines += [f'  - {{id: {commune_id}, name: "{name}"}}' for commune_id, name, _ in DEMO_COMMUNES]
    lines.append("cameras:")
    camera_ids = []
    tag = 0
    for commune_id, _, places in DEMO_COMMUNES:
        for index, place in enumerate(places, start=1):
            tag += 1
            camera_id = f"{commune_id}-{index}"
            camera_ids.append(camera_id)
            lines.append(f'  - {{id: {camera_id}, name: "{place}", commune: {commune_id}, '
                         f'url: "synthetic://{camera_id}?width=640&height=360&fps=15&tag={tag}"}}')
    lines += ["walls:", f"  - id: {DEMO_WALL_ID}", '    name: "Mur de demonstration"',
              "    size: 1920x1080", "    fps: 15", "    layout: 3x3",
              f"    cameras: [{', '.join(camera_ids)}]"]
    return "\n".join(lines) + "\n"


def demo_config(host: str, port: int) -> VigieConfig:
    return parse_config(demo_yaml(host, port), "<vigie demo>")
