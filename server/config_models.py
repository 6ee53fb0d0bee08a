"""What a vigie.yaml may say: the root model and the sections it is made of.

One module per noun: `config_types` (shared value types and problem reports),
`config_cameras` (communes, cameras, secrets), `config_walls` (walls, cells). This module
holds the server section and the root, which checks ids and references across sections.
Reading the YAML file and reporting errors by line is `server/config.py`.

The cross-section checks (unique ids, known communes and cameras) run once every section
is valid on its own, as pydantic runs a model's after-validator only then: a file with
both kinds of mistake reports the reference errors after the others are fixed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from typing import Self

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from server.config_cameras import Camera, Commune
from server.config_types import Loc, Section, problems_error, split_listen
from server.config_walls import Cell, Wall

__all__ = ["Camera", "Cell", "Commune", "ServerConfig", "VigieConfig", "Wall"]


class ServerConfig(Section):
    listen: str = Field(
        "0.0.0.0:8080",
        min_length=3,
        max_length=300,
        description="Address of the HTTP server as HOST:PORT; IPv6 hosts between brackets.",
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


class VigieConfig(Section):
    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP server settings.")
    communes: list[Commune] = Field(
        min_length=1, max_length=10_000, description="Communes of the centre; at least one."
    )
    cameras: list[Camera] = Field(default_factory=list, max_length=100_000, description="Cameras.")
    walls: list[Wall] = Field(default_factory=list, max_length=1_000, description="Video walls.")

    _source_path: str = PrivateAttr("")
    _communes_by_id: dict[str, Commune] = PrivateAttr(default_factory=dict)
    _cameras_by_id: dict[str, Camera] = PrivateAttr(default_factory=dict)
    _walls_by_id: dict[str, Wall] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_references(self, info: ValidationInfo) -> Self:
        problems = [
            *_duplicate_ids("communes", self.communes),
            *_duplicate_ids("cameras", self.cameras),
            *_duplicate_ids("walls", self.walls),
        ]
        commune_ids = {commune.id for commune in self.communes}
        for index, camera in enumerate(self.cameras):
            if camera.commune not in commune_ids:
                reason = _unknown("commune", camera.commune, commune_ids)
                problems.append((("cameras", index, "commune"), reason))
        camera_ids = {camera.id for camera in self.cameras}
        for index, wall in enumerate(self.walls):
            for loc, camera_id in wall.camera_references():
                if camera_id not in camera_ids:
                    problems.append(
                        (("walls", index, *loc), _unknown("camera", camera_id, camera_ids))
                    )
        if problems:
            raise problems_error(problems)
        self._source_path = (info.context or {}).get("source", "")
        self._communes_by_id = {commune.id: commune for commune in self.communes}
        self._cameras_by_id = {camera.id: camera for camera in self.cameras}
        self._walls_by_id = {wall.id: wall for wall in self.walls}
        return self

    @property
    def source_path(self) -> str:
        """The file this configuration was loaded from ("" when built in code)."""
        return self._source_path

    def commune(self, commune_id: str) -> Commune | None:
        return self._communes_by_id.get(commune_id)

    def camera(self, camera_id: str) -> Camera | None:
        return self._cameras_by_id.get(camera_id)

    def wall(self, wall_id: str) -> Wall | None:
        return self._walls_by_id.get(wall_id)


def _duplicate_ids(key: str, items: Sequence[Commune | Camera | Wall]) -> Iterator[tuple[Loc, str]]:
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.id in first:
            yield (
                (key, index, "id"),
                f"duplicate id {item.id!r}, already used by {key}[{first[item.id]}]",
            )
        else:
            first[item.id] = index


def _unknown(noun: str, wanted: str, known: set[str]) -> str:
    close = difflib.get_close_matches(wanted, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {noun} {wanted!r}{hint}"
