"""Communes and cameras, with the camera password resolved from the environment or a file,
and the privacy masks drawn over each camera's picture."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    model_validator,
)

from server.config.types import (EnvName, Identifier, Name, Section, StreamUrl, problems_error,
                                 resolve_secret)

MAX_MASKS = 64  # privacy masks per camera
MAX_MASK_POINTS = 256  # points per mask
_MIN_MASK_AREA = 1e-12  # in normalised units: below it the points are on one line
_EDGES = {"x": ("width", "left", "right"), "y": ("height", "top", "bottom")}


def _check_point(value: object) -> tuple[float, float]:
    """A mask point: `[x, y]`, both numbers from 0 to 1 (fractions of width and height)."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError("a point is a pair [x, y] of numbers from 0 to 1")
    point: list[float] = []
    for axis, coordinate in zip(("x", "y"), value, strict=True):
        if isinstance(coordinate, bool) or not isinstance(coordinate, int | float):
            raise ValueError(f"{axis} must be a number from 0 to 1")
        if not (math.isfinite(coordinate) and 0 <= coordinate <= 1):
            side, first, last = _EDGES[axis]
            raise ValueError(
                f"{axis} must be from 0 to 1, a fraction of the picture's {side} "
                f"(0: the {first} edge, 1: the {last} edge)"
            )
        point.append(float(coordinate))
    return point[0], point[1]


def _check_mask_shape(value: object) -> object:
    """Catches a mask written without its outer list: `privacy_masks: [[x, y], ...]`."""
    if isinstance(value, list | tuple) and value and all(
        isinstance(item, int | float) and not isinstance(item, bool) for item in value
    ):
        raise ValueError(
            "a mask is a list of points [x, y], and privacy_masks a list of masks: "
            "[[[x, y], [x, y], [x, y]], ...]"
        )
    return value


def _check_polygon(points: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    if len(points) < 3:
        raise ValueError("a mask is a polygon of at least 3 points [x, y]")
    twice_area = sum(
        x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1])
    )
    if abs(twice_area) < 2 * _MIN_MASK_AREA:
        raise ValueError("the points of the mask are on one line, so it hides nothing")
    return points


MaskPoint = Annotated[tuple[float, float], BeforeValidator(_check_point)]
Mask = Annotated[
    tuple[MaskPoint, ...],
    Field(max_length=MAX_MASK_POINTS),
    BeforeValidator(_check_mask_shape),
    AfterValidator(_check_polygon),
]


class Commune(Section):
    id: Identifier = Field(description="Unique commune id, referenced by cameras.")
    name: Name = Field(description="Name of the commune, drawn on tiles.")


PictureCheck = Literal["frozen", "black", "covered", "blurred", "moved", "too_dark", "too_bright"]


class PictureHealth(Section):
    """What a camera's picture is judged on (ingest/camera/picture_health.py)."""

    checks: tuple[PictureCheck, ...] = Field(
        ("frozen", "black", "covered", "blurred", "moved", "too_dark", "too_bright"),
        max_length=7,
        description="Conditions this camera is judged on (default all); a PTZ dome that moves "
        "on purpose: [frozen, black, covered].",
    )
    sensitivity: float = Field(
        1.0, ge=0.25, le=4.0, strict=False, allow_inf_nan=False,
        description="Above 1 finds more (smaller covers, lighter blur), below 1 fewer.",
    )


class Camera(Section):
    id: Identifier = Field(description="Unique camera id, used in URLs and the API.")
    name: Name = Field(description="Name of the camera, drawn on tiles.")
    commune: Identifier = Field(description="Id of the commune the camera belongs to.")
    url: StreamUrl = Field(
        description="Main stream: an rtsp://, rtsps://, synthetic:// or file:// URL, "
        "without credentials."
    )
    substream_url: StreamUrl | None = Field(
        None, description="Lower-resolution stream used for mosaics when set; same rules as url."
    )
    username: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None, description="User name sent to the camera."
    )
    password_env: EnvName | None = Field(
        None, description="Name of the environment variable holding the camera password."
    )
    password_file: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        None,
        description="File holding the camera password (trailing newline stripped); "
        "relative paths start at the configuration file's folder.",
    )
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport for the media.")
    nodes: list[Identifier] = Field(
        default_factory=list, max_length=64,
        description="In a cluster, the nodes that can reach this camera (its commune's link may "
        "end at some only); empty: any node.")
    priority: Literal["high", "normal", "low"] = Field(
        "normal",
        description="When the server is short of CPU, low cameras are reduced to their "
        "keyframes first and high ones last (ingest/wall/governor.py).",
    )
    stale_after: float = Field(
        5.0,
        ge=1,
        le=300,
        strict=True,
        allow_inf_nan=False,
        description="Seconds without a frame before the camera counts as stalled.",
    )
    open_timeout: float = Field(
        5.0,
        ge=1,
        le=60,
        strict=True,
        allow_inf_nan=False,
        description="Seconds allowed to open the stream before giving up.",
    )

    privacy_masks: tuple[Mask, ...] = Field(
        (),
        max_length=MAX_MASKS,
        description="Polygons filled over the picture before anyone sees it: each a list of "
        "at least 3 points [x, y], coordinates from 0 to 1 as fractions of the picture's "
        "width and height, from the top left corner.",
    )

    health: PictureHealth = Field(default_factory=PictureHealth,
                                  description="Picture health: the checks and their sensitivity.")

    _password: SecretStr | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _refuse_inline_password(cls, data: object) -> object:
        if isinstance(data, Mapping) and "password" in data:
            raise problems_error(
                [
                    (
                        ("password",),
                        "inline passwords are not allowed: use password_env or password_file",
                    )
                ]
            )
        return data

    @model_validator(mode="after")
    def _resolve_password(self, info: ValidationInfo) -> Self:
        secret, problems = resolve_secret(info, self.password_env, self.password_file,
                                          "password_env", "password_file")
        if secret is not None:
            self._password = SecretStr(secret)
        if (self.password_env or self.password_file) and not self.username:
            problems.append(
                (("username",), "username is required with password_env or password_file")
            )
        if problems:
            raise problems_error(problems)
        return self

    def password(self) -> str | None:
        """The camera password resolved at load time, or None."""
        return None if self._password is None else self._password.get_secret_value()
