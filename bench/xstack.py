"""The peer baseline: Debian's ffmpeg reading the same RTSP inputs and making the same walls
with `scale` + `xstack`, encoded like Vigie's output (MJPEG, or H.264 in fragmented MP4),
written to pipes that this module reads, noting when each output frame arrives.

Settings a user would pick for live inputs: RTSP over TCP; `-analyzeduration 0 -probesize 32`
per input (without them each input takes ~2 s to open, one after another: FIELD-NOTES);
`scale=W:H` (default bicubic) per input, `xstack` at pixel positions, `-r FPS` out.
MJPEG: `-c:v mjpeg -q:v 5 -f mpjpeg`. H.264: libx264 ultrafast, zerolatency, baseline,
1 s GOP, CRF 26 (Vigie's settings) in MP4 fragmented per frame (Vigie's fMP4 framing).
Wall k (one xstack, one output, one pipe) takes inputs k*C*C .. (k+1)*C*C-1.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
from pathlib import Path

CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"


class MultipartParser:
    """Incremental multipart/x-mixed-replace (ffmpeg's mpjpeg) -> [(arrival, jpeg)]."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.length: int | None = None

    def feed(self, data: bytes, now: float) -> list[tuple[float, bytes]]:
        self.buffer += data
        out = []
        while True:
            if self.length is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return out
                match = CONTENT_LENGTH.search(bytes(self.buffer[:end]))
                del self.buffer[: end + 4]
                if match is None:
                    continue  # a preamble or a part without length: skip it
                self.length = int(match.group(1))
            if len(self.buffer) < self.length:
                return out
            out.append((now, bytes(self.buffer[: self.length])))
            del self.buffer[: self.length]
            self.length = None


class Fmp4Parser:
    """Incremental fragmented MP4 -> [(arrival, ftyp+moov)] then [(arrival, moof+mdat)]."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.init = b""
        self.moof = b""

    def feed(self, data: bytes, now: float) -> list[tuple[float, bytes]]:
        self.buffer += data
        out = []
        while len(self.buffer) >= 8:
            size, kind = struct.unpack(">I4s", self.buffer[:8])
            if size == 1 and len(self.buffer) >= 16:
                size = struct.unpack(">Q", self.buffer[8:16])[0]
            if size < 8 or len(self.buffer) < size:
                break
            box = bytes(self.buffer[:size])
            del self.buffer[:size]
            if kind in (b"ftyp", b"moov"):
                self.init += box
                if kind == b"moov":
                    out.append((now, self.init))
            elif kind == b"moof":
                self.moof = box
            elif kind == b"mdat":
                out.append((now, self.moof + box))
        return out


def layout(grid: int, size: tuple[int, int], count: int) -> tuple[str, tuple[int, int]]:
    """xstack layout string at pixel positions (Vigie's cell geometry) and the cell size."""
    width, height = size
    positions = []
    for index in range(count):
        row, column = divmod(index, grid)
        x = int(column * width / grid) // 2 * 2
        y = int(row * height / grid) // 2 * 2
        positions.append(f"{x}_{y}")
    cell = (int(width / grid) // 2 * 2, int(height / grid) // 2 * 2)
    return "|".join(positions), cell


def command(urls: list[str], walls: int, grid: int, size: tuple[int, int], fps: float,
            output: str, fds: list[int]) -> list[str]:
    args = [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning"]
    for url in urls:
        args += ["-analyzeduration", "0", "-probesize", "32", "-rtsp_transport", "tcp",
                 "-i", url]
    cells = grid * grid
    graph = []
    for wall in range(walls):
        inputs = list(range(wall * cells, min(len(urls), (wall + 1) * cells)))
        positions, (cell_w, cell_h) = layout(grid, size, len(inputs))
        for i in inputs:
            graph.append(f"[{i}:v]scale={cell_w}:{cell_h},setsar=1[v{i}]")
        if len(inputs) == 1:
            graph.append(f"[v{inputs[0]}]pad={size[0]}:{size[1]}[w{wall}]")
        else:
            graph.append("".join(f"[v{i}]" for i in inputs)
                         + f"xstack=inputs={len(inputs)}:layout={positions}:fill=black,"
                         f"pad={size[0]}:{size[1]}[w{wall}]")
    args += ["-filter_complex", ";".join(graph)]
    for wall in range(walls):
        args += ["-map", f"[w{wall}]", "-r", f"{fps:g}"]
        if output == "jpeg":
            args += ["-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p", "-f", "mpjpeg"]
        else:
            gop = str(max(1, round(fps)))
            args += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                     "-profile:v", "baseline", "-g", gop, "-keyint_min", gop, "-bf", "0",
                     "-crf", "26", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
                     "-f", "mp4", "-movflags", "empty_moov+default_base_moof+frag_every_frame"]
        args.append(f"pipe:{fds[wall]}")
    return args


class Xstack:
    """One ffmpeg process making `walls` walls; every output frame kept with its arrival."""

    def __init__(self, urls: list[str], walls: int, grid: int, size: tuple[int, int],
                 fps: float, output: str, log_path: Path) -> None:
        self.urls, self.walls, self.grid, self.size, self.fps = urls, walls, grid, size, fps
        self.output = output
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.started_wall = 0.0
        self.frames: list[list[tuple[float, bytes]]] = [[] for _ in range(walls)]
        self._threads: list[threading.Thread] = []
        self._pipes: list[tuple[int, int]] = []

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> "Xstack":
        # One pipe per wall; the child keeps each write end at the same fd number (pass_fds)
        # and ffmpeg writes there with `pipe:N`.
        self._pipes = [os.pipe() for _ in range(self.walls)]
        writers = [w for _, w in self._pipes]
        args = command(self.urls, self.walls, self.grid, self.size, self.fps, self.output,
                       writers)
        self.started_wall = time.time()
        try:
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                    pass_fds=writers)
        finally:
            for fd in writers:
                os.close(fd)
        for wall, (r, _) in enumerate(self._pipes):
            thread = threading.Thread(target=self._read, args=(wall, r), daemon=True,
                                      name=f"xstack-out-{wall}")
            thread.start()
            self._threads.append(thread)
        return self

    def _read(self, wall: int, fd: int) -> None:
        parser = MultipartParser() if self.output == "jpeg" else Fmp4Parser()
        frames = self.frames[wall]
        try:
            while True:
                data = os.read(fd, 1 << 20)
                if not data:
                    break
                frames.extend(parser.feed(data, time.time()))
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)

    def frame_count(self, wall: int) -> int:
        """Output frames so far (fMP4: the init segment is not a frame)."""
        count = len(self.frames[wall])
        return count - 1 if self.output == "h264" and count else count

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """SIGTERM (the readers keep draining so it can finish writing), then SIGKILL."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for thread in self._threads:
            thread.join(5)
