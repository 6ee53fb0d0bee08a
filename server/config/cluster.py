"""Several Vigie nodes sharing the cameras over NATS with JetStream (server/cluster/). Absent:
Vigie runs alone."""

from __future__ import annotations

import re
from typing import Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from server.config.types import Identifier, Section


def _check_nats_url(value: str) -> str:
    if not re.fullmatch(r"(nats|tls)://[A-Za-z0-9.\-\[\]:]{1,260}", value):
        raise ValueError("expected nats://HOST:PORT (or tls://HOST:PORT), without credentials")
    return value


NatsUrl = Annotated[str, Field(min_length=8, max_length=300), AfterValidator(_check_nats_url)]


class ClusterConfig(Section):
    nats: list[NatsUrl] = Field(min_length=1, max_length=16,
                                description="NATS servers (with JetStream) the nodes meet on.")
    node: Identifier = Field(description="This node's name, unique in the cluster.")
    lease_seconds: float = Field(
        3.0, ge=1, le=60, strict=True, allow_inf_nan=False,
        description="A camera's lease lives this long unless renewed: a dead node's cameras "
        "are taken over after it.")
    renew_seconds: float = Field(
        1.0, ge=0.2, le=20, strict=True, allow_inf_nan=False,
        description="Seconds between lease renewals and ownership checks.")

    @model_validator(mode="after")
    def _check_periods(self) -> Self:
        if self.renew_seconds * 2 > self.lease_seconds:
            from server.config.types import problems_error

            raise problems_error([(("renew_seconds",), "must be at most half of lease_seconds")])
        return self
