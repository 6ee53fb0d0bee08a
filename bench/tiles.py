"""CPU per tile of the normaliser, by path: OpenCV planes vs FFmpeg's swscale.

    python -m bench.tiles [--threads N] [--frames N]

Decodes one of the bench's 640x360 H.264 clips, then times `Normaliser.normalise` for a
few tile sizes, once through the fast path (OpenCV resize of the planes + range in one
saturating multiply-add) and once forced through swscale (the fallback for other pixel
formats and strong downscales). CPU time of this process (process_time), best of three
rounds; on a shared machine compare the two columns of one run, not runs with each other.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import cv2

import ingest.picture.normalise as normalise
from bench.clips import RECORD, make_clips

SIZES = [(480, 270), (640, 360), (960, 540), (320, 240)]


def decode_clip(path: Path) -> list[av.VideoFrame]:
    data = path.read_bytes()
    codec = av.CodecContext.create("h264", "r")
    frames: list[av.VideoFrame] = []
    offset = 0
    while offset < len(data):
        length, _ = RECORD.unpack_from(data, offset)
        offset += RECORD.size
        frames.extend(codec.decode(av.Packet(data[offset : offset + length])))
        offset += length
    return frames


def per_tile_us(normaliser: normalise.Normaliser, frames: list[av.VideoFrame], count: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for index in range(count):
            normaliser.normalise(frames[index % len(frames)])
        best = min(best, (time.process_time() - started) / count * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (Vigie: 1)")
    parser.add_argument("--frames", type=int, default=600)
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    folder = Path(tempfile.gettempdir()) / "vigie-bench-clips-v1"
    clip = make_clips(folder, [11], width=640, height=360, fps=15, gop=15, frames=60)[0]
    frames = decode_clip(clip)
    print(f"source 640x360 {frames[0].format.name}, {len(frames)} frames; cv2 threads {args.threads}")
    print(f"{'tile':>9} {'overlay':>7} {'opencv us':>10} {'swscale us':>11} {'ratio':>6}")
    for size in SIZES:
        for overlay in (False, True):
            tile = normalise.Normaliser("bench", size, 0, normalise.Label("Mairie", "Le Bourg"),
                                        overlay=overlay)
            fast = per_tile_us(tile, frames, args.frames)
            saved, normalise.FAST_FORMATS = normalise.FAST_FORMATS, {}
            try:
                slow = per_tile_us(tile, frames, args.frames)
            finally:
                normalise.FAST_FORMATS = saved
            print(f"{size[0]:>4}x{size[1]:<4} {'yes' if overlay else 'no':>7} {fast:10.0f} "
                  f"{slow:11.0f} {fast / slow:6.2f}")


if __name__ == "__main__":
    main()
