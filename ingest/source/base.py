"""What every camera source is: its spec, what it yields, how it fails, and the registry
that opens a URL by its scheme.

The registry knows no protocol (STYLE.md): each source module registers its schemes with
`register_scheme` when it is imported (ingest/source/__init__.py imports them all). A
source knows nothing of tiles or walls; it honours one question from its worker: "what is
to be decoded now?" (ingest/source/decoding.py says what follows from it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import av

from ingest.source.decoding import Decoding


@dataclass(frozen=True)
class SourceSpec:
    url: str
    username: str | None = None
    password: str | None = None
    transport: str = "tcp"
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    # What opening this camera taught its sources, kept with the spec (one per camera
    # worker, new when the camera's config changes): e.g. "ffmpeg-only".
    learned: set[str] = field(default_factory=set, compare=False, repr=False)


@dataclass(frozen=True)
class Packet:
    """What a source yields: the size of a received packet, a frame if one was decoded, and
    for PyAV sources the compressed packet and its stream (remuxing without decoding)."""

    size: int
    frame: av.VideoFrame | None = None
    raw: av.Packet | None = None
    stream: av.video.stream.VideoStream | None = None
    # Not decoded on purpose (behind the camera: skipping to a keyframe), not for garbage.
    skipped: bool = False


class SourceError(Exception):
    """A source failed; `reason` is short, human-readable and free of secrets."""

    def __init__(self, reason: str, definitive: bool = False, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        # The camera answered and said no (refused, 401, 404): it is not merely hung.
        self.definitive = definitive
        self.timed_out = timed_out


class Source(Protocol):
    codec: str
    behind: float | None  # seconds behind the camera's clock (ingest/source/lag.py), if known
    lag_skips: int  # times decoding fell behind and skipped to a keyframe

    def sample_aspect(self) -> float: ...

    def packets(self, decoding: Callable[[], Decoding],
                live: threading.Event | None = None) -> Iterator[Packet]:
        """Packets, decoded as `decoding()` says (ingest/source/decoding.py). `live` is set while
        someone needs the packets as they come: a remux of the camera's stream, or its tiles
        decoded in full. A source that reads an idle or reduced camera in bursts reads it as
        data comes then, and wakes when it is set."""
        ...

    def close(self) -> None: ...



SourceFactory = Callable[[SourceSpec], Source]
_SCHEMES: dict[str, SourceFactory] = {}


def register_scheme(scheme: str, factory: SourceFactory) -> None:
    """Open URLs of `scheme` with `factory` (called by each source module at import)."""
    _SCHEMES[scheme] = factory


def schemes() -> frozenset[str]:
    return frozenset(_SCHEMES)


def open_source(spec: SourceSpec) -> Source:
    scheme = urlsplit(spec.url).scheme.lower()
    factory = _SCHEMES.get(scheme)
    if factory is None:
        raise SourceError(f"unsupported URL scheme {scheme!r}")
    return factory(spec)
