"""Light RTSP feeder for the bench: pre-encoded H.264 clips looped forever, in real time.

Runs under Debian's /usr/bin/python3 (python3-gi + GStreamer RTSP server), never the venv;
modelled on tests/support/camsim/rtsp_server.py, but nothing is drawn or encoded here: every mount
plays a clip made once by `bench/clips.py` (Annex B access units, first one an IDR), one
access unit per frame period, stamped with the pipeline's running time so it plays live.

    /usr/bin/python3 bench/feeder.py --config '{"port": 0, "fps": 15,
        "mounts": [{"path": "loop1", "clip": "/tmp/clip1.h264au"}]}'

Prints `READY <port>` once it listens. Exits on SIGTERM/SIGINT and when stdin closes.
One thread paces every mount (a heap of due times, each mount with its own phase, as real
cameras are not in step); GStreamer only packetises (rtph264pay) and sends.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import signal
import struct
import sys
import threading
import time
import traceback

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

RECORD = struct.Struct(">IB")


def log(message: str) -> None:
    try:
        sys.stderr.write(f"feeder {time.monotonic():.3f}: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def read_clip(path: str) -> list[tuple[bytes, bool]]:
    with open(path, "rb") as file:
        data = file.read()
    units, position = [], 0
    while position < len(data):
        length, flags = RECORD.unpack_from(data, position)
        position += RECORD.size
        units.append((data[position : position + length], bool(flags & 1)))
        position += length
    if not units or not units[0][1]:
        raise ValueError(f"{path}: empty clip or first unit not a keyframe")
    return units


class Player:
    """One prepared media (one appsrc): the next access unit of its clip, looped."""

    def __init__(self, path: str, units: list[tuple[bytes, bool]], appsrc, fps: int) -> None:
        self.path = path
        self.units = units
        self.appsrc = appsrc
        self.duration = Gst.SECOND // fps
        self.index = 0
        self.stopped = False

    def running_time(self) -> int | None:
        """The appsrc's running time now, or None while it is not settled in PLAYING (see
        the simulator's Feeder: a buffer stamped with the absolute clock stalls a client)."""
        _, current, pending = self.appsrc.get_state(0)
        if current != Gst.State.PLAYING or pending != Gst.State.VOID_PENDING:
            return None
        clock = self.appsrc.get_clock()
        if clock is None:
            return None
        base_time = self.appsrc.get_base_time()
        now = clock.get_time()
        if base_time == 0 or now < base_time:
            return None
        return now - base_time

    def push(self) -> bool:
        running_time = self.running_time()
        if running_time is None:
            # Not playing yet: restart at the clip's IDR when it does.
            self.index = 0
            return True
        data, key = self.units[self.index]
        self.index = (self.index + 1) % len(self.units)
        buffer = Gst.Buffer.new_wrapped(data)
        buffer.pts = buffer.dts = running_time
        buffer.duration = self.duration
        if not key:
            buffer.set_flags(Gst.BufferFlags.DELTA_UNIT)
        flow = self.appsrc.emit("push-buffer", buffer)
        if flow not in (Gst.FlowReturn.OK, Gst.FlowReturn.FLUSHING):
            log(f"{self.path}: push-buffer returned {flow.value_nick}; this player stops")
            return False
        return True


class Pacer:
    """One thread for all players: each pushes one unit per frame period, at its own phase."""

    def __init__(self, fps: int) -> None:
        self.period = 1.0 / fps
        self.heap: list[tuple[float, int, Player]] = []
        self.lock = threading.Condition()
        self.counter = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pacer", daemon=True)
        self.thread.start()

    def add(self, player: Player) -> None:
        with self.lock:
            self.counter += 1
            # Spread the mounts' phases over the frame period (golden-ratio sequence).
            phase = (self.counter * 0.618034) % 1.0 * self.period
            heapq.heappush(self.heap, (time.monotonic() + phase, self.counter, player))
            self.lock.notify()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            with self.lock:
                while not self.heap and not self.stop_event.is_set():
                    self.lock.wait(0.5)
                if self.stop_event.is_set():
                    return
                due, order, player = self.heap[0]
                delay = due - time.monotonic()
                if delay > 0:
                    self.lock.wait(delay)
                    continue
                heapq.heappop(self.heap)
            if player.stopped:
                continue
            if not player.push():
                continue
            due += self.period
            now = time.monotonic()
            if now - due > 2 * self.period:  # far behind (a loaded machine): do not burst
                due = now
            with self.lock:
                heapq.heappush(self.heap, (due, order, player))


