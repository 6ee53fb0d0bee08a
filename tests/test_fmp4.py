"""The wall's H.264 encoder: every canvas comes out as itself, keyframes where asked."""

from __future__ import annotations

import io
import time

import av
import numpy as np

from ingest.fmp4 import Fmp4Encoder
from ingest.tiles import new_i420

WIDTH, HEIGHT, FPS = 320, 180, 15.0


def test_each_canvas_comes_out_at_once_as_itself_and_only_asked_frames_are_forced() -> None:
    """The encoder refills one input frame per canvas: a decoded frame must show its own
    canvas (not the one before), and a keyframe forced once must not stick to the frames
    after it (a kept picture type would make every later frame a keyframe)."""
    encoder = Fmp4Encoder(WIDTH, HEIGHT, FPS, gop_seconds=10.0)  # GOP of 150: only forced ones
    levels = [40 + 12 * index for index in range(16)]
    fragments = []
    try:
        for index, level in enumerate(levels):
            canvas = new_i420(WIDTH, HEIGHT, luma=level)
            out = encoder.encode(canvas, time.time(), index, force_keyframe=index == 6)
            # Its own fragment, at once: not held until the next canvas (FFmpeg's muxer did).
            assert [fragment.seq for fragment in out] == [index], (index, out)
            fragments += out
            time.sleep(1 / FPS)  # the encoder stamps by the clock
        init = encoder.init_segment
    finally:
        encoder.close()
    assert init and len(fragments) == len(levels)
    keyframes = [index for index, fragment in enumerate(fragments) if fragment.keyframe]
    assert keyframes == [0, 6], keyframes
    container = av.open(io.BytesIO(init + b"".join(f.data for f in fragments)), format="mp4")
    try:
        decoded = [frame.to_ndarray(format="gray").mean() for frame in container.decode(video=0)]
    finally:
        container.close()
    # Full-range canvas, limited-range gray conversion aside: the order of the levels shows.
    assert len(decoded) == len(levels)
    assert all(later > earlier + 5 for earlier, later in zip(decoded, decoded[1:]))


def test_a_remuxed_camera_packet_leaves_at_once_and_plays() -> None:
    """A camera's own H.264, remuxed for a single-camera view: each packet's fragment is
    delivered when the packet comes (FFmpeg's muxer held it for the next one: a frame of
    delay, 200 ms on a 5 fps village camera), after the init segment, and the whole stream
    decodes to every picture the camera sent."""
    from ingest.remux import Remuxer

    source = io.BytesIO()
    levels = [40 + 12 * index for index in range(12)]
    with av.open(source, mode="w", format="h264") as out:
        stream = out.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency", "g": "5"}
        for level in levels:
            frame = av.VideoFrame.from_ndarray(new_i420(WIDTH, HEIGHT, luma=level), format="yuv420p")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    delivered = []
    remuxer = Remuxer(delivered.append)
    source.seek(0)
    with av.open(source, format="h264") as camera:
        video = camera.streams.video[0]
        for count, packet in enumerate(camera.demux(video), 1):
            if packet.size == 0:
                continue
            if packet.dts is None:  # raw H.264 has no timestamps: the camera's clock at 5 fps
                packet.pts = packet.dts = round((count - 1) / 5 / video.time_base)
            remuxer(packet, video)
            # The init segment, then one fragment per packet so far: none waits.
            assert [f.header for f in delivered] == [True] + [False] * count, count
    remuxer.close()
    with av.open(io.BytesIO(b"".join(f.data for f in delivered)), format="mp4") as played:
        decoded = [frame.to_ndarray(format="gray").mean() for frame in played.decode(video=0)]
    assert len(decoded) == len(levels)
    assert all(later > earlier + 5 for earlier, later in zip(decoded, decoded[1:]))
