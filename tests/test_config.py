"""Configuration loading: every refusal names the file, the line, the field path and why.

Bad configurations are built from small YAML pieces; the line expected in the error is
the one marked `#<`, so each case shows where the error must point.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from server.config import (
    Camera,
    Cell,
    ConfigError,
    ServerConfig,
    VigieConfig,
    Wall,
    load_config,
    parse_config,
)

FILE = "centre.yaml"
CANARY = "Canary-Pw-7f3a9"
ENV = {"CAM_A_PASSWORD": CANARY}
EXAMPLE = Path(__file__).resolve().parent.parent / "vigie.example.yaml"

COMMUNES = """
communes:
  - id: st-martin
    name: Saint-Martin
  - id: les-granges
    name: Les Granges
"""

CAMERAS = """
cameras:
  - id: cam-a
    name: Mairie
    commune: st-martin
    url: rtsp://10.0.0.1/stream
  - id: cam-b
    name: Gare
    commune: les-granges
    url: synthetic://gare?width=640&height=360&fps=15
"""


def document(*pieces: str) -> str:
    return "".join(piece.lstrip("\n") for piece in pieces)


def camera(*lines: str, id: str = "cam-a") -> str:
    """A `cameras:` section holding one camera with the given extra lines."""
    head = f"cameras:\n  - id: {id}\n    name: Mairie\n    commune: st-martin\n"
    return head + "".join(f"    {line}\n" for line in lines)


def camera_with_url(url: str) -> str:
    return camera(f"url: {url}  #<")


def wall(*lines: str) -> str:
    """A `walls:` section holding one wall with the given extra lines."""
    return "walls:\n  - id: mur\n    name: Mur\n" + "".join(f"    {line}\n" for line in lines)


def marked_line(text: str) -> int:
    marked = [number for number, line in enumerate(text.splitlines(), 1) if "#<" in line]
    assert len(marked) == 1, "a case marks exactly one line"
    return marked[0]


def bad(case: str, text: str, path: str | None, fragment: str, env: Mapping[str, str] = ENV):
    """A refused configuration: its one error is on the `#<` line, names `path`, says `fragment`."""
    return pytest.param(text, path, fragment, env, id=case)


BAD = [
    bad("unknown-top-level-key", document(COMMUNES, "colour: blue  #<\n"), "colour", "unknown key"),
    bad(
        "unknown-camera-key",
        document(COMMUNES, camera("url: rtsp://h/s", "stale_afer: 3  #<")),
        "cameras[0].stale_afer",
        "did you mean 'stale_after'",
    ),
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
        "duplicate-camera-id",
        document(
            COMMUNES,
            CAMERAS,
            "  - id: cam-a  #<\n    name: X\n    commune: st-martin\n    url: rtsp://h/s\n",
        ),
        "cameras[2].id",
        "duplicate id 'cam-a', already used by cameras[0]",
    ),
    bad(
        "duplicate-commune-id",
        document(COMMUNES, "  - id: st-martin  #<\n    name: Again\n"),
        "communes[2].id",
        "duplicate id 'st-martin'",
    ),
    bad(
        "unknown-commune",
        document(
            COMMUNES,
            "cameras:\n  - id: c\n    name: C\n    commune: st-martn  #<\n    url: rtsp://h/s\n",
        ),
        "cameras[0].commune",
        "unknown commune 'st-martn'; did you mean 'st-martin'?",
    ),
    bad(
        "unknown-camera-in-grid",
        document(COMMUNES, CAMERAS, wall("cameras:", "  - cam-a", "  - cam-z  #<")),
        "walls[0].cameras[1]",
        "unknown camera 'cam-z'",
    ),
    bad(
        "unknown-camera-in-cell",
        document(
            COMMUNES, CAMERAS, wall("cells:", "  - camera: nope  #<", "    row: 0", "    column: 0")
        ),
        "walls[0].cells[0].camera",
        "unknown camera 'nope'",
    ),
    bad(
        "url-http",
        document(COMMUNES, camera_with_url("http://10.0.0.1/video")),
        "cameras[0].url",
        "unsupported URL scheme",
    ),
    bad(
        "url-credentials",
        document(COMMUNES, camera_with_url(f"rtsp://admin:{CANARY}@10.0.0.1/s")),
        "cameras[0].url",
        "credentials inside the URL are not allowed: "
        "set username, and password_env or password_file",
    ),
    bad(
        "url-relative-file",
        document(COMMUNES, camera_with_url("file://clips/a.mp4")),
        "cameras[0].url",
        "absolute path",
    ),
    bad(
        "substream-bad-scheme",
        document(COMMUNES, camera("url: rtsp://h/s", "substream_url: rtmp://h/s  #<")),
        "cameras[0].substream_url",
        "unsupported URL scheme",
    ),
    bad(
        "inline-password",
        document(COMMUNES, camera("url: rtsp://h/s", "username: vigie", f"password: {CANARY}  #<")),
        "cameras[0].password",
        "inline passwords are not allowed: use password_env or password_file",
    ),
    bad(
        "password-env-unset",
        document(
            COMMUNES,
            camera("url: rtsp://h/s", "username: vigie", "password_env: CAM_A_PASSWORD  #<"),
        ),
        "cameras[0].password_env",
        "the environment variable it names is not set",
        env={},
    ),
    bad(
        "password-env-holds-a-password",
        document(
            COMMUNES, camera("url: rtsp://h/s", "username: vigie", f"password_env: {CANARY}  #<")
        ),
        "cameras[0].password_env",
        "not the password itself",
    ),
    bad(
        "password-env-and-file",
        document(
            COMMUNES,
            camera(
                "url: rtsp://h/s",
                "username: vigie",
                "password_env: CAM_A_PASSWORD",
                "password_file: pw.txt  #<",
            ),
        ),
        "cameras[0].password_file",
        "password_env and password_file are exclusive",
    ),
    bad(
        "password-file-unreadable",
        document(
            COMMUNES,
            camera("url: rtsp://h/s", "username: vigie", "password_file: missing/pw.txt  #<"),
        ),
        "cameras[0].password_file",
        "cannot read the file it names (No such file or directory)",
    ),
    bad(
        "password-without-username",
        document(
            COMMUNES,
            "cameras:\n  - id: cam-a  #<\n    name: A\n    commune: st-martin\n"
            "    url: rtsp://h/s\n    password_env: CAM_A_PASSWORD\n",
        ),
        "cameras[0].username",
        "username is required with password_env or password_file",
    ),
    bad(
        "stale-after-too-big",
        document(COMMUNES, camera("url: rtsp://h/s", "stale_after: 500  #<")),
        "cameras[0].stale_after",
        "less than or equal to 300",
    ),
    bad(
        "open-timeout-zero",
        document(COMMUNES, camera("url: rtsp://h/s", "open_timeout: 0  #<")),
        "cameras[0].open_timeout",
        "greater than or equal to 1",
    ),
    bad(
        "transport-unknown",
        document(COMMUNES, camera("url: rtsp://h/s", "transport: quic  #<")),
        "cameras[0].transport",
        "'tcp' or 'udp'",
    ),
    bad(
        "missing-url",
        document(COMMUNES, "cameras:\n  - id: cam-a  #<\n    name: A\n    commune: st-martin\n"),
        "cameras[0].url",
        "required key is missing",
    ),
    bad(
        "bad-id-characters",
        document(COMMUNES, camera("url: rtsp://h/s", id="Cam A  #<")),
        "cameras[0].id",
        "a-z, 0-9",
    ),
    bad(
        "wall-size-odd",
        document(COMMUNES, CAMERAS, wall("size: 1921x1080  #<")),
        "walls[0].size",
        "must be even",
    ),
    bad(
        "wall-size-text",
        document(COMMUNES, CAMERAS, wall("size: abc  #<")),
        "walls[0].size",
        "expected WIDTHxHEIGHT",
    ),
    bad(
        "wall-size-too-big",
        document(COMMUNES, CAMERAS, wall("size: 8000x4000  #<")),
        "walls[0].size",
        "width must be 160..7680",
    ),
    bad(
        "wall-layout-zero",
        document(COMMUNES, CAMERAS, wall("layout: '0x3'  #<")),
        "walls[0].layout",
        "must each be 1..8",
    ),
    bad(
        "wall-layout-too-big",
        document(COMMUNES, CAMERAS, wall("layout: 9x9  #<")),
        "walls[0].layout",
        "must each be 1..8",
    ),
    # YAML reads an unquoted 0x3 as the hexadecimal number 3
    bad(
        "wall-layout-hex",
        document(COMMUNES, CAMERAS, wall("layout: 0x3  #<")),
        "walls[0].layout",
        "expected text",
    ),
    bad(
        "wall-fps-text",
        document(COMMUNES, CAMERAS, wall("fps: fast  #<")),
        "walls[0].fps",
        "valid number",
    ),
    bad(
        "wall-too-many-cameras",
        document(COMMUNES, CAMERAS, wall("layout: 2x1", "cameras: [cam-a, cam-b, null]  #<")),
        "walls[0].cameras",
        "3 cameras for 2 cells of the 2x1 layout (2 wide, 1 high)",
    ),
    bad(
        "wall-cells-overlap",
        document(
            COMMUNES,
            CAMERAS,
            wall(
                "layout: 3x3",
                "cells:",
                "  - {camera: cam-a, row: 0, column: 0, rows: 2, columns: 2}",
                "  - {camera: cam-b, row: 1, column: 1}  #<",
            ),
        ),
        "walls[0].cells[1]",
        "the cell overlaps cells[0]",
    ),
    bad(
        "wall-cell-outside",
        document(
            COMMUNES,
            CAMERAS,
            wall(
                "layout: 2x2",
                "cells:",
                "  - {camera: cam-a, row: 0, column: 0}",
                "  - camera: cam-b  #<",
                "    row: 1",
                "    column: 1",
                "    columns: 2",
            ),
        ),
        "walls[0].cells[1]",
        "the cell reaches outside the 2x2 layout (2 wide, 2 high)",
    ),
    bad(
        "wall-cameras-and-cells",
        document(
            COMMUNES,
            CAMERAS,
            wall("cameras: [cam-a]", "cells: [{camera: cam-b, row: 0, column: 0}]  #<"),
        ),
        "walls[0].cells",
        "cameras and cells are exclusive",
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
    bad("no-communes", document("communes: []  #<\n"), "communes", "at least 1 item"),
    bad("missing-communes", document("walls: []  #<\n"), "communes", "required key is missing"),
    bad("not-a-mapping", document("- communes  #<\n"), None, "expected a mapping"),
    bad(
        "stale-after-bool",
        document(COMMUNES, camera("url: rtsp://h/s", "stale_after: yes  #<")),
        "cameras[0].stale_after",
        "valid number",
    ),
    bad(
        "stale-after-nan",
        document(COMMUNES, camera("url: rtsp://h/s", "stale_after: .nan  #<")),
        "cameras[0].stale_after",
        "finite number",
    ),
    bad(
        "cell-row-fraction",
        document(COMMUNES, CAMERAS, wall("cells: [{row: 0.5, column: 0}]  #<")),
        "walls[0].cells[0].row",
        "valid integer",
    ),
    bad(
        "cell-unknown-key",
        document(
            COMMUNES, CAMERAS, wall("cells:", "  - row: 0", "    column: 0", "    colspan: 2  #<")
        ),
        "walls[0].cells[0].colspan",
        "unknown key",
    ),
    bad(
        "empty-username",
        document(COMMUNES, camera("url: rtsp://h/s", "username: ''  #<")),
        "cameras[0].username",
        "at least 1 character",
    ),
]


@pytest.mark.parametrize(("text", "path", "fragment", "env"), BAD)
def test_bad_config_is_refused_with_file_line_path_and_reason(text, path, fragment, env):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE, env=env)
    prefix = f"{FILE}:{marked_line(text)}: " + (f"{path}: " if path else "")
    (error,) = caught.value.errors
    assert error.startswith(prefix) and fragment in error, f"want {prefix!r}...{fragment!r}"
    assert CANARY not in str(caught.value)


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


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            document(COMMUNES, camera("url: rtsp://h/s", "username: u", f"password: {CANARY}")),
            id="inline",
        ),
        pytest.param(
            document(
                COMMUNES,
                camera("url: rtsp://h/s", "username: u", f"password: {CANARY}", "fps: fast"),
            ),
            id="inline-and-unknown-key",
        ),
        pytest.param(
            document(
                COMMUNES, camera(f"url: rtsp://u:{CANARY}@h/s", "stale_after: fast", "transport: 3")
            ),
            id="url-credentials-and-wrong-types",
        ),
        pytest.param(
            document(COMMUNES, camera("url: rtsp://h/s", "username: u", f"password_env: {CANARY}")),
            id="password-in-password-env",
        ),
        pytest.param(
            document(
                COMMUNES, camera("url: rtsp://h/s", "username: u", f"password_file: {CANARY}")
            ),
            id="password-in-password-file",
        ),
        pytest.param(
            document(
                COMMUNES,
                camera(
                    "url: rtsp://h/s",
                    "username: u",
                    "password_env: CAM_A_PASSWORD",
                    "stale_after: [1]",
                    "transport: 7",
                ),
            ),
            id="resolved-secret-next-to-wrong-types",
        ),
        pytest.param(
            document(COMMUNES, f"cameras: [{{url: 'rtsp://{CANARY}@h'}}\n"), id="yaml-error"
        ),
    ],
)
def test_a_password_never_appears_in_errors(text):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE, env=ENV)
    assert CANARY not in str(caught.value) + repr(caught.value) + "".join(caught.value.errors)
    chained = caught.value.__cause__ or (
        None if caught.value.__suppress_context__ else caught.value.__context__
    )
    assert chained is None  # no pydantic or YAML error travels along


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


def test_password_from_file_is_relative_to_the_config_folder(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "cam-a").write_text(f"{CANARY}\n")
    path = tmp_path / "vigie.yaml"
    path.write_text(
        document(COMMUNES, camera("url: rtsp://h/s", "username: u", "password_file: secrets/cam-a"))
    )
    config = load_config(path, env={})
    assert config.camera("cam-a").password() == CANARY
    assert config.source_path == str(path)
    assert CANARY not in repr(config) and CANARY not in config.model_dump_json()


def test_password_from_env_and_none_without_one():
    text = document(
        COMMUNES,
        CAMERAS,
        "  - {id: cam-c, name: C, commune: st-martin, url: 'rtsp://h/c',\n"
        "     username: u, password_env: CAM_A_PASSWORD}\n",
    )
    config = parse_config(text, FILE, env=ENV)
    assert config.camera("cam-c").password() == CANARY
    assert config.camera("cam-a").password() is None


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
