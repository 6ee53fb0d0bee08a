"""What every encoder makes (an encoded frame, with what its outputs need to send it), the
shape of an encoder, and the registry of output formats by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class EncodedFrame:
    data: bytes
    seq: int
    wall_time: float  # when the canvas was composed (time.time())
    keyframe: bool = True
    content_type: str = "image/jpeg"
    header: bool = False  # an fMP4 init segment, not a frame
    # Renderings of this frame for one output (the MJPEG part with its headers), built once
    # on the event loop however many viewers send it.
    renderings: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)


class WallEncoder(Protocol):
    """One output format of a composed picture: a canvas in, frames out. Made on the first
    viewer of its format, closed after the last (the next viewer gets a fresh encoder)."""

    def encode(self, canvas: np.ndarray, seq: int, wall_time: float,
               keyframe: bool = False) -> list[EncodedFrame]:
        """Frames for this canvas, in order (an init segment first, once, if the format
        has one); `keyframe` asks for one now (a dependent format's new viewer)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Format:
    """An output format, as the compositor, the streams and the outputs know it: by this
    record from the registry, never by its name in their code."""

    name: str
    # Frames depend on each other (H.264): a viewer that lost one skips to the next
    # keyframe, and a new viewer needs one. Independent ones (JPEG) may be skipped freely.
    dependent: bool
    buffer_frames: int  # frames a viewer may have waiting before its hub drops some
    make: Callable[[int, int, float], WallEncoder]  # width, height, fps


_FORMATS: dict[str, Format] = {}


def register_format(output: Format) -> None:
    """Called by each encoder module when imported (ingest/encode/__init__.py imports them)."""
    _FORMATS[output.name] = output


def formats() -> dict[str, Format]:
    """Every registered format, by name, in registration order."""
    return dict(_FORMATS)
