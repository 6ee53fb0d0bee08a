"""The floor: PyAV decoding RTSP streams, plus ONE encode per wall of the output, nothing else.

    python -m bench.decode_floor [--encode none|jpeg|h264] [--walls K] [--grid C] \
        [--size WxH] [--fps F] URL [URL ...]

One thread per stream decodes (default slice threading, as Vigie). With --encode, each
decoded frame is also scaled to its cell (bilinear, as Vigie), so the wall that is encoded
is the picture Vigie's wall shows, not a crop: the encoder's cost depends on what it
encodes (a crop keeps the test pattern's whole-pixel motion, which x264 finds for free; scaled
by 3/4 the motion is sub-pixel: a crop's H.264 wall came out at 33 KB a frame, Vigie's and
xstack's at 114-128 KB). The scaling is not part of the floor: each decode thread measures
its own CPU time in it (`time.thread_time`), reported apart, and the bench subtracts it.
One thread per wall ticks at the wall's fps: it copies each cell's latest scaled picture
into a YUV420 canvas (a memcpy of the planes) and encodes it once: JPEG with simplejpeg
from the planes (quality 80, as Vigie) or
H.264 with PyAV's libx264 (ultrafast, zerolatency, baseline, 1 s GOP, CRF 26, as Vigie).
Stream i belongs to wall i // (C*C), cell i % (C*C). Encoded bytes are thrown away.

Run by the bench as a separate process so its CPU time can be read from /proc. Protocol on
stdin/stdout (one line each):
  - prints `READY` once every stream has decoded at least one frame (or failed);
  - on each stdin line, prints a JSON object {"frames": [...], "errors": [...],
    "scale_cpu": [...], "encoded": [...], "encoded_bytes": [...]} (counts so far per
    stream / per wall; scale_cpu in CPU seconds);
  - exits when stdin closes (so it never outlives the bench).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from fractions import Fraction

import av
import cv2
import numpy as np

# As Vigie: reads bounded by FFmpeg's socket timeout, not PyAV's (which takes the GIL around
# every socket read, see ingest/source/).
OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "0", "probesize": "32",
           "timeout": "5000000"}


cv2.setNumThreads(1)  # as Vigie (ingest/picture/normalise.py): the streams are the parallelism


class Stream:
    def __init__(self, url: str) -> None:
        self.url = url
        self.frames = 0
        self.error: str | None = None
        self.first_frame = threading.Event()
        # Set by the wall's encoder before decoding starts: the cell's Y, U, V planes, which
        # each decoded frame is scaled into (the encoder copies them into its canvas).
        self.cell: list[np.ndarray] | None = None
        self.scaled = False
        self.scale_cpu = 0.0  # CPU seconds spent scaling, not part of the floor

    def run(self, receive_only: bool = False) -> None:
        try:
            container = av.open(self.url, options=OPTIONS, timeout=(5, None))
            try:
                if receive_only:  # packets only: what receiving costs before any decode
                    for packet in container.demux(video=0):
                        if packet.size:
                            self.frames += 1
                            self.first_frame.set()
                else:
                    for frame in container.decode(video=0):
                        if self.cell is not None:
                            self._scale(frame)
                        self.frames += 1
                        self.first_frame.set()
            finally:
                container.close()
            self.error = "stream ended"
        except Exception as error:  # noqa: BLE001 - reported to the caller
            self.error = f"{type(error).__name__}: {error}"
        self.first_frame.set()  # never leave the caller waiting on a dead stream

    def _scale(self, frame: av.VideoFrame) -> None:
        """The frame's planes scaled into the cell, timed on this thread's CPU clock."""
        if frame.format.name not in ("yuv420p", "yuvj420p"):
            return
        started = time.thread_time()
        for plane, source, target in zip(frame.planes, planes(frame), self.cell):
            cv2.resize(source[:, : plane.width], (target.shape[1], target.shape[0]),
                       dst=target, interpolation=cv2.INTER_LINEAR)
        self.scaled = True
        self.scale_cpu += time.thread_time() - started


def planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """The Y, U, V planes of a yuv420p frame as 2-D views (no copy; line padding included)."""
    out = []
    for plane in frame.planes[:3]:
        out.append(np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size))
    return out


class WallEncoder:
    def __init__(self, streams: list[Stream], kind: str, size: tuple[int, int], grid: int,
                 fps: float) -> None:
        self.streams, self.kind, self.fps = streams, kind, fps
        self.width, self.height = size
        self.grid = grid
        self.encoded = 0
        self.encoded_bytes = 0
        self.error: str | None = None
        self.canvas = np.zeros((self.height * 3 // 2, self.width), np.uint8)
        self.canvas[self.height:] = 128
        self.stop = threading.Event()
        for index, stream in enumerate(streams):
            _, _, cw, ch = self._cell(index)
            stream.cell = [np.zeros((ch, cw), np.uint8), np.full((ch // 2, cw // 2), 128, np.uint8),
                           np.full((ch // 2, cw // 2), 128, np.uint8)]

    def _cell(self, index: int) -> tuple[int, int, int, int]:
        row, column = divmod(index, self.grid)
        x0 = int(column * self.width / self.grid) // 2 * 2
        x1 = int((column + 1) * self.width / self.grid) // 2 * 2
        y0 = int(row * self.height / self.grid) // 2 * 2
        y1 = int((row + 1) * self.height / self.grid) // 2 * 2
        return x0, y0, x1 - x0, y1 - y0

    def _compose(self) -> None:
        w, h = self.width, self.height
        cy = self.canvas[:h]
        chroma = self.canvas[h:].reshape(-1)
        quarter = (h // 2) * (w // 2)
        cu = chroma[:quarter].reshape(h // 2, w // 2)
        cv = chroma[quarter:].reshape(h // 2, w // 2)
        for index, stream in enumerate(self.streams):
            if not stream.scaled:
                continue
            x, y, cw, ch = self._cell(index)
            sy, su, sv = stream.cell
            cy[y : y + ch, x : x + cw] = sy
            cu[y // 2 : (y + ch) // 2, x // 2 : (x + cw) // 2] = su
            cv[y // 2 : (y + ch) // 2, x // 2 : (x + cw) // 2] = sv

    def run(self) -> None:
        try:
            encode = self._jpeg() if self.kind == "jpeg" else self._h264()
            period = 1.0 / self.fps
            due = time.monotonic()
            while not self.stop.is_set():
                self._compose()
                self.encoded_bytes += encode()
                self.encoded += 1
                due += period
                now = time.monotonic()
                if due < now:
                    due = now  # late: skip ticks rather than burst (as Vigie's compositor)
                self.stop.wait(due - now)
        except Exception as error:  # noqa: BLE001
            self.error = f"encoder: {type(error).__name__}: {error}"

    def _jpeg(self):
        import simplejpeg

        w, h = self.width, self.height
        y = self.canvas[:h]
        chroma = self.canvas[h:].reshape(-1)
        quarter = (h // 2) * (w // 2)
        u = chroma[:quarter].reshape(h // 2, w // 2)
        v = chroma[quarter:].reshape(h // 2, w // 2)

        def encode() -> int:
            return len(simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=80, fastdct=True))

        return encode

    def _h264(self):
        from av.video.reformatter import ColorRange

        from ingest.encode.fmp4 import x264_threads

        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = self.width, self.height, "yuv420p"
        rate = Fraction(self.fps).limit_denominator(1000)
        codec.time_base = 1 / rate
        codec.framerate = rate
        codec.color_range = ColorRange.JPEG
        gop = str(max(1, round(self.fps)))
        codec.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                         "g": gop, "keyint_min": gop, "bf": "0", "crf": "26",
                         "sc_threshold": "0",
                         # Vigie's choice of threads too (ingest/encode/fmp4.py): the floor is the
                         # best this encoder does, not its defaults.
                         "threads": str(x264_threads(self.width, self.height))}
        pts = [0]

        def encode() -> int:
            frame = av.VideoFrame.from_ndarray(self.canvas, format="yuv420p")
            frame.pts = pts[0]
            pts[0] += 1
            return sum(packet.size for packet in codec.encode(frame))

        return encode


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.decode_floor")
    parser.add_argument("--encode", choices=("none", "jpeg", "h264", "receive"), default="none",
                        help="receive: demux only, no decode (what holding the streams costs)")
    parser.add_argument("--walls", type=int, default=1)
    parser.add_argument("--grid", type=int, default=4)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench stops us (stdin EOF / SIGTERM)
    streams = [Stream(url) for url in args.urls]
    encoders: list[WallEncoder] = []
    if args.encode not in ("none", "receive"):  # before decoding: the cells to scale into
        size = tuple(int(part) for part in args.size.split("x"))
        cells = args.grid * args.grid
        for wall in range(args.walls):
            encoders.append(WallEncoder(streams[wall * cells : (wall + 1) * cells], args.encode,
                                        size, args.grid, args.fps))
    for index, stream in enumerate(streams):
        threading.Thread(target=stream.run, args=(args.encode == "receive",),
                         name=f"decode-{index}", daemon=True).start()
    for stream in streams:
        stream.first_frame.wait()
    for wall, encoder in enumerate(encoders):
        threading.Thread(target=encoder.run, name=f"encode-{wall}", daemon=True).start()
    print("READY", flush=True)
    for _line in sys.stdin:
        print(json.dumps({"frames": [s.frames for s in streams],
                          "errors": [s.error for s in streams],
                          "scale_cpu": [s.scale_cpu for s in streams],
                          "encoded": [e.encoded for e in encoders],
                          "encoded_bytes": [e.encoded_bytes for e in encoders],
                          "encode_errors": [e.error for e in encoders]}), flush=True)
    sys.stdout.flush()
    os._exit(0)  # decode threads may sit in FFmpeg calls: do not wait for them


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__.split("\n\n")[1])
    main(sys.argv[1:])
