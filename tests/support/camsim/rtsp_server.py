"""RTSP test-camera simulator: several live, stamped, encoded mounts on one port.

Runs under Debian's /usr/bin/python3 (python3-gi + GStreamer RTSP server), never the project
venv. Driven by `tests.support.camsim.CameraSimulator`, but usable by hand:

    /usr/bin/python3 tests/support/camsim/rtsp_server.py --config '{"port": 8554, "mounts": [{"path": "cam1"}]}'

Prints exactly one line `READY <port>` on stdout once it listens. Exits on SIGTERM/SIGINT
(and on EOF of stdin with --exit-on-stdin-eof, so it dies with the process that spawned it).

Every frame carries the stamp of `ingest/picture/stamp.py` (camera tag + wall-clock ms), drawn right
before the frame is pushed to the encoder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import threading
import time
import traceback

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

import numpy as np  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
from ingest.picture.stamp import draw_stamp  # noqa: E402

CODECS = ("h264", "h265", "mjpeg")
AUTH_METHODS = {"basic": GstRtsp.RTSPAuthMethod.BASIC, "digest": GstRtsp.RTSPAuthMethod.DIGEST}
ROLE_ANONYMOUS = "anonymous"
PATTERN_PERIOD = 64  # pixels; the diagonal stripes repeat with this period
FAULTS = (None, "freeze", "black", "blur")
STARTED = time.monotonic()  # picture faults count from here (Mount.fault_after)
BLUR_RADIUS = 6  # pixels: a box blur twice over, about a gaussian of sigma 5


def log(message: str) -> None:
    try:
        sys.stderr.write(f"camsim {time.monotonic():.3f}: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # the parent (reading our stderr) is gone: never let logging stop an exit


# --------------------------------------------------------------------------- config


def parse_mount(raw: dict) -> dict:
    mount = {
        "path": str(raw["path"]).strip("/"),
        "codec": raw.get("codec", "h264"),
        "width": int(raw.get("width", 640)),
        "height": int(raw.get("height", 360)),
        "fps": int(raw.get("fps", 15)),
        "gop": int(raw.get("gop", 15)),
        "tag": int(raw.get("tag", 1)),
        "username": raw.get("username"),
        "password": raw.get("password"),
        "auth": raw.get("auth", "basic"),
        "fault": raw.get("fault"),
        "fault_after": float(raw.get("fault_after", 0.0)),
        "fault_for": float(raw.get("fault_for", 0.0)),
        "scene": raw.get("scene", "moving"),
    }
    if mount["fault"] not in FAULTS or mount["scene"] not in ("moving", "fixed"):
        raise ValueError(f"mount {mount['path']}: fault must be one of {FAULTS[1:]}, scene moving or fixed")
    if not mount["path"] or not re.fullmatch(r"[A-Za-z0-9._~/-]+", mount["path"]):
        # The server matches the raw request path: a %-encoded character never matches.
        raise ValueError(f"mount path {mount['path']!r}: use only A-Z a-z 0-9 . _ ~ / -")
    if mount["codec"] not in CODECS:
        raise ValueError(f"mount {mount['path']}: codec must be one of {CODECS}")
    if mount["auth"] not in AUTH_METHODS:
        raise ValueError(f"mount {mount['path']}: auth must be basic or digest")
    if mount["width"] % 2 or mount["height"] % 2 or mount["width"] <= 0 or mount["height"] <= 0:
        raise ValueError(f"mount {mount['path']}: width and height must be positive and even")
    if mount["codec"] == "mjpeg" and (mount["width"] % 8 or mount["height"] % 8):
        raise ValueError(f"mount {mount['path']}: mjpeg needs width and height multiples of 8")
    if not 0 <= mount["tag"] <= 255:
        raise ValueError(f"mount {mount['path']}: tag must be 0..255")
    if mount["fps"] <= 0 or mount["gop"] <= 0:
        raise ValueError(f"mount {mount['path']}: fps and gop must be positive")
    if (mount["username"] is None) != (mount["password"] is None):
        raise ValueError(f"mount {mount['path']}: give both username and password, or neither")
    return mount


# --------------------------------------------------------------------------- frames


class FrameMaker:
    """Cheap moving I420 frames: a precomputed stripe tile sliced at a moving offset,
    a sweeping bar, a background colour per tag, and the stamp."""

    def __init__(self, width: int, height: int, tag: int, mount: dict | None = None) -> None:
        self.width, self.height, self.tag = width, height, tag
        self.mount = mount or {}
        self.frozen: bytes | None = None
        period = PATTERN_PERIOD
        ys, xs = np.mgrid[0 : height + period, 0 : width + period]
        stripes = ((xs + ys) % period) * (150.0 / period)  # diagonal ramps, 0..150
        self.tile = (30 + stripes + (tag * 37) % 40).astype(np.uint8)  # luma 30..219
        angle = tag * 2.399963  # golden angle: neighbouring tags get distant hues
        self.u_value = int(128 + 70 * math.cos(angle))
        self.v_value = int(128 + 70 * math.sin(angle))
        self.y_size = width * height
        self.c_size = (width // 2) * (height // 2)
        self.bar_width = max(2, width // 32)

    def make(self, index: int) -> bytes:
        fault = self.mount.get("fault")
        if fault:
            elapsed = time.monotonic() - STARTED - self.mount["fault_after"]
            ends = self.mount["fault_for"]
            if elapsed >= 0 and (not ends or elapsed < ends):
                if fault == "freeze":
                    self.frozen = self.frozen or self._make(index)
                    return self.frozen
                if fault == "black":
                    return bytes([16]) * self.y_size + bytes([128]) * (2 * self.c_size)
                return self._make(index, blurred=True)
            self.frozen = None
        return self._make(index)

    def _make(self, index: int, blurred: bool = False) -> bytes:
        w, h = self.width, self.height
        frame = np.empty(self.y_size + 2 * self.c_size, dtype=np.uint8)
        y = frame[: self.y_size].reshape(h, w)
        u = frame[self.y_size : self.y_size + self.c_size].reshape(h // 2, w // 2)
        v = frame[self.y_size + self.c_size :].reshape(h // 2, w // 2)
        shift = (index * 3) % PATTERN_PERIOD if self.mount.get("scene", "moving") == "moving" else 0
        y[:] = self.tile[shift : shift + h, shift : shift + w]
        bar_x = (index * 8) % max(1, w - self.bar_width)
        y[:, bar_x : bar_x + self.bar_width] = 220
        if blurred:
            y[:] = box_blur(box_blur(y, BLUR_RADIUS), BLUR_RADIUS)
        u[:] = self.u_value
        v[:] = self.v_value
        draw_stamp(y, tag=self.tag, chroma=(u, v))  # ms=None: the frame is made now
        return frame.tobytes()


def box_blur(plane: np.ndarray, radius: int) -> np.ndarray:
    """A box blur of a uint8 plane, along both axes (cumulative sums: no OpenCV here)."""
    out = plane.astype(np.float32)
    for axis in (0, 1):
        padded = np.concatenate([np.repeat(out.take([0], axis), radius + 1, axis), out,
                                 np.repeat(out.take([-1], axis), radius, axis)], axis)
        sums = np.cumsum(padded, axis)
        size = 2 * radius + 1
        out = (sums.take(range(size, sums.shape[axis]), axis) - sums.take(range(0, sums.shape[axis] - size), axis)) / size
    return np.clip(out, 0, 255).astype(np.uint8)


class Feeder:
    """Pushes frames into one media's appsrc at the mount's fps, from its own thread."""

    def __init__(self, mount: dict, appsrc: Gst.Element) -> None:
        self.mount = mount
        self.appsrc = appsrc
        self.maker = FrameMaker(mount["width"], mount["height"], mount["tag"], mount)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"feed-{mount['path']}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()

    def _running_time(self) -> int | None:
        """The appsrc's running time now, or None when it is not settled in PLAYING.

        This is what appsrc's do-timestamp computes, minus its race: a buffer pushed while
        the pipeline goes to PLAYING (clock set, base time not yet) gets the absolute clock
        time (tens of minutes) as PTS, and the TCP sink then waits for it: the stream stalls
        for that client forever. Frames pushed while PAUSED would be stamped with the old
        base time and held back for as long as the pause lasted.
        """
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

    def _run(self) -> None:
        period = 1.0 / self.mount["fps"]
        duration = Gst.SECOND // self.mount["fps"]
        index = 0
        due = time.monotonic()
        while not self.stop_event.is_set():
            delay = due - time.monotonic()
            if delay > 0 and self.stop_event.wait(delay):
                break
            due += period
            # Far behind (SIGSTOP/SIGCONT, a loaded machine): do not burst to catch up.
            if time.monotonic() - due > 2 * period:
                due = time.monotonic()
            data = self.maker.make(index)  # the stamp: the time the frame is made
            running_time = self._running_time()
            if running_time is None:
                continue  # not playing (preparing, paused, stopping): the frame is dropped
            buffer = Gst.Buffer.new_wrapped(data)
            buffer.pts = buffer.dts = running_time
            buffer.duration = duration
            flow = self.appsrc.emit("push-buffer", buffer)
            if flow not in (Gst.FlowReturn.OK, Gst.FlowReturn.FLUSHING):
                log(f"{self.mount['path']}: push-buffer returned {flow.value_nick}, feeder stops")
                break
            index += 1


# --------------------------------------------------------------------------- server


def launch_line(mount: dict) -> str:
    w, h, fps, gop = mount["width"], mount["height"], mount["fps"], mount["gop"]
    caps = f"video/x-raw,format=I420,width={w},height={h},framerate={fps}/1"
    source = (
        # do-timestamp=false: the feeder sets PTS itself (see Feeder._running_time).
        f"appsrc name=src is-live=true format=time do-timestamp=false "
        f"max-buffers=2 leaky-type=downstream caps={caps}"
    )
    if mount["codec"] == "h264":
        encode = (
            f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} "
            f"! rtph264pay name=pay0 pt=96 config-interval=1"
        )
    elif mount["codec"] == "h265":
        encode = (
            f"x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} "
            f"! rtph265pay name=pay0 pt=96 config-interval=1"
        )
    else:
        encode = "jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26"
    return f"( {source} ! {encode} )"


class Simulator:
    def __init__(self, config: dict) -> None:
        self.host = config.get("host", "127.0.0.1")
        self.port = int(config.get("port", 0))
        self.mounts = [parse_mount(m) for m in config.get("mounts", [])]
        if not self.mounts:
            raise ValueError("no mounts")
        paths = [m["path"] for m in self.mounts]
        if len(set(paths)) != len(paths):
            raise ValueError(f"duplicate mount paths: {paths}")
        self.feeders: set[Feeder] = set()
        self.lock = threading.Lock()
        self.loop = GLib.MainLoop()
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(self.host)
        self.server.set_service(str(self.port))
        self.auth = self._make_auth()
        if self.auth is not None:
            self.server.set_auth(self.auth)
        # Sessions that expire when not kept alive, as cameras' do (GStreamer's default, 60 s,
        # is only enforced if someone cleans the pool): None keeps the default.
        self.session_timeout = config.get("session_timeout")
        self.server.connect("client-connected", self._on_client)
        self.playing: dict[int, str] = {}  # client -> the mount it plays
        mount_points = self.server.get_mount_points()
        for mount in self.mounts:
            mount_points.add_factory("/" + mount["path"], self._make_factory(mount))

    # -- auth

    def _make_auth(self) -> GstRtspServer.RTSPAuth | None:
        protected = [m for m in self.mounts if m["username"] is not None]
        if not protected:
            return None
        methods = {m["auth"] for m in protected}
        if len(methods) == 1:
            auth = GstRtspServer.RTSPAuth()
            auth.set_supported_methods(AUTH_METHODS[methods.pop()])
        else:
            # Mixed basic and digest mounts: challenge with the method of the requested mount
            # (FFmpeg picks Digest whenever it is offered, which would lock out basic mounts).
            auth = PerMountAuth({"/" + m["path"]: AUTH_METHODS[m["auth"]] for m in protected})
        digest_passwords: dict = {}
        for mount in protected:
            if mount["auth"] == "digest":
                known = digest_passwords.setdefault(mount["username"], mount["password"])
                if known != mount["password"]:
                    raise ValueError(f"digest user {mount['username']!r} has two passwords "
                                     "(the server keys digest users by name)")
        anonymous = GstRtspServer.RTSPToken()
        anonymous.set_string("media.factory.role", ROLE_ANONYMOUS)
        auth.set_default_token(anonymous)
        for mount in protected:
            token = GstRtspServer.RTSPToken()
            token.set_string("media.factory.role", self._role(mount))
            user, password = mount["username"], mount["password"]
            if mount["auth"] == "basic":
                auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
            else:
                auth.add_digest(user, password, token)
        return auth

    def _role(self, mount: dict) -> str:
        # A Gst.Structure name: the mount's index, not its path (which may hold any character).
        return f"camsim-mount-{self.mounts.index(mount)}"

    def _permissions(self, mount: dict) -> GstRtspServer.RTSPPermissions:
        # Every role may ACCESS (see) every mount: without access the server answers 404,
        # not a 401 challenge, and FFmpeg never retries with credentials (FIELD-NOTES).
        # CONSTRUCT (play) is what credentials grant: anyone on an open mount; on a protected
        # mount, only the roles holding its credentials (same user, password and method:
        # the server keeps one token per credential, so mounts sharing them share roles).
        permissions = GstRtspServer.RTSPPermissions()
        protected = mount["username"] is not None
        roles = [(ROLE_ANONYMOUS, not protected)]
        for other in self.mounts:
            if other["username"] is None:
                continue
            same = (other["username"], other["password"], other["auth"]) == (
                mount["username"], mount["password"], mount["auth"])
            roles.append((self._role(other), same or not protected))
        for role, construct in roles:
            structure = Gst.Structure.new_from_string(
                f"{role}, media.factory.access=(boolean)true, "
                f"media.factory.construct=(boolean){'true' if construct else 'false'}"
            )
            permissions.add_role_from_structure(structure)
        return permissions

    # -- media

    def _make_factory(self, mount: dict) -> GstRtspServer.RTSPMediaFactory:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(mount))
        factory.set_shared(True)
        # Without this a shared live media is seeked on every PLAY: a second client makes
        # every client's timestamps jump back (FIELD-NOTES).
        factory.set_publish_clock_mode(GstRtspServer.RTSPPublishClockMode.CLOCK_AND_OFFSET)
        if self.auth is not None:
            factory.set_permissions(self._permissions(mount))
        factory.connect("media-configure", self._on_media_configure, mount)
        return factory

    def _on_media_configure(self, factory, media, mount: dict) -> None:
        appsrc = media.get_element().get_by_name("src")
        feeder = Feeder(mount, appsrc)
        with self.lock:
            self.feeders.add(feeder)
        media.connect("unprepared", self._on_media_unprepared, feeder)
        feeder.start()
        log(f"{mount['path']}: media configured, feeding {mount['codec']} "
            f"{mount['width']}x{mount['height']}@{mount['fps']}")

    def _on_media_unprepared(self, media, feeder: Feeder) -> None:
        feeder.stop()
        with self.lock:
            self.feeders.discard(feeder)
        log(f"{feeder.mount['path']}: media unprepared, feeder stopped")

    # -- sessions

    def _on_client(self, _server, client) -> None:
        if self.session_timeout is not None:
            client.connect("new-session", self._on_session)
        client.connect("play-request", self._on_play)
        client.connect("closed", self._on_closed)

    def _on_play(self, client, ctx) -> None:
        """Who plays which mount, for tests that count pulls (a cluster pulls once)."""
        path = ctx.uri.abspath.strip("/").split("/")[0] if ctx.uri is not None else "?"
        # hash() of a GObject wrapper is its C object's address: the same for the client's
        # whole life, whichever wrapper a signal hands over (id() of wrappers is reused).
        self.playing[hash(client)] = path
        log(f"{path}: client {hash(client):x} plays")
        self._report_playing()

    def _on_closed(self, client) -> None:
        path = self.playing.pop(hash(client), None)
        if path is not None:
            log(f"{path}: client {hash(client):x} closed")
            self._report_playing()

    def _report_playing(self) -> None:
        counts: dict[str, int] = {}
        for path in self.playing.values():
            counts[path] = counts.get(path, 0) + 1
        sys.stdout.write("PLAYING " + json.dumps(counts, sort_keys=True) + "\n")
        sys.stdout.flush()

    def _on_session(self, _client, session) -> None:
        session.set_timeout(int(self.session_timeout))

    def _clean_sessions(self) -> bool:
        removed = self.server.get_session_pool().cleanup()
        if removed:
            log(f"{removed} session(s) expired (not kept alive)")
        return True  # keep the timer

    # -- lifecycle

    def run(self, exit_on_stdin_eof: bool) -> int:
        if self.server.attach(None) == 0:
            log(f"cannot listen on {self.host}:{self.port} (address in use?)")
            return 2
        if self.session_timeout is not None:
            GLib.timeout_add(500, self._clean_sessions)
        port = self.server.get_bound_port()
        for signum in (signal.SIGTERM, signal.SIGINT):
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, self._quit, signum)
        if exit_on_stdin_eof:
            GLib.io_add_watch(
                sys.stdin.fileno(), GLib.PRIORITY_DEFAULT,
                GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
                self._on_stdin,
            )
        # Also let stray SIGPIPEs be ignored by the C side (closed client sockets).
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        sys.stdout.write(f"READY {port}\n")
        sys.stdout.flush()
        log(f"listening on rtsp://{self.host}:{port}/ mounts: "
            + ", ".join(m["path"] for m in self.mounts))
        self.loop.run()
        with self.lock:
            for feeder in self.feeders:
                feeder.stop()
        return 0

    def _quit(self, signum: int) -> bool:
        self.loop.quit()
        log(f"signal {signum}, exiting")
        return GLib.SOURCE_REMOVE

    def _on_stdin(self, fd: int, condition: GLib.IOCondition) -> bool:
        data = b""
        if condition & GLib.IOCondition.IN:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
        if data:
            return GLib.SOURCE_CONTINUE
        self.loop.quit()
        log("stdin closed (parent gone), exiting")
        return GLib.SOURCE_REMOVE


class PerMountAuth(GstRtspServer.RTSPAuth):
    """RTSPAuth whose challenge (WWW-Authenticate) offers only the requested mount's method.

    The supported methods cannot be BASIC|DIGEST from Python (the enum rejects 3), and FFmpeg
    picks Digest whenever both are offered, so the challenge is chosen per request path.
    Checking credentials does not depend on it: both tables are always consulted.
    """

    def __init__(self, methods_by_path: dict) -> None:
        super().__init__()
        self.methods_by_path = methods_by_path
        self.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)

    def do_generate_authenticate_header(self, ctx) -> None:
        path = ""
        try:
            if ctx.uri is not None:
                path = ctx.uri.abspath or ""
        except Exception:  # noqa: BLE001 - a challenge must still be produced
            path = ""
        method = GstRtsp.RTSPAuthMethod.DIGEST
        for mount_path, mount_method in self.methods_by_path.items():
            # SETUP URLs carry a control suffix: /cam/stream=0.
            if path == mount_path or path.startswith(mount_path + "/"):
                method = mount_method
                break
        # Clients are served from the server's one main-loop thread: setting the method
        # just before chaining up is not racy.
        self.set_supported_methods(method)
        GstRtspServer.RTSPAuth.do_generate_authenticate_header(self, ctx)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON: host, port, mounts")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="exit when stdin reaches EOF (the spawning process died)")
    args = parser.parse_args(argv)
    Gst.init(None)
    try:
        try:
            simulator = Simulator(json.loads(args.config))
        except (ValueError, KeyError, TypeError) as error:
            log(f"bad config: {error}")
            code = 2
        else:
            code = simulator.run(args.exit_on_stdin_eof)
    except BaseException:  # noqa: BLE001 - report, then exit for real (see below)
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # Always leave through os._exit: a normal interpreter exit after Gst.init can hang
    # (live pipelines, RTSP thread pools), and the parent would wait for a dead server.
    # The kernel closes every client socket.
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
