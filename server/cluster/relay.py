"""Access units between nodes: the owner of a camera publishes what it receives, the others
read it into their relay sources (ingest/source/remote.py).

Subjects: `vigie.au.<camera>` carries one access unit per message (Annex B, the parameter
sets before each keyframe), with headers `c` (h264 or hevc), `k` (1 for a keyframe), `t`
(the capture time in 90 kHz ticks of the wall clock) and `n` (its number: a reader that
misses one, for want of room or in the network, skips to the next keyframe instead of
decoding pictures whose references it lacks). A unit bigger than NATS's max_payload (a 4K
camera's keyframe can pass 1 MB, NATS's default) goes in parts, each with header `p`
("index/count"), put back together by `Assembler`. `vigie.want.<camera>` says a node
needs every unit of the camera (someone watches it there), else the owner sends keyframes
only: enough for idle tiles and stills.

Messages are network input: one that does not parse is dropped and counted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import av

from ingest.camera.worker import CameraWorker

from ingest.encode import EncodedFrame
from ingest.encode.annexb import UnitTap
from ingest.source.remote import RelayedUnit
from ingest.source.rtsp.rtp import AccessUnit

UNITS = "vigie.au."
WANT = "vigie.want."
HEALTH = "vigie.health."  # each camera's state, from the node that pulls it, every renew
HEALTH_KEYS = frozenset({"state", "reason", "since", "codec", "width", "height", "input_fps",
                         "bitrate_bps", "reconnects_last_hour", "last_error"})
WANT_SECONDS = 3.0  # a want lasts this long unless said again (nodes say it every renew)
MAX_UNIT = 8 * 1024 * 1024  # a bigger access unit is dropped (and counted)
MIN_PART = 4 * 1024         # parts are never smaller: at most MAX_UNIT / MIN_PART of them
CODECS = {"H264": "h264", "H265": "hevc"}


class RelayPublisher:
    """The packet tap of a camera this node owns. Runs in the camera worker's thread;
    `send(subject, payload, headers)` hands each message to the event loop."""

    def __init__(self, camera_id: str, send: Callable[[str, bytes, dict[str, str]], None],
                 wanted: Callable[[str], bool], part_size: int = MAX_UNIT) -> None:
        self.camera_id = camera_id
        self._send = send
        self._wanted = wanted
        self._part_size = max(MIN_PART, part_size)  # NATS's max_payload, less room for headers
        self._sets = b""
        self._tap = UnitTap(self._unit)
        self._all = False  # sending every unit (someone wants them), from a keyframe on
        self._number = 0   # units sent: a reader that misses one waits for a keyframe
        self.dropped_oversize = 0

    def __call__(self, packet: av.Packet, stream: av.video.stream.VideoStream) -> None:
        self._tap(packet, stream)

    def _unit(self, frame: EncodedFrame) -> None:
        if frame.header:
            self._sets = frame.data
            return
        if not self._wanted(self.camera_id):
            self._all = False
        elif frame.keyframe:
            self._all = True  # every unit from here: a reader can decode them all
        if not frame.keyframe and not self._all:
            return
        data = self._sets + frame.data if frame.keyframe else frame.data
        if len(data) > MAX_UNIT:
            self.dropped_oversize += 1
            return
        self._number += 1
        headers = {"c": CODECS.get(frame.content_type, ""), "k": "1" if frame.keyframe else "0",
                   "t": str(round(frame.wall_time * 90_000)), "n": str(self._number)}
        for part, part_headers in parts_of(data, headers, self._part_size):
            self._send(UNITS + self.camera_id, part, part_headers)


def parts_of(data: bytes, headers: dict[str, str], part_size: int) -> list[tuple[bytes, dict[str, str]]]:
    """A unit's messages: itself if it fits in `part_size`, else its parts, in order."""
    count = -(-len(data) // part_size)
    if count <= 1:
        return [(data, headers)]
    view = memoryview(data)
    return [(bytes(view[index * part_size:(index + 1) * part_size]), {**headers, "p": f"{index}/{count}"})
            for index in range(count)]


def read_unit(headers: dict[str, str] | None, data: bytes) -> RelayedUnit | None:
    """A relayed unit from a message (a whole one); None if it is malformed."""
    if not headers or not data or len(data) > MAX_UNIT:
        return None
    codec = headers.get("c", "")
    stamp, number = headers.get("t", ""), headers.get("n", "")
    if (codec not in ("h264", "hevc") or not all(_digits(v) for v in (stamp, number))):
        return None
    return RelayedUnit(codec, AccessUnit(bytes(data), int(stamp), headers.get("k") == "1"), int(number))


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= 20


class Assembler:
    """Relayed units of one camera, put back together from their parts. Parts come in
    order (one publisher, one subject); a part out of place drops the unit under way (the
    reader sees a gap in the numbers and waits for a keyframe). At most MAX_UNIT bytes are
    held, checked before a part is kept."""

    def __init__(self) -> None:
        self._number = ""   # the unit under way's number, "" if none
        self._next = 0      # the part expected next
        self._count = 0
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, headers: dict[str, str] | None, data: bytes) -> RelayedUnit | None:
        """The unit this message ends, None if it waits for more parts.
        ValueError: the message is malformed (counted by the caller)."""
        part = (headers or {}).get("p")
        if part is None:
            self._reset()
            relayed = read_unit(headers, data)
            if relayed is None:
                raise ValueError("malformed unit")
            return relayed
        index, _, count = part.partition("/")
        number = headers.get("n", "")
        if not (_digits(index) and _digits(count) and _digits(number)
                and 2 <= int(count) <= MAX_UNIT // MIN_PART + 1 and int(index) < int(count)):
            self._reset()
            raise ValueError("malformed part")
        if int(index) == 0:
            self._reset()
            self._number, self._count = number, int(count)
        elif (number, int(index), int(count)) != (self._number, self._next, self._count):
            self._reset()  # a part lost or out of place: the unit is lost
            return None
        if self._size + len(data) > MAX_UNIT:
            self._reset()
            raise ValueError("unit over MAX_UNIT")
        self._parts.append(bytes(data))
        self._size += len(data)
        self._next = int(index) + 1
        if self._next < self._count:
            return None
        whole = b"".join(self._parts)
        self._reset()
        relayed = read_unit({key: value for key, value in headers.items() if key != "p"}, whole)
        if relayed is None:
            raise ValueError("malformed unit")
        return relayed

    def _reset(self) -> None:
        self._number, self._next, self._count, self._parts, self._size = "", 0, 0, [], 0


class Wants:
    """When each camera was last wanted in full by another node."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def heard(self, camera_id: str) -> None:
        self._last[camera_id] = time.monotonic()

    def __call__(self, camera_id: str) -> bool:
        return time.monotonic() - self._last.get(camera_id, float("-inf")) < WANT_SECONDS


def health_of(worker: CameraWorker) -> dict:
    """What other nodes are told of a camera this node pulls."""
    status = worker.status()
    return {"state": status.state.value, "reason": status.reason, "since": status.since,
            "codec": status.codec, "width": status.width, "height": status.height,
            "input_fps": status.input_fps, "bitrate_bps": status.bitrate_bps,
            "reconnects_last_hour": status.reconnects_last_hour, "last_error": status.last_error}


class HealthBoard:
    """The cameras other nodes pull, as they last said (kept a lease)."""

    def __init__(self, lease_seconds: float) -> None:
        self._lease = lease_seconds
        self._latest: dict[str, tuple[dict, float]] = {}

    def heard(self, camera_id: str, data: bytes) -> bool:
        """Keep a camera's health message; False if it is malformed."""
        try:
            health = json.loads(data[:4096])
        except ValueError:
            return False
        if not isinstance(health, dict) or not set(health) <= HEALTH_KEYS:
            return False
        self._latest[camera_id] = (health, time.monotonic())
        return True

    def latest(self, camera_id: str) -> dict | None:
        found = self._latest.get(camera_id)
        if found is None or time.monotonic() - found[1] > self._lease:
            return None
        return found[0]
