"""What every encoder makes: an encoded frame, with what its outputs need to send it."""

from __future__ import annotations

from dataclasses import dataclass, field


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
