"""What to decode of a camera's compressed packets, whoever read them (FFmpeg's RTSP
client or ours, ingest/source/rtsp/client.py).

While someone watches, everything is decoded, unless the worker is behind its camera with
the data waiting in our socket (ingest/source/lag.py): then it skips to a keyframe. While nobody
watches, only keyframes are decoded (at most one every IDLE_STILL_INTERVAL): health stays
known and a fresh still exists, at a fraction of the cost (DESIGN.md, demand). A watched
camera the server has no CPU for is *reduced* (ingest/wall/governor.py): every keyframe is
decoded, nothing else. The packets since the last keyframe are kept while not decoding in
full, so that when someone starts watching (or the camera is given back its full rate) the
decoder catches up at once instead of waiting for the camera's next keyframe (up to its GOP).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import av
import av.error

from ingest.source.lag import SKIP_LIMIT, LagGuard

# Seconds between keyframes decoded while nobody watches. The still they make is what a new
# viewer sees until the catch-up's first live picture (milliseconds later) and what health
# reports; every keyframe of a 1 s GOP cost 64 idle cameras 0.23 s/s, every other 0.15
# (bench D, against 0.85-0.9 s/s to decode them in full).
IDLE_STILL_INTERVAL = 2.0
# Compressed packets kept since the last keyframe while idle (catch-up on demand). A GOP
# bigger than this (a 4 Mbit/s camera with a 10 s GOP) is let go: its viewers wait for the
# next keyframe instead.
CATCH_UP_MAX_BYTES = 4_000_000
# A reduced camera decodes at most one keyframe this often: an MJPEG or all-intra camera
# (every frame a keyframe) would otherwise save nothing.
REDUCED_INTERVAL = 0.5

Decode = Callable[[av.Packet], list[av.VideoFrame]]


class Decoding(enum.Enum):
    """What a worker wants decoded of its camera; the value is what the API shows."""

    FULL = "full"            # someone watches: every frame
    REDUCED = "reduced"      # someone watches, the server is short of CPU: every keyframe
    IDLE = "keyframes"       # nobody watches: a keyframe every IDLE_STILL_INTERVAL


class DecodePolicy:
    def __init__(self, decode: Decode, guard: LagGuard | None) -> None:
        self._decode_one = decode
        self._guard = guard
        self._resync = False
        self._last_idle_decode = 0.0
        self._last_keyframe: float | None = None  # when the last keyframe came
        self._gop: list[av.Packet] = []  # since the last keyframe, while idle
        self._gop_bytes = 0

    @property
    def behind(self) -> float | None:
        """Seconds behind the camera while watched (the link's delay or ours, beyond the
        best seen on this connection); None while idle or for files."""
        return None if self._guard is None else self._guard.behind

    @property
    def lag_skips(self) -> int:
        """Times decoding fell behind the camera and skipped to a keyframe."""
        return 0 if self._guard is None else self._guard.skips

    @property
    def skipping(self) -> bool:
        return self._guard is not None and self._guard.skipping

    def decode(self, packet: av.Packet, keyframe: bool, timestamp: float | None,
               mode: Decoding, now: float) -> list[av.VideoFrame]:
        """The frames to show for `packet` (none when it is kept or skipped)."""
        full = mode is Decoding.FULL
        if keyframe or self._last_keyframe is None:
            self._last_keyframe = now
        if mode is Decoding.REDUCED and now - self._last_keyframe > SKIP_LIMIT:
            # No keyframe for this long (none flagged, a very long GOP): reduced, the camera
            # would freeze. It is decoded in full instead, from here (a picture that heals at
            # the next keyframe beats a frozen one, as for the lag guard).
            full, self._resync = True, False
        if full and self._guard is not None:
            if not self._guard.decode(packet.size, timestamp, keyframe, now):
                # Skipping: what was kept while idle is of no use any more (decoding resumes
                # at a keyframe, or at the skip limit, where stale references would not help).
                self._gop, self._gop_bytes = [], 0
                return []
        if not full:
            if self._guard is not None and mode is Decoding.REDUCED:
                self._guard.observe(packet.size, timestamp, now)
            elif self._guard is not None:
                self._guard.stop()
            self._resync = True
            self._keep(packet, keyframe)
            interval = IDLE_STILL_INTERVAL * 0.8 if mode is Decoding.IDLE else REDUCED_INTERVAL
            if not keyframe or now - self._last_idle_decode < interval:
                return []
            self._last_idle_decode = now
        elif self._resync:
            # Back to full decoding: predicted frames need the references we skipped.
            if not keyframe and not self._catch_up():
                return []
            self._resync = False
            self._gop, self._gop_bytes = [], 0
        return self._safely(packet)

    def _safely(self, packet: av.Packet) -> list[av.VideoFrame]:
        try:
            return self._decode_one(packet)
        except av.error.InvalidDataError:
            return []  # a corrupt packet costs one frame, not the connection

    def _keep(self, packet: av.Packet, keyframe: bool) -> None:
        if keyframe:
            self._gop, self._gop_bytes = [packet], packet.size
        elif self._gop and self._gop_bytes + packet.size <= CATCH_UP_MAX_BYTES:
            self._gop.append(packet)
            self._gop_bytes += packet.size
        else:
            self._gop, self._gop_bytes = [], 0

    def _catch_up(self) -> bool:
        """Decode the packets kept since the last keyframe, pictures thrown away, so that
        the decoder holds the references the current packet needs. Costs one GOP of
        decoding once per start of watching (16 x 640x360, 15 frames: ~0.3 s of CPU)."""
        if not self._gop:
            return False
        for kept in self._gop:
            self._safely(kept)
        return True


class PolicySource:
    """What a source reading through a DecodePolicy tells of its lag (Source protocol)."""

    _policy: DecodePolicy

    @property
    def behind(self) -> float | None:
        return self._policy.behind

    @property
    def lag_skips(self) -> int:
        return self._policy.lag_skips
