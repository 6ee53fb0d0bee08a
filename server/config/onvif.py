"""The ONVIF facade's discovery (server/outputs/onvif/discovery.py): WS-Discovery on UDP,
off by default."""

from __future__ import annotations

from pydantic import Field, field_validator

from server.config.types import Section, split_listen


class OnvifConfig(Section):
    discovery: bool = Field(
        False, description="Answer WS-Discovery probes (UDP) with Vigie's ONVIF address, and "
        "announce it (Hello) when starting and its end (Bye) when stopping.")
    discovery_port: int = Field(
        3702, ge=1, le=65535, strict=True,
        description="UDP port WS-Discovery probes are read on (the standard's is 3702).")
    announce_to: str = Field(
        "239.255.255.250:3702", max_length=300,
        description="Where Hello and Bye go, as HOST:PORT: the standard's multicast group; "
        "a unicast address keeps announcements inside a segmented network.")

    @field_validator("announce_to")
    @classmethod
    def _check_announce_to(cls, value: str) -> str:
        split_listen(value)
        return value
