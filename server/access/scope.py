"""Who may see what: pure permission rules, table-tested. The default is refuse.

A principal is whoever made a request: a user (admin, operator, police), a kiosk bound to
one wall, or a metrics scraper. Police see the cameras of their communes and nothing else
(Conseil constitutionnel 2021-817 DC: a legal requirement): a wall is visible to them only
if it is meant for one of their communes (its automatic wall, or a configured wall listing
the commune) and every camera on it now is theirs. What a wall shows changes (edits, tours,
reloads): these rules are asked again at every change (server/access/views.py).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


class Role(str, enum.Enum):
    ADMIN = "admin"
    OPERATOR = "operator"
    POLICE = "police"
    PARTNER = "partner"  # another centre's or force's video system (RTSP)
    KIOSK = "kiosk"
    METRICS = "metrics"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
EVERY_OUTPUT = frozenset({"web", "rtsp"})


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    communes: frozenset[str] = frozenset()  # police and partners
    wall: str | None = None                 # kiosk only
    cameras: frozenset[str] = frozenset()   # partner only: cameras besides its communes'
    walls: frozenset[str] = frozenset()     # partner only
    outputs: frozenset[str] = EVERY_OUTPUT  # how it may read streams: web, rtsp
    allowed_from: tuple[Network, ...] = ()  # empty: from anywhere
    valid_until: float | None = None        # Unix time its authorisation ends

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.ADMIN, Role.OPERATOR)

    @property
    def scoped(self) -> bool:
        """Sees only some cameras, chosen by commune (and, for partners, by name)."""
        return self.role in (Role.POLICE, Role.PARTNER)


def refusal(principal: Principal, output: str, address: str, now: float) -> str | None:
    """Why this principal may not connect now through `output` from `address`, or None."""
    if output not in principal.outputs:
        return f"the {output} output is not allowed for this user"
    if principal.valid_until is not None and now >= principal.valid_until:
        return "this user's authorisation has ended"
    if principal.allowed_from:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return "connections from this address are not allowed for this user"
        if not any(ip in network for network in principal.allowed_from):
            return "connections from this address are not allowed for this user"
    return None


def can_view_camera(principal: Principal, camera_commune: str | None,
                    camera_id: str | None = None) -> bool:
    """`camera_commune` is None for an unknown camera: refused like a foreign one."""
    if camera_commune is None:
        return False
    if principal.sees_everything:
        return True
    if principal.scoped:
        return camera_commune in principal.communes or (
            camera_id is not None and camera_id in principal.cameras)
    return False


def can_view_wall(principal: Principal, wall_id: str, wall_communes: Iterable[str],
                  camera_communes: Iterable[str | None],
                  camera_ids: Sequence[str] | None = None) -> bool:
    """A wall is visible if the principal may see it as a whole. `wall_communes`: the
    communes the wall is meant for (a commune's automatic wall: that commune; a configured
    wall: its `communes`, often none). Police need one of those communes to be theirs and
    every camera on the wall now to be theirs: an operator may put any camera on any wall,
    which then closes to police rather than showing them a foreign camera. A kiosk sees its
    one wall, and if the wall is meant for communes, only while its cameras are theirs."""
    if principal.sees_everything:
        return True
    if principal.role == Role.KIOSK:
        # A screen bound to a wall meant for some communes (a municipal police station's)
        # shows it only while every camera on it is theirs; the centre's own screens
        # (a wall without communes) show whatever the operators put on it.
        wall_communes = frozenset(wall_communes)
        return principal.wall == wall_id and (
            not wall_communes or all(commune in wall_communes for commune in camera_communes))
    if principal.role == Role.PARTNER and wall_id in principal.walls:
        # Named in the prefect's authorisation: the wall as the centre's operators drive it.
        return True
    if principal.scoped:
        communes = list(camera_communes)
        ids = list(camera_ids) if camera_ids is not None else [None] * len(communes)
        return (not principal.communes.isdisjoint(wall_communes)
                and all(can_view_camera(principal, c, i) for c, i in zip(communes, ids)))
    return False


def can_view_cameras(principal: Principal, camera_communes: Iterable[str | None],
                     camera_ids: Sequence[str] | None = None) -> bool:
    """An ad-hoc mosaic: every one of its cameras (at least one) must be visible."""
    communes = list(camera_communes)
    ids = list(camera_ids) if camera_ids is not None else [None] * len(communes)
    return bool(communes) and all(can_view_camera(principal, c, i) for c, i in zip(communes, ids))


def visible_cameras(principal: Principal, camera_communes: Mapping[str, str]) -> list[str]:
    """Ids of the cameras a principal may list, in config order."""
    return [camera_id for camera_id, commune in camera_communes.items()
            if can_view_camera(principal, commune, camera_id)]


def can_read_metrics(principal: Principal) -> bool:
    return principal.role in (Role.ADMIN, Role.METRICS)


def can_administer(principal: Principal) -> bool:
    """Read the journal, reload the config."""
    return principal.role == Role.ADMIN


def can_drive_walls(principal: Principal) -> bool:
    """Change a wall's cells or layout, start a tour."""
    return principal.role in (Role.ADMIN, Role.OPERATOR)
