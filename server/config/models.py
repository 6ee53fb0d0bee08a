"""What a vigie.yaml may say: the root model and the sections it is made of.

One module per noun: `config_types` (shared value types and problem reports),
`config_cameras` (communes, cameras, secrets, privacy masks), `config_walls` (walls,
cells), `config_users` (users, kiosks, metrics token, sessions, audit journal). This module
holds the server section and the root, which checks ids and references across sections.
Reading the YAML file and reporting errors by line is `server/config/loader.py`.

The cross-section checks (unique ids and user names, known communes, cameras and walls,
one token per kiosk) run once every section is valid on its own, as pydantic runs a
model's after-validator only then: a file with both kinds of mistake reports the
reference errors after the others are fixed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import Self

import hashlib
import ipaddress
import json

from pydantic import Field, IPvAnyNetwork, PrivateAttr, ValidationInfo, field_validator, model_validator

from server.config.cameras import Camera, Commune
from server.config.cluster import ClusterConfig
from server.config.onvif import OnvifConfig
from server.config.rtsp import RtspConfig
from server.config.types import Loc, Section, problems_error, split_listen
from server.config.users import AuditConfig, Kiosk, LimitsConfig, MetricsConfig, SessionConfig, User
from server.config.walls import Cell, Wall

__all__ = [
    "AuditConfig",
    "Camera",
    "Cell",
    "ClusterConfig",
    "Commune",
    "Kiosk",
    "LimitsConfig",
    "MetricsConfig",
    "OnvifConfig",
    "RtspConfig",
    "ServerConfig",
    "SessionConfig",
    "User",
    "VigieConfig",
    "Wall",
]


class ServerConfig(Section):
    listen: str = Field(
        "0.0.0.0:8080",
        min_length=3,
        max_length=300,
        description="Address of the HTTP server as HOST:PORT; IPv6 hosts between brackets.",
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        max_length=64,
        description="Load balancers in front of Vigie (addresses or CIDR blocks). A request from "
        "one of them is journaled and throttled under the address it forwards (X-Forwarded-For, "
        "the nearest address that is not itself a trusted proxy); from anyone else, "
        "X-Forwarded-For is ignored.",
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    def trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self.trusted_proxies)

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
    users: list[User] = Field(
        default_factory=list, max_length=10_000, description="People who log in with a password."
    )
    kiosks: list[Kiosk] = Field(
        default_factory=list, max_length=1_000, description="Wall screens with a bearer token."
    )
    metrics: MetricsConfig = Field(
        default_factory=MetricsConfig, description="Access to /metrics for Prometheus scrapers."
    )
    # Validated from {} rather than built, so the default path is resolved like a written one.
    audit: AuditConfig = Field(
        default_factory=dict,  # type: ignore[arg-type]
        validate_default=True,
        description="The audit journal.",
    )
    sessions: SessionConfig = Field(
        default_factory=SessionConfig, description="Browser sessions."
    )
    limits: LimitsConfig = Field(
        default_factory=LimitsConfig, description="Per-user, per-address and global limits."
    )
    rtsp: RtspConfig = Field(
        default_factory=RtspConfig, description="The RTSP server for other video systems."
    )
    onvif: OnvifConfig = Field(
        default_factory=OnvifConfig, description="The ONVIF facade's discovery (WS-Discovery)."
    )
    cluster: ClusterConfig | None = Field(
        None, description="Nodes sharing the cameras over NATS; absent: this node runs alone."
    )

    _source_path: str = PrivateAttr("")
    _fingerprint: str = PrivateAttr("")  # fingerprint(), once computed
    _communes_by_id: dict[str, Commune] = PrivateAttr(default_factory=dict)
    _cameras_by_id: dict[str, Camera] = PrivateAttr(default_factory=dict)
    _walls_by_id: dict[str, Wall] = PrivateAttr(default_factory=dict)
    _users_by_name: dict[str, User] = PrivateAttr(default_factory=dict)
    _kiosks_by_id: dict[str, Kiosk] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_references(self, info: ValidationInfo) -> Self:
        problems = [
            *_duplicates("communes", "id", (commune.id for commune in self.communes)),
            *_duplicates("cameras", "id", (camera.id for camera in self.cameras)),
            *_duplicates("walls", "id", (wall.id for wall in self.walls)),
            *_duplicates("users", "name", (user.name for user in self.users)),
            *_duplicates("kiosks", "id", (kiosk.id for kiosk in self.kiosks)),
            *_shared_tokens(self.kiosks, self.metrics),
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
            for position, commune_id in enumerate(wall.communes):
                if commune_id not in commune_ids:
                    reason = _unknown("commune", commune_id, commune_ids)
                    problems.append((("walls", index, "communes", position), reason))
        wall_ids = {wall.id for wall in self.walls}
        for index, user in enumerate(self.users):
            for key, noun, known in (("communes", "commune", commune_ids),
                                     ("cameras", "camera", camera_ids), ("walls", "wall", wall_ids)):
                for position, wanted in enumerate(getattr(user, key)):
                    if wanted not in known:
                        problems.append((("users", index, key, position), _unknown(noun, wanted, known)))
        for index, kiosk in enumerate(self.kiosks):
            if kiosk.wall not in wall_ids:
                problems.append((("kiosks", index, "wall"), _unknown("wall", kiosk.wall, wall_ids)))
        if problems:
            raise problems_error(problems)
        self._source_path = (info.context or {}).get("source", "")
        self._communes_by_id = {commune.id: commune for commune in self.communes}
        self._cameras_by_id = {camera.id: camera for camera in self.cameras}
        self._walls_by_id = {wall.id: wall for wall in self.walls}
        self._users_by_name = {user.name: user for user in self.users}
        self._kiosks_by_id = {kiosk.id: kiosk for kiosk in self.kiosks}
        return self

    def fingerprint(self) -> str:
        """A hash of what every node of a cluster must share (cameras, walls, people,
        limits...), leaving out what is each node's own (addresses, node name, journal)."""
        if not self._fingerprint:
            shared = self.model_dump(mode="json", exclude={"server", "rtsp", "cluster", "audit", "onvif"})
            self._fingerprint = hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:16]
        return self._fingerprint

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

    def user(self, name: str) -> User | None:
        """The user with this exact login name (names are lowercase in the file)."""
        return self._users_by_name.get(name)

    def kiosk(self, kiosk_id: str) -> Kiosk | None:
        return self._kiosks_by_id.get(kiosk_id)

    def secrets(self) -> list[str]:
        """What a log must never show: camera, users' stream and NATS passwords."""
        return [secret for secret in (*(camera.password() for camera in self.cameras),
                                      *(user.stream_password() for user in self.users),
                                      self.cluster.password() if self.cluster else None) if secret]


