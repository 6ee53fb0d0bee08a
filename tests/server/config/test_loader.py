"""Loading the config file: YAML with line marks, every error at once, the example file,
defaults. Every refusal names the file, the line, the field path and why."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from server.config import (
    Camera,
    Cell,
    ConfigError,
    ServerConfig,
    SessionConfig,
    VigieConfig,
    Wall,
    load_config,
    parse_config,
)
from tests.server.config.cases import CAMERAS, CANARY, COMMUNES, ENV, EXAMPLE, FILE, bad, camera, check_bad, document, wall

LOADER_CASES = [
    bad("unknown-top-level-key", document(COMMUNES, "colour: blue  #<\n"), "colour", "unknown key"),
    bad(
        "yaml-syntax",
        document(COMMUNES, "cameras:\n  - id: cam-a\n    name: A: B  #<\n"),
        None,
        "invalid YAML: mapping values are not allowed here",
    ),
    bad(
        "yaml-duplicate-key",
        document(COMMUNES, camera("url: rtsp://h/s", "url: rtsp://h/t  #<")),
        None,
        "duplicate key 'url' (first written on line 10)",
    ),
    bad(
        "yaml-unknown-tag",
        document(COMMUNES, "cameras: !include cams.yaml  #<\n"),
        None,
        "constructor for the tag",
    ),
    bad(
        "server-listen",
        document("server:\n  listen: localhost  #<\n", COMMUNES),
        "server.listen",
        "expected HOST:PORT",
    ),
    bad(
        "server-port",
        document("server:\n  listen: 0.0.0.0:99999  #<\n", COMMUNES),
        "server.listen",
        "between 1 and 65535",
    ),
    bad("not-a-mapping", document("- communes  #<\n"), None, "expected a mapping"),
]


@pytest.mark.parametrize(("text", "path", "fragment", "env"), LOADER_CASES)
def test_bad_loader_config_is_refused_with_file_line_path_and_reason(text, path, fragment, env):
    check_bad(text, path, fragment, env)


def test_every_error_is_reported_at_once_in_line_order():
    text = document(
        COMMUNES,
        camera("url: http://h/s  #1", "stale_after: 0  #2"),
        wall("size: abc  #3", "fps: 99  #4"),
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE, env={})
    assert caught.value.errors == [
        f"{FILE}:10: cameras[0].url: unsupported URL scheme: use rtsp://, rtsps://, synthetic://, file://",
        f"{FILE}:11: cameras[0].stale_after: Input should be greater than or equal to 1",
        f"{FILE}:15: walls[0].size: expected WIDTHxHEIGHT, e.g. 1920x1080",
        f"{FILE}:16: walls[0].fps: Input should be less than or equal to 60",
    ]
    assert str(caught.value) == "\n".join(caught.value.errors)


def test_pydantic_errors_hide_inputs_when_models_are_used_directly():
    data = {
        "communes": [{"id": "a", "name": "A"}],
        "cameras": [{"id": "c", "name": "C", "commune": "a", "url": f"rtsp://u:{CANARY}@h/s"}],
    }
    with pytest.raises(ValidationError) as caught:
        VigieConfig.model_validate(data)
    assert CANARY not in str(caught.value)


def test_example_file_loads():
    config = load_config(EXAMPLE, env={"VIGIE_CAM_MAIRIE_PASSWORD": CANARY})
    assert config.source_path == str(EXAMPLE)
    assert [commune.id for commune in config.communes] == ["st-martin", "les-granges", "val-d-orge"]
    mairie = config.camera("stm-mairie")
    assert mairie is not None and mairie.password() == CANARY and mairie.username == "vigie"
    assert config.camera("stm-ecole").substream_url.startswith("rtsps://")
    assert config.camera("grg-rond-point").transport == "udp"
    assert any(camera.url.startswith("synthetic://") for camera in config.cameras)
    grid, police = config.wall("centre-principal"), config.wall("poste-police")
    assert (grid.columns, grid.rows, grid.width, grid.height) == (3, 3, 1920, 1080)
    assert len(grid.resolved_cells()) == 9 and grid.resolved_cells()[4].camera is None
    assert police.resolved_cells()[0] == Cell(
        camera="stm-mairie", row=0, column=0, rows=2, columns=2
    )
    assert CANARY not in repr(config) and CANARY not in config.model_dump_json()
    assert CANARY not in str(config) and CANARY not in repr(mairie)
    assert len(config.camera("stm-ecole").privacy_masks) == 2
    assert [(user.name, user.role) for user in config.users] == [
        ("c.moreau", "admin"),
        ("t.bernard", "operator"),
        ("pm.st-martin", "police"),
        ("pi.granges-orge", "police"),
        ("gendarmerie-cob", "partner"),
    ]
    assert config.user("pi.granges-orge").communes == ["les-granges", "val-d-orge"]
    assert [(kiosk.id, kiosk.wall) for kiosk in config.kiosks] == [
        ("ecran-accueil", "centre-principal"),
        ("poste-pm-stm", "poste-police"),
    ]
    assert config.metrics.token_hash is not None
    assert config.audit.resolved_path() == EXAMPLE.parent / "vigie-audit.sqlite"
    assert config.audit.retention_days == 180
    assert config.sessions == SessionConfig()
    hashes = [user.password_hash for user in config.users if user.password_hash]
    hashes += [kiosk.token_hash for kiosk in config.kiosks] + [config.metrics.token_hash]
    assert len(set(hashes)) == len(hashes)
    assert not any(hash in repr(config) for hash in hashes)


def test_example_file_without_its_secret_names_the_field():
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE, env={})
    assert caught.value.errors == [
        f"{EXAMPLE}:38: cameras[0].password_env: the environment variable it names is not set"
    ]


def test_good_config_round_trips():
    text = document(
        "server:\n  listen: '[::1]:9000'\n",
        COMMUNES,
        camera(
            "url: rtsp://h/s",
            "substream_url: rtsp://h/sub",
            "username: vigie",
            "password_env: CAM_A_PASSWORD",
            "transport: udp",
            "stale_after: 2.5",
        ),
        wall(
            "layout: 3x2",
            "fps: 25",
            "cells:",
            "  - {camera: cam-a, row: 0, column: 0, rows: 2, columns: 2}",
            "  - {row: 0, column: 2}",
        ),
        "  - id: grille\n    name: Grille\n    cameras: [cam-a, null, cam-a]\n",
    )
    config = parse_config(text, FILE, env=ENV)
    again = parse_config(yaml.safe_dump(config.model_dump(mode="json")), FILE, env=ENV)
    assert again == config
    assert again.model_dump() == config.model_dump()
    assert config.server.host == "::1" and config.server.port == 9000
    assert config.camera("cam-a").password() == CANARY
    assert config.commune("st-martin").name == "Saint-Martin"
    assert config.wall("grille").resolved_cells()[2] == Cell(camera="cam-a", row=1, column=0)
    assert (config.camera("nope"), config.wall("nope"), config.commune("nope")) == (
        None,
        None,
        None,
    )


def test_yaml_anchors_and_merge_keys_give_camera_defaults():
    text = document(
        COMMUNES,
        "cameras:\n"
        "  - &base {id: cam-a, name: A, commune: st-martin, url: 'rtsp://h/a', stale_after: 9}\n"
        "  - {<<: *base, id: cam-b, url: 'rtsp://h/b'}\n",
    )
    config = parse_config(text, FILE, env={})
    assert config.camera("cam-b").stale_after == 9 and config.camera("cam-b").url == "rtsp://h/b"


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("0.0.0.0:8080", "0.0.0.0", 8080),
        ("[::]:80", "::", 80),
        ("vigie.local:443", "vigie.local", 443),
    ],
)
def test_listen_address(listen, host, port):
    server = ServerConfig(listen=listen)
    assert (server.host, server.port) == (host, port)


def test_defaults():
    config = parse_config(document(COMMUNES, CAMERAS, wall()), FILE, env={})
    camera_b = config.camera("cam-b")
    assert (camera_b.transport, camera_b.stale_after, camera_b.open_timeout) == ("tcp", 5.0, 5.0)
    only = config.wall("mur")
    assert (only.width, only.height, only.fps, only.columns, only.rows) == (1920, 1080, 15.0, 2, 2)
    assert [cell.camera for cell in only.resolved_cells()] == [None] * 4
    assert config.server.listen == "0.0.0.0:8080"


def test_models_are_frozen():
    config = parse_config(document(COMMUNES, CAMERAS), FILE, env={})
    with pytest.raises(ValidationError):
        config.cameras[0].stale_after = 10


def test_models_can_be_built_in_code():
    wall_model = Wall(id="w", name="W", layout="2x1", cameras=["a"])
    assert [cell.camera for cell in wall_model.resolved_cells()] == ["a", None]
    assert Camera(id="c", name="C", commune="x", url="synthetic://c").password() is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read the file (No such file or directory)"),
        (b"communes:\n  - \xff\n", ":2: the file is not UTF-8 text"),
    ],
)
def test_unreadable_file(tmp_path, content, reason):
    path = tmp_path / "vigie.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors == [f"{path}{'' if reason.startswith(':') else ': '}{reason}"]


def test_empty_file():
    with pytest.raises(ConfigError) as caught:
        parse_config("# nothing yet\n", FILE)
    assert caught.value.errors == [f"{FILE}:1: the file is empty: at least `communes` is required"]
