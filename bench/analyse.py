"""Reading the stamps of received wall frames: glass-to-glass latency, tile clock spread,
fresh pictures per cell, time to a full wall. After the measured windows (never during).

A frame is (arrival time, picture source); pictures are JPEG bytes or fMP4 fragments
(decoded in order from the init segment). Every cell of the wall has an expected camera tag;
only cells of live-stamped cameras give ages (the looped cameras' clocks are not live).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import av
import cv2
import numpy as np

from bench.measure import percentile
from ingest.picture.layout import CellSpec
from ingest.picture.stamp import MS_MODULO
from tests.support.mjpeg import cell_stamp

SOURCE = (640, 360)


@dataclass(frozen=True)
class WallGeometry:
    width: int
    height: int
    grid: int
    tags: tuple[int, ...]      # expected tag per cell, row-major
    live: tuple[bool, ...]     # does the cell's camera carry a live clock?

    def cells(self) -> list[CellSpec]:
        return [CellSpec(None, *divmod(i, self.grid)) for i in range(len(self.tags))]


def jpeg_frames(messages: list[tuple[float, bytes]]) -> Iterator[tuple[float, np.ndarray]]:
    for arrival, data in messages:
        gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        if gray is not None:
            yield arrival, gray


def fmp4_frames(messages: list[tuple[float, bytes]]) -> Iterator[tuple[float, np.ndarray]]:
    """messages[0] is the init segment (ftyp+moov); then one moof+mdat (one frame) each.

    Packet k of the demuxed file is fragment k; decoded without frame threading, packet k
    gives its own picture at once, so each picture gets its own fragment's arrival time
    even if a packet fails to decode."""
    if not messages or messages[0][1][4:8] != b"ftyp":
        return
    arrivals = [arrival for arrival, _ in messages[1:]]
    data = b"".join(payload for _, payload in messages)
    container = av.open(io.BytesIO(data), format="mp4")
    try:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        index = -1
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            index += 1
            if index >= len(arrivals):
                break
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for frame in frames:
                yield arrivals[index], frame.to_ndarray(format="gray")
    except av.error.FFmpegError:
        pass  # a truncated last fragment (the stream was cut): keep what decoded
    finally:
        container.close()


def read_cells(gray: np.ndarray, geometry: WallGeometry, which: list[int] | None = None):
    cells = geometry.cells()
    indices = range(len(cells)) if which is None else which
    grid = (geometry.grid, geometry.grid)
    return {i: cell_stamp(gray, cells[i], grid, SOURCE) for i in indices}


def frames_of(messages: list[tuple[float, bytes]], kind: str, window: tuple[float, float],
              from_start: bool) -> Iterator[tuple[float, np.ndarray]]:
    """Decoded grey frames: JPEG ones only where needed; fMP4 all (each needs the last)."""
    if kind == "fmp4":
        yield from fmp4_frames(messages)
        return
    start, end = window
    wanted = [m for m in messages if m[0] < end and (from_start or m[0] >= start)]
    yield from jpeg_frames(wanted)


def analyse(messages: list[tuple[float, bytes]], kind: str, geometry: WallGeometry,
            window: tuple[float, float], started_wall: float | None = None) -> dict:
    """Stamps of the frames arriving in `window` (wall-clock times); with `started_wall`,
    also the time from then to the first frame where every cell shows its camera.
    `kind`: "jpeg" (one JPEG per message) or "fmp4" (init segment, then fragments)."""
    frames = frames_of(messages, kind, window, started_wall is not None)
    start, end = window
    tags = geometry.tags
    live = [i for i, is_live in enumerate(geometry.live) if is_live]
    ages: list[int] = []
    spreads: list[int] = []
    unreadable = 0
    cells_read = 0
    changes = [0] * len(tags)
    previous: list[int | None] = [None] * len(tags)
    received = 0
    full_wall_at: float | None = None
    first_frame_at: float | None = None
    for arrival, gray in frames:
        if first_frame_at is None:
            first_frame_at = arrival
        if started_wall is not None and full_wall_at is None:
            stamps = read_cells(gray, geometry)
            if all(s is not None and s.tag == tag for s, tag in zip(stamps.values(), tags)):
                full_wall_at = arrival
        if arrival >= end:
            if started_wall is None or full_wall_at is not None:
                break
            continue
        if arrival < start:
            continue
        received += 1
        now_ms = int(arrival * 1000) % MS_MODULO
        frame_ages = []
        for index, stamp in read_cells(gray, geometry).items():
            if stamp is None or stamp.tag != tags[index]:
                unreadable += 1
                continue
            cells_read += 1
            if stamp.ms != previous[index]:
                if previous[index] is not None:
                    changes[index] += 1
                previous[index] = stamp.ms
            if index in live:
                frame_ages.append(stamp.age_ms(now_ms))
        ages.extend(frame_ages)
        if len(frame_ages) > 1:
            spreads.append(max(frame_ages) - min(frame_ages))
    seconds = max(1e-6, end - start)
    return {
        "frames": received,
        "cells_read": cells_read,
        "cells_unreadable": unreadable,
        "ages": ages,
        "spreads": spreads,
        "fresh": [count / seconds for count in changes],
        "first_frame_s": (first_frame_at - started_wall
                          if started_wall is not None and first_frame_at is not None else None),
        "full_wall_s": (full_wall_at - started_wall
                        if started_wall is not None and full_wall_at is not None else None),
    }


def summarise(parts: list[dict]) -> dict:
    """One summary of several walls' (or viewers') analyses."""
    ages = [a for part in parts for a in part["ages"]]
    spreads = [s for part in parts for s in part["spreads"]]
    fresh = [f for part in parts for f in part["fresh"]]
    full = [part["full_wall_s"] for part in parts if part.get("full_wall_s") is not None]
    first = [part["first_frame_s"] for part in parts if part.get("first_frame_s") is not None]
    return {
        "frames_analysed": sum(part["frames"] for part in parts),
        "cells_read": sum(part["cells_read"] for part in parts),
        "cells_unreadable": sum(part["cells_unreadable"] for part in parts),
        "latency_samples": len(ages),
        "latency_p50_ms": percentile(ages, 50),
        "latency_p95_ms": percentile(ages, 95),
        "latency_max_ms": float(max(ages)) if ages else None,
        "spread_p50_ms": percentile(spreads, 50),
        "spread_p95_ms": percentile(spreads, 95),
        "spread_max_ms": float(max(spreads)) if spreads else None,
        "cell_fresh_fps_min": min(fresh) if fresh else None,
        "cell_fresh_fps_mean": float(np.mean(fresh)) if fresh else None,
        "first_frame_s": max(first) if first else None,
        "full_wall_s": max(full) if len(full) == len(parts) and full else None,
    }


def viewer_fps(times: list[float], window: tuple[float, float]) -> float:
    """Frames that arrived in the window, per second."""
    start, end = window
    return sum(1 for t in times if start <= t < end) / max(1e-6, end - start)
