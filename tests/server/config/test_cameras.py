"""The communes and cameras sections: URLs, credentials, secrets, privacy masks."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from server.config import (
    Camera,
    ConfigError,
    load_config,
    parse_config,
)
from tests.server.config.cases import CAMERAS, CANARY, COMMUNES, ENV, FILE, bad, camera, camera_with_url, check_bad, document, masks

CAMERAS_CASES = [
    bad(
        "unknown-camera-key",
        document(COMMUNES, camera("url: rtsp://h/s", "stale_afer: 3  #<")),
        "cameras[0].stale_afer",
        "did you mean 'stale_after'",
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
        "priority-unknown",
        document(COMMUNES, camera("url: rtsp://h/s", "priority: urgent  #<")),
        "cameras[0].priority",
        "'high', 'normal' or 'low'",
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
    bad("no-communes", document("communes: []  #<\n"), "communes", "at least 1 item"),
    bad("missing-communes", document("walls: []  #<\n"), "communes", "required key is missing"),
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
        "empty-username",
        document(COMMUNES, camera("url: rtsp://h/s", "username: ''  #<")),
        "cameras[0].username",
        "at least 1 character",
    ),
    bad(
        "mask-two-points",
        document(COMMUNES, CAMERAS, masks("- [[0, 0], [1, 0], [1, 1]]", "- [[0, 0], [1, 1]]  #<")),
        "cameras[1].privacy_masks[1]",
        "a mask is a polygon of at least 3 points [x, y]",
    ),
    bad(
        "mask-coordinate-above-1",
        document(
            COMMUNES, CAMERAS, masks("- - [0.1, 0.1]", "  - [0.4, 0.1]", "  - [1.5, 0.3]  #<")
        ),
        "cameras[1].privacy_masks[0][2]",
        "x must be from 0 to 1, a fraction of the picture's width (0: the left edge, 1: the right",
    ),
    bad(
        "mask-coordinate-negative",
        document(
            COMMUNES, CAMERAS, masks("- - [0.1, 0.1]", "  - [0.4, -0.1]  #<", "  - [0.2, 0.3]")
        ),
        "cameras[1].privacy_masks[0][1]",
        "y must be from 0 to 1, a fraction of the picture's height (0: the top edge",
    ),
    bad(
        "mask-coordinate-nan",
        document(COMMUNES, CAMERAS, masks("- - [0.1, 0.1]", "  - [.nan, 0.5]  #<", "  - [0, 1]")),
        "cameras[1].privacy_masks[0][1]",
        "x must be from 0 to 1",
    ),
    bad(
        "mask-coordinate-text",
        document(COMMUNES, CAMERAS, masks("- - [0.1, 0.1]", "  - [0.5, half]  #<", "  - [0, 1]")),
        "cameras[1].privacy_masks[0][1]",
        "y must be a number from 0 to 1",
    ),
    bad(
        "mask-coordinate-bool",
        document(COMMUNES, CAMERAS, masks("- - [0.1, 0.1]", "  - [yes, 0.5]  #<", "  - [0, 1]")),
        "cameras[1].privacy_masks[0][1]",
        "x must be a number from 0 to 1",
    ),
    bad(
        "mask-point-three-numbers",
        document(
            COMMUNES, CAMERAS, masks("- - [0.1, 0.1]", "  - [0.5, 0.5, 0.5]  #<", "  - [0, 1]")
        ),
        "cameras[1].privacy_masks[0][1]",
        "a point is a pair [x, y] of numbers from 0 to 1",
    ),
    bad(
        "mask-point-mapping",
        document(
            COMMUNES, CAMERAS, masks("- - [0.1, 0.1]", "  - {x: 0.5, y: 0.5}  #<", "  - [0, 1]")
        ),
        "cameras[1].privacy_masks[0][1]",
        "a point is a pair [x, y]",
    ),
    bad(
        "mask-points-on-one-line",
        document(COMMUNES, CAMERAS, masks("- [[0, 0], [0.5, 0.5], [1, 1]]  #<")),
        "cameras[1].privacy_masks[0]",
        "the points of the mask are on one line, so it hides nothing",
    ),
    bad(
        "masks-not-a-list",
        document(COMMUNES, camera("url: rtsp://h/s", "privacy_masks: yes  #<")),
        "cameras[0].privacy_masks",
        "expected a list",
    ),
    bad(
        "mask-not-a-list",
        document(COMMUNES, CAMERAS, masks("- {points: 3}  #<")),
        "cameras[1].privacy_masks[0]",
        "expected a list",
    ),
]


@pytest.mark.parametrize(("text", "path", "fragment", "env"), CAMERAS_CASES)
def test_bad_cameras_config_is_refused_with_file_line_path_and_reason(text, path, fragment, env):
    check_bad(text, path, fragment, env)


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


def test_a_mask_without_its_outer_list_is_explained():
    text = document(COMMUNES, camera("url: rtsp://h/s", "privacy_masks: [[0, 0], [1, 0], [1, 1]]"))
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE, env={})
    assert caught.value.errors == [
        f"{FILE}:11: cameras[0].privacy_masks[{index}]: a mask is a list of points [x, y], "
        "and privacy_masks a list of masks: [[[x, y], [x, y], [x, y]], ...]"
        for index in range(3)
    ]


@given(x=st.floats(), y=st.floats(allow_nan=False))
def test_mask_coordinates_are_accepted_exactly_from_0_to_1(x, y):
    polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [x, y]]  # never on one line
    inside = math.isfinite(x) and 0 <= x <= 1 and 0 <= y <= 1
    try:
        built = Camera(id="c", name="C", commune="a", url="synthetic://c", privacy_masks=[polygon])
    except ValidationError as exc:
        assert not inside
        assert [error["loc"] for error in exc.errors()] == [("privacy_masks", 0, 4)]
    else:
        assert inside and built.privacy_masks[0][4] == (x, y)
