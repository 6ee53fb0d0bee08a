"""RTSP cameras (H.264, H.265 over TCP) read by our own client (ingest/source/rtsp/client.py) and decoded
by PyAV's decoders; the rest goes to FFmpeg's client (ingest/sources.PyAVSource).

While someone needs its packets as they come (its tiles decoded in full, a remux of the
camera's own stream), the worker reads the socket as data comes (latency). Otherwise (nobody
watching, or reduced to keyframes for want of CPU: ingest/wall/governor.py) it reads it every
quarter second in one go: a camera then costs four wake-ups a second instead of one per
RTP packet (bench D).
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
import av.error

from ingest.source.decoding import DecodePolicy, Decoding, PolicySource
from ingest.source.lag import LagGuard
from ingest.source.rtsp.client import RtspClient
from ingest.source.rtsp.message import Unsupported
from ingest.source.base import Packet, Source, SourceError, SourceSpec, register_scheme
from ingest.source.pyav import SINGLE_THREAD_PIXELS, PyAVSource

logger = logging.getLogger(__name__)

IDLE_READ_INTERVAL = 0.25  # seconds between bulk reads while nobody watches
# Between our client's DESCRIBE and FFmpeg's: GStreamer's RTSP server answers 503 to a
# DESCRIBE that comes while it still unprepares the media the first one prepared.
FALLBACK_PAUSE = 0.5
# Learned of a camera whose stream our client does not take (MJPEG, a camera refusing
# TCP...): FFmpeg reads it from the next try on, instead of a refused handshake at every
# reconnect. Kept in the camera's spec (SourceSpec.learned), not in this module.
FFMPEG_ONLY = "ffmpeg-only"


def stream_template(codec: str, keyframe: bytes) -> tuple[av.container.InputContainer,
                                                         av.video.stream.VideoStream]:
    """A real FFmpeg stream for the camera's, made by probing its first keyframe (with its
    parameter sets) in memory: what a remuxer copies its MP4 track from (size, profile,
    avcC built from the camera's own SPS/PPS). Keep the container: the stream lives in it."""
    container = av.open(io.BytesIO(keyframe), format=codec)
    return container, container.streams.video[0]


class RtspSource(PolicySource):
    """One camera over our RTSP client; raises Unsupported before any media flows when
    its stream is one FFmpeg must read."""

    def __init__(self, spec: SourceSpec, client: RtspClient | None = None) -> None:
        # Another reader of access units may stand in for the RTSP client (a camera relayed
        # by another node of a cluster: ingest/source/remote.py); it opens the same way.
        self._client = client or RtspClient(spec.url, spec.username, spec.password,
                                            spec.open_timeout, spec.read_timeout)
        try:
            self._client.open()
        except SourceError:  # Unsupported among them
            self._client.close()
            raise
        track = self._client.track
        self.codec = self._client.depacketiser.codec
        self._time_base = Fraction(1, track.clock_rate)
        self._clock_rate = float(track.clock_rate)
        self._read_timeout = spec.read_timeout
        # Made when a packet is to be decoded; while nobody watches, let go after each
        # keyframe decoded (see _decode). One decoder thread until the picture size is
        # known (the first keyframe's).
        self._context: av.CodecContext | None = None
        self._threads = False
        self._sample_aspect = 1.0
        self._decodes = 0  # packets given to a decoder, ever
        # Made at the first keyframe; until then no compressed packet goes to a remux.
        self._template: av.container.InputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        # What waits unread is asked of our own socket (FFmpeg's need /proc: ingest/source/backlog.py).
        self._policy = DecodePolicy(self._decode, LagGuard(self._client.waiting))
        self._first_timestamp: int | None = None

    def _new_decoder(self) -> av.CodecContext:
        context = av.CodecContext.create(self.codec, "r")
        if not self._threads:
            # One decoder thread per camera: cameras already run in parallel, and FFmpeg's
            # slice threads only add hand-offs on small pictures (ingest/source/).
            context.thread_count = 1
        return context

    def _decode(self, packet: av.Packet) -> list[av.VideoFrame]:
        self._decodes += 1
        if self._context is None:
            self._context = self._new_decoder()
        frames = self._context.decode(packet)
        ratio = self._context.sample_aspect_ratio
        self._sample_aspect = float(ratio) if ratio else 1.0
        return frames

    def _drain(self) -> list[av.VideoFrame]:
        """What the decoder still holds (it is let go next: no need to reset it)."""
        try:
            return list(self._context.decode(None))
        except av.error.FFmpegError:
            return []

    def _release_decoder(self) -> None:
        """Let the decoder go until the next packet to decode. While nobody watches, only a
        keyframe every IDLE_STILL_INTERVAL is decoded, and a keyframe needs no earlier
        picture: a decoder kept between them held 1.2 to 1.7 MB of frame buffers and tables
        per 640x360 camera (most of an idle camera's memory), and making a fresh one costs
        about what decoding the keyframe does (0.25-0.3 ms: the issue 23 note). The frames
        it gave keep their own buffers."""
        self._context = None

    def sample_aspect(self) -> float:
        return self._sample_aspect

    def packets(self, decoding: Callable[[], Decoding],
                live: threading.Event | None = None) -> Iterator[Packet]:
        last_unit = time.monotonic()
        live = live or threading.Event()
        while True:
            mode = decoding()
            if mode is not Decoding.FULL and self._client.drained:
                # Nobody watching: let a quarter second of the camera gather in the
                # socket, to read it at once; at once if someone starts watching. (One
                # wake-up: polling `decoding` every 50 ms instead cost 64 cameras
                # 0.24 s/s in GIL hand-offs, 15 times the reading.) Reduced for want of
                # CPU (ingest/wall/governor.py), in bulk too: read as data comes, a camera
                # wakes its thread about 16 times a frame, each a GIL hand-off taken from
                # the walls and their viewers; its keyframes show up to 0.25 s later.
                # Unless its stream is remuxed to a viewer (`live`), who needs every
                # packet as it comes.
                live.wait(IDLE_READ_INTERVAL)
            units = self._client.read()
            if units is None:
                return  # the camera ended the stream: the worker reconnects
            now = time.monotonic()
            if not units:
                if now - last_unit > self._read_timeout:
                    raise SourceError("no video from the camera", timed_out=True)
                continue
            last_unit = now
            for unit in units:
                if self._first_timestamp is None:
                    self._first_timestamp = unit.timestamp
                packet = av.Packet(unit.data)
                packet.pts = packet.dts = unit.timestamp - self._first_timestamp
                packet.time_base = self._time_base
                packet.is_keyframe = unit.keyframe
                if unit.keyframe and self._stream is None:
                    self._make_template(unit.data)
                mode = decoding()
                decodes = self._decodes
                frames = self._policy.decode(packet, unit.keyframe,
                                             unit.timestamp / self._clock_rate, mode, now)
                if mode is Decoding.IDLE and self._decodes != decodes and self._context is not None:
                    # A stream that reorders pictures holds a keyframe's back in a fresh
                    # decoder: drained, so that the still is this keyframe, not none.
                    frames = frames or self._drain()
                    self._release_decoder()
                raw = packet if self._stream is not None else None
                if not frames:
                    yield Packet(packet.size, None, raw, self._stream,
                                 skipped=self._policy.skipping)
                for index, frame in enumerate(frames):
                    yield Packet(packet.size if index == 0 else 0, frame,
                                 raw if index == 0 else None, self._stream)

    def _make_template(self, keyframe: bytes) -> None:
        """At the first keyframe: the stream a remux copies, and the picture size, which
        says whether FFmpeg's decoder threads pay (as PyAVSource decides from its probe);
        a keyframe is where a fresh decoder can start."""
        try:
            self._template, self._stream = stream_template(self.codec, keyframe)
        except (av.error.FFmpegError, IndexError):
            # Not probed (a broken first keyframe): the next one is tried. Only remuxing
            # and threading wait for it; decoding does not need the template.
            self._template = self._stream = None
            return
        context = self._stream.codec_context
        if context.width * context.height > SINGLE_THREAD_PIXELS and not self._threads:
            self._threads = True
            self._context = None  # the next decoder has FFmpeg's threads; a keyframe is next

    def close(self) -> None:
        self._client.close()
        if self._template is not None:
            self._template.close()


def open_rtsp(spec: SourceSpec) -> Source:
    """Our client for TCP H.264/H.265 cameras, FFmpeg's for the rest."""
    if spec.transport != "tcp" or FFMPEG_ONLY in spec.learned:
        return PyAVSource(spec)
    try:
        return RtspSource(spec)
    except Unsupported as reason:
        logger.info("camera stream read with FFmpeg's RTSP client from now on (%s)",
                    reason.reason)
        spec.learned.add(FFMPEG_ONLY)
        time.sleep(FALLBACK_PAUSE)
        return PyAVSource(spec)


register_scheme("rtsp", open_rtsp)
