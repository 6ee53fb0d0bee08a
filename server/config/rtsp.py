"""The RTSP server for other video systems (server/outputs/rtsp/): where it listens, its
UDP ports, its TLS certificate, and how long a silent session lives."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Self

from pydantic import AfterValidator, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from server.config.types import Loc, Section, problems_error, split_listen


def _check_port_range(value: str) -> str:
    match = re.fullmatch(r"([0-9]{1,5})-([0-9]{1,5})", value)
    if match is None:
        raise ValueError("expected FIRST-LAST, e.g. 8000-8001")
    first, last = int(match[1]), int(match[2])
    if not 1024 <= first < last <= 65535:
        raise ValueError("ports must be between 1024 and 65535, the first below the last")
    if first % 2:
        raise ValueError("the first port must be even (RTP on an even port, RTCP on the next)")
    return value


PortRange = Annotated[str, Field(min_length=3, max_length=11), AfterValidator(_check_port_range)]


class TlsFiles(Section):
    cert: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        description="PEM certificate chain; relative paths start at the configuration file's folder.")
    key: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        description="PEM private key; relative paths start at the configuration file's folder.")

    _cert_path: Path = PrivateAttr(default_factory=Path)
    _key_path: Path = PrivateAttr(default_factory=Path)

    @model_validator(mode="after")
    def _check_files(self, info: ValidationInfo) -> Self:
        base_dir = (info.context or {}).get("base_dir") or os.getcwd()
        problems: list[tuple[Loc, str]] = []
        for key in ("cert", "key"):
            path = Path(os.path.abspath(os.path.join(base_dir, getattr(self, key))))
            if not path.is_file():
                problems.append(((key,), "no readable file at that path"))
            setattr(self, f"_{key}_path", path)
        if problems:
            raise problems_error(problems)
        return self

    def paths(self) -> tuple[Path, Path]:
        return self._cert_path, self._key_path


class RtspConfig(Section):
    listen: str | None = Field(
        "0.0.0.0:8554", max_length=300,
        description="Address of the RTSP server as HOST:PORT; null turns it off.")
    udp_ports: PortRange = Field(
        "8000-8001",
        description="UDP ports for RTP over UDP: RTP is sent from the first (even) port and "
        "RTCP from the next, for every session.")
    tls: TlsFiles | None = Field(
        None, description="Serve RTSPS (RTSP over TLS) with this certificate and key instead "
        "of plain RTSP: for links that leave the centre. Basic authentication is then offered too.")
    session_timeout: int = Field(
        60, ge=10, le=3600, strict=True,
        description="Seconds without a request or an RTCP report before a session is ended.")

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen(value)
        return value

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0] if self.listen else ""

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1] if self.listen else 0

    @property
    def rtp_port(self) -> int:
        return int(self.udp_ports.split("-")[0])