class Feeder:
    def __init__(self, config: dict) -> None:
        self.host = config.get("host", "127.0.0.1")
        self.port = int(config.get("port", 0))
        self.fps = int(config.get("fps", 15))
        self.width = int(config.get("width", 640))
        self.height = int(config.get("height", 360))
        self.clips: dict[str, list[tuple[bytes, bool]]] = {}
        self.pacer = Pacer(self.fps)
        self.loop = GLib.MainLoop()
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(self.host)
        self.server.set_service(str(self.port))
        mount_points = self.server.get_mount_points()
        for mount in config["mounts"]:
            path = str(mount["path"]).strip("/")
            if mount["clip"] not in self.clips:
                self.clips[mount["clip"]] = read_clip(mount["clip"])
            mount_points.add_factory("/" + path, self._factory(path, self.clips[mount["clip"]]))

    def _factory(self, path: str, units) -> GstRtspServer.RTSPMediaFactory:
        caps = (f"video/x-h264,stream-format=byte-stream,alignment=au,width={self.width},"
                f"height={self.height},framerate={self.fps}/1")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            f"( appsrc name=src is-live=true format=time do-timestamp=false "
            f"max-buffers=2 leaky-type=downstream caps={caps} "
            f"! rtph264pay name=pay0 pt=96 config-interval=1 )")
        factory.set_shared(True)
        # Shared live media must not be seeked on every PLAY (FIELD-NOTES).
        factory.set_publish_clock_mode(GstRtspServer.RTSPPublishClockMode.CLOCK_AND_OFFSET)
        factory.connect("media-configure", self._on_media_configure, path, units)
        return factory

    def _on_media_configure(self, factory, media, path: str, units) -> None:
        appsrc = media.get_element().get_by_name("src")
        player = Player(path, units, appsrc, self.fps)
        media.connect("unprepared", self._on_unprepared, player)
        self.pacer.add(player)

    @staticmethod
    def _on_unprepared(media, player: Player) -> None:
        player.stopped = True

    def run(self) -> int:
        if self.server.attach(None) == 0:
            log(f"cannot listen on {self.host}:{self.port}")
            return 2
        for signum in (signal.SIGTERM, signal.SIGINT):
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, self._quit, signum)
        GLib.io_add_watch(sys.stdin.fileno(), GLib.PRIORITY_DEFAULT,
                          GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
                          self._on_stdin)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        sys.stdout.write(f"READY {self.server.get_bound_port()}\n")
        sys.stdout.flush()
        self.loop.run()
        self.pacer.stop_event.set()
        return 0

    def _quit(self, signum: int) -> bool:
        self.loop.quit()
        return GLib.SOURCE_REMOVE

    def _on_stdin(self, fd: int, condition) -> bool:
        data = b""
        if condition & GLib.IOCondition.IN:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
        if data:
            return GLib.SOURCE_CONTINUE
        self.loop.quit()
        return GLib.SOURCE_REMOVE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON: host, port, fps, mounts")
    args = parser.parse_args()
    Gst.init(None)
    try:
        code = Feeder(json.loads(args.config)).run()
    except BaseException:  # noqa: BLE001 - report, then leave for real
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as the simulator: a normal exit after Gst.init can hang


if __name__ == "__main__":
    sys.exit(main())
