"""The wall's H.264 encoder: every canvas comes out as itself, keyframes where asked."""

from __future__ import annotations

import io
import time

import av
import numpy as np

from ingest.encode.fmp4 import Fmp4Encoder
from ingest.picture.tiles import new_i420

WIDTH, HEIGHT, FPS = 320, 180, 15.0


def test_each_fragment_decodes_to_its_own_canvas_and_only_asked_frames_are_forced() -> None:
    """The encoder refills one input frame per canvas: a decoded frame must show its own
    canvas (not the one before), and a keyframe forced once must not stick to the frames
    after it (a kept picture type would make every later frame a keyframe)."""
    encoder = Fmp4Encoder(WIDTH, HEIGHT, FPS, gop_seconds=10.0)  # GOP of 150: only forced ones
    levels = [40 + 12 * index for index in range(16)]
    fragments = []
    try:
        for index, level in enumerate(levels):
            canvas = new_i420(WIDTH, HEIGHT, luma=level)
            fragments += encoder.encode(canvas, time.time(), index, force_keyframe=index == 6)
            time.sleep(1 / FPS)  # the encoder stamps by the clock
        fragments += encoder.encode(new_i420(WIDTH, HEIGHT), time.time(), 99)  # flushes the last
        init = encoder.init_segment
    finally:
        encoder.close()
    assert init and len(fragments) >= len(levels)
    keyframes = [index for index, fragment in enumerate(fragments[: len(levels)]) if fragment.keyframe]
    assert keyframes == [0, 6], keyframes
    container = av.open(io.BytesIO(init + b"".join(f.data for f in fragments)), format="mp4")
    try:
        decoded = [frame.to_ndarray(format="gray").mean() for frame in container.decode(video=0)]
    finally:
        container.close()
    # Full-range canvas, limited-range gray conversion aside: the order of the levels shows.
    assert len(decoded) >= len(levels)
    assert all(later > earlier + 5 for earlier, later in zip(decoded, decoded[1 : len(levels)]))
