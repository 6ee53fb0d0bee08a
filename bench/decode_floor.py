"""The decode floor: PyAV decoding RTSP streams and nothing else, one thread per stream.

    python -m bench.decode_floor URL [URL ...]

Run by `bench.wall` as a separate process so its CPU time can be read from /proc. Protocol
on stdin/stdout (one line each):
  - prints `READY` once every stream has decoded at least one frame;
  - on each stdin line, prints a JSON object {"frames": [...], "errors": [...]} with the
    frames decoded so far per stream (the caller reads it at the start and end of a window);
  - exits when stdin closes (so it never outlives the bench).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

import av

OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "0", "probesize": "32"}


class Stream:
    def __init__(self, url: str) -> None:
        self.url = url
        self.frames = 0
        self.error: str | None = None
        self.first_frame = threading.Event()

    def run(self) -> None:
        try:
            container = av.open(self.url, options=OPTIONS, timeout=(5, 5))
            try:
                for _frame in container.decode(video=0):
                    self.frames += 1
                    self.first_frame.set()
            finally:
                container.close()
            self.error = "stream ended"
        except Exception as error:  # noqa: BLE001 - reported to the caller
            self.error = f"{type(error).__name__}: {error}"
        self.first_frame.set()  # never leave the caller waiting on a dead stream


def main(urls: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench stops us (stdin EOF / SIGTERM)
    streams = [Stream(url) for url in urls]
    for index, stream in enumerate(streams):
        threading.Thread(target=stream.run, name=f"decode-{index}", daemon=True).start()
    for stream in streams:
        stream.first_frame.wait()
    print("READY", flush=True)
    for _line in sys.stdin:
        print(json.dumps({"frames": [s.frames for s in streams],
                          "errors": [s.error for s in streams]}), flush=True)
    sys.stdout.flush()
    os._exit(0)  # decode threads may sit in FFmpeg calls: do not wait for them


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m bench.decode_floor URL [URL ...]")
    main(sys.argv[1:])