def _duplicates(key: str, field: str, values: Iterable[str]) -> Iterator[tuple[Loc, str]]:
    first: dict[str, int] = {}
    for index, value in enumerate(values):
        if value in first:
            yield (
                (key, index, field),
                f"duplicate {field} {value!r}, already used by {key}[{first[value]}]",
            )
        else:
            first[value] = index


def _shared_tokens(kiosks: Iterable[Kiosk], metrics: MetricsConfig) -> Iterator[tuple[Loc, str]]:
    """A token identifies one kiosk or the scraper: the same hash twice is ambiguous."""
    first: dict[str, str] = {}
    for index, kiosk in enumerate(kiosks):
        if kiosk.token_hash in first:
            yield (
                ("kiosks", index, "token_hash"),
                f"the same token as {first[kiosk.token_hash]}: run `vigie make-token` "
                "for each kiosk",
            )
        else:
            first[kiosk.token_hash] = f"kiosks[{index}]"
    if metrics.token_hash is not None and metrics.token_hash in first:
        yield (
            ("metrics", "token_hash"),
            f"the same token as {first[metrics.token_hash]}: give scrapers a token of their own",
        )


def _unknown(noun: str, wanted: str, known: set[str]) -> str:
    close = difflib.get_close_matches(wanted, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {noun} {wanted!r}{hint}"
