"""What an RTSP path plays, and the codec its DESCRIBE announces.

- `/cameras/{id}`: the camera's own H.264 or H.265 access units, as received (no decoding),
  when it may be sent as it is; a camera with privacy masks, or one that sends neither codec
  (MJPEG, synthetic), is its composed single-camera view in H.264 instead, at the size and
  rate of its `/cameras/{id}/ws` view.
- `/cameras/{id}/sub`: the same for its substream, when it has one.
- `/walls/{id}`: the wall in H.264, taken from the fMP4 encoder the browsers' viewers use:
  one encode whoever watches.

Scope is the web side's: a path the principal may not see answers like an unknown one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass

from ingest.encode import EncodedFrame
from ingest.encode.annexb import ACCESS_UNITS, units_of_fmp4
from ingest.encode.fmp4 import FMP4
from server.access.scope import Principal
from server.access.views import Target, shown_to
from server.runtime import Runtime

DESCRIBE_WAIT = 8.0  # seconds a DESCRIBE waits for a stream's parameter sets
_PATH = re.compile(r"/(cameras|walls)/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})(/sub)?/?")
_TRACK = re.compile(r"/trackID=\d{1,3}$")


class Unavailable(Exception):
    """The stream exists and may be seen, but gives nothing now (a camera restarting)."""


@dataclass(frozen=True)
class Feed:
    path: str    # /cameras/x, /cameras/x/sub or /walls/x: the stream's RTSP path
    target: Target
    fmt: str     # the hub's format: the camera's own access units, or fMP4
    units: Callable[[EncodedFrame], EncodedFrame]  # a hub frame as an access-unit frame
    fps: float | None

    @property
    def source(self) -> str:
        """'camera' (its own units, as received) or 'composed' (encoded here)."""
        return "camera" if self.fmt == ACCESS_UNITS.name else "composed"


def stream_path(url_path: str) -> str:
    """The stream's path of a request's (a SETUP's track URL ends with /trackID=0)."""
    return _TRACK.sub("", url_path).rstrip("/")


def _same(frame: EncodedFrame) -> EncodedFrame:
    return frame


async def async_resolve(runtime: Runtime, principal: Principal, url_path: str,
                        wait: float = DESCRIBE_WAIT) -> Feed | None:
    """`resolve`, after waiting (up to `wait`) for a camera that may be sent as it is to
    say its codec: its main stream's worker may only just have started (a camera with a
    substream), and the composed view must not be chosen for want of a moment."""
    feed = resolve(runtime, principal, url_path)
    match = _PATH.fullmatch(stream_path(url_path))
    if feed is None or feed.source == "camera" or match is None or match[1] != "cameras":
        return feed
    worker = runtime.passthrough_worker(match[2], sub=bool(match[3]))
    deadline = asyncio.get_running_loop().time() + wait
    while worker is not None and not worker.status().codec and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    return resolve(runtime, principal, url_path)


def resolve(runtime: Runtime, principal: Principal, url_path: str) -> Feed | None:
    """The feed of a path if `principal` may see it; None for an unknown or a forbidden one
    (they answer alike). Raises Unavailable for a camera whose worker is restarting."""
    match = _PATH.fullmatch(stream_path(url_path))
    if match is None:
        return None
    kind, item, sub = match.groups()
    if kind == "walls":
        if sub or shown_to(runtime, principal, "wall", item) is None:
            return None
        stream = runtime.wall_stream(item)
        if stream is None:
            return None
        spec = runtime.walls[item]
        return Feed(f"/walls/{item}", Target("wall", item, item, stream), FMP4, units_of_fmp4, spec.fps)
    if shown_to(runtime, principal, "camera", item) is None:
        return None
    camera = runtime.config.camera(item)
    if camera is None or (sub and not camera.substream_url):
        return None
    path = f"/cameras/{item}{'/sub' if sub else ''}"
    own = runtime.camera_unit_stream(item, sub=bool(sub))
    if own is not None:
        return Feed(path, Target("camera", item, item, own), ACCESS_UNITS.name, _same, None)
    composed = runtime.camera_stream(item)
    if composed is None:
        raise Unavailable("camera restarting; try again in a moment")
    return Feed(path, Target("camera", item, item, composed), FMP4, units_of_fmp4,
                composed.compositor.spec.fps)


async def parameter_sets(feed: Feed, wait: float = DESCRIBE_WAIT) -> tuple[str, bytes]:
    """(codec, parameter sets in Annex B) of the feed's stream, for an SDP. A stream nobody
    watches is started for this (a viewer that takes nothing but the header), and lingers a
    few seconds after, for the PLAY that follows."""
    hub = feed.target.stream.hubs[feed.fmt]
    if hub.header is None:
        viewer = hub.add()
        try:
            async with asyncio.timeout(wait):
                while hub.header is None:
                    if await viewer.next_frame() is None:
                        break
        except TimeoutError:
            pass
        finally:
            viewer.close("described")
    if hub.header is None:
        raise Unavailable("no picture from this stream yet; try again in a moment")
    header = feed.units(hub.header)
    return header.content_type, header.data
