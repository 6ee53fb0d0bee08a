"""Compositor: one thread per active wall, on a clock at the wall's fps.

Each tick copies the cells whose tile changed into a YUV420 canvas, draws a card for
cells whose camera is down, encodes the canvas once per format that has viewers (JPEG,
H.264 in fMP4), and hands the bytes to `deliver(format, frame)`.
A dead camera never delays the wall: cells only ever read the latest tile, never wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from ingest.camera.health import CameraState
from ingest.camera.worker import CameraWorker, TileRequest
from ingest.encode import EncodedFrame, Format, WallEncoder, formats
from ingest.encode.jpeg import JPEG
from ingest.picture.cards import TINT_NEUTRAL, TINT_OFFLINE, TINT_STALLED, draw_card, since_text
from ingest.picture.layout import CellSpec, Rect, cell_rect
from ingest.picture.overlay import TextRenderer
from ingest.picture.tiles import Tile, TileStore, i420_planes, new_i420
from ingest.rates import RateMeter

logger = logging.getLogger(__name__)

KEEPALIVE_INTERVAL = 1.0  # seconds: the longest a wall goes without sending a frame


@dataclass(frozen=True)
class WallSpec:
    id: str
    name: str
    width: int
    height: int
    fps: float
    columns: int
    rows: int
    cells: tuple[CellSpec, ...]
    # Single-camera views tick fast and send a frame only when the picture changed, so
    # their output follows the camera's own rate (which is not known in advance).
    follow_source: bool = False


@dataclass
class _Cell:
    spec: CellSpec
    rect: Rect
    worker: CameraWorker | None
    request: TileRequest | None = None
    shown: object = None  # the tile or card key currently on the canvas
    card: tuple[tuple, np.ndarray] | None = None  # (key, image) while the cell shows a card


def blit(canvas: np.ndarray, canvas_size: tuple[int, int], image: np.ndarray, rect: Rect) -> None:
    """Copy an I420 image of rect's size into the canvas at rect (all edges even)."""
    cy, cu, cv = i420_planes(canvas, *canvas_size)
    iy, iu, iv = i420_planes(image, rect.width, rect.height)
    cy[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width] = iy
    half = (slice(rect.y // 2, (rect.y + rect.height) // 2), slice(rect.x // 2, (rect.x + rect.width) // 2))
    cu[half] = iu
    cv[half] = iv


@dataclass
class _Sending:
    """What the compositor remembers between ticks about what it sent."""

    previous: frozenset[str] = frozenset()  # formats wanted at the previous tick
    first_ticks: int = 0  # ticks left that send whatever changed (a new format, a keyframe)
    last_sent: float = 0.0
    last_by_format: dict[str, float] = field(default_factory=dict)


class _Cadence:
    """The wall's clock: one tick per period, late ticks counted, never a burst."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.next_tick = time.monotonic()

    def tick_done(self, done: float) -> bool:
        """The tick that started at the last due time ended at `done`: was it late? Late
        by less than a tick (a busy machine wakes us a few ms late, one encode took
        longer): the next one starts at once and the ones after keep the cadence, so
        jitter costs no frames (restarting the cadence from here lost each tick's
        lateness: walls composed 14.1 fps of 15 on bench B). Late by a whole tick or more:
        skip ticks, never burst."""
        self.next_tick += self.period
        if self.next_tick >= done:
            return False
        if done - self.next_tick >= self.period:
            self.next_tick = done
        return True

    def wait(self, now: float) -> float:
        return max(0.0, self.next_tick - now)


class Compositor:
    """Composes and encodes one wall while started. `deliver` is called from its thread."""

    def __init__(self, spec: WallSpec, workers: Mapping[str, CameraWorker], store: TileStore,
                 deliver: Callable[[str, EncodedFrame], None],
                 wanted_formats: Callable[[], Collection[str]] = lambda: (JPEG,),
                 room: Callable[[str], bool] = lambda fmt: True) -> None:
        self.spec = spec
        self._workers = workers
        self._store = store
        self._deliver = deliver
        self._wanted_formats = wanted_formats
        self._room = room  # would a frame of this format reach a viewer now (ingest/hub.py)
        self._keyframe_requested = False
        # Card texts: a title and two or three lines per cell, drawn when a cell's state
        # changes; room for every cell's, so that many cameras down never thrash it.
        self._text = TextRenderer(capacity=4 * len(spec.cells) + 8)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.frames = 0
        # Ticks, and those that ended after the next was due: the machine (or the GIL) did
        # not give this wall its time. ingest/wall/governor.py reads both.
        self.ticks = 0
        self.late_ticks = 0
        # Ticks whose JPEG was not encoded because every viewer still had frames waiting:
        # the viewers are late, if not the wall (the governor counts them as late).
        self.starved_ticks = 0
        self.output_rate = RateMeter()
        self.compose_seconds = 0.0

    def request_keyframe(self) -> None:
        """A new or lagging H.264 viewer needs a keyframe: make the next frame one."""
        self._keyframe_requested = True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._lock:
            if self.running:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop,),
                                            name=f"wall-{self.spec.id}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and join (blocking: from an executor or a thread, not the event loop)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join(timeout)

    def _attach(self) -> list[_Cell]:
        cells = []
        for rank, spec in enumerate(self.spec.cells):
            rect = cell_rect(spec, self.spec.columns, self.spec.rows, self.spec.width, self.spec.height)
            worker = self._workers.get(spec.camera_id) if spec.camera_id else None
            cell = _Cell(spec, rect, worker)
            if worker is not None:
                cell.request = worker.attach((rect.width, rect.height), self.spec.fps, rank=rank)
            cells.append(cell)
        return cells

    def _follow_workers(self, cells: list[_Cell]) -> None:
        """A camera's worker replaced under the wall (in a cluster, the camera changed
        owner): its cell asks the new worker for tiles; the other cells go on untouched."""
        for rank, cell in enumerate(cells):
            if not cell.spec.camera_id:
                continue
            current = self._workers.get(cell.spec.camera_id)
            if current is cell.worker:
                continue
            if cell.worker is not None and cell.request is not None:
                cell.worker.detach(cell.request)
            cell.worker, cell.request = current, None
            if current is not None:
                cell.request = current.attach((cell.rect.width, cell.rect.height), self.spec.fps, rank=rank)

    def _run(self, stop: threading.Event) -> None:
        canvas = new_i420(self.spec.width, self.spec.height)
        cells = self._attach()
        cadence = _Cadence(1.0 / self.spec.fps)
        sending = _Sending()
        encoders: dict[str, WallEncoder] = {}
        try:
            while not stop.is_set():
                started = time.monotonic()
                self._follow_workers(cells)
                changed = [self._update_cell(canvas, cell) for cell in cells]
                wanted = self._wanted()
                chosen = self._choose_formats(wanted, started, sending)
                if self._due(chosen, cells, changed, started, sending):
                    self._encode(canvas, chosen, encoders, started, sending)
                for name in [name for name in encoders if name not in wanted]:
                    # The next viewer of that format gets a fresh encoder (and init segment).
                    encoders.pop(name).close()
                done = time.monotonic()
                self.compose_seconds += done - started
                self.ticks += 1
                if cadence.tick_done(done):
                    self.late_ticks += 1
                stop.wait(cadence.wait(done))
        except Exception:  # noqa: BLE001 - log, and let the owner see `running` is False
            logger.exception("wall %s: compositor failed", self.spec.id)
        finally:
            for encoder in encoders.values():
                encoder.close()
            for cell in cells:
                if cell.worker is not None and cell.request is not None:
                    cell.worker.detach(cell.request)

    def _wanted(self) -> dict[str, Format]:
        """The formats someone watches now, in the registry's order."""
        names = frozenset(self._wanted_formats())
        return {name: output for name, output in formats().items() if name in names}

    def _choose_formats(self, wanted: dict[str, Format], started: float,
                        sending: _Sending) -> dict[str, Format]:
        """The formats to encode this tick, if the tick sends at all."""
        keyframe_wanted = self._keyframe_requested and any(f.dependent for f in wanted.values())
        if keyframe_wanted or not wanted.keys() <= sending.previous:
            # A new format's first frames, or the keyframe a new viewer asked for: sent
            # whatever changed, for two ticks (the mp4 muxer writes a frame's fragment
            # when the next frame arrives: ingest/encode/fmp4.py).
            sending.first_ticks = 2
        sending.previous = frozenset(wanted)
        chosen = dict(wanted)
        for name, output in wanted.items():
            # A format whose frames stand alone is not encoded while every viewer still has
            # frames waiting (a machine short of CPU, a stalled screen): it would only push
            # out a frame nobody took (bench B: 12 fps encoded for 4.5 delivered). Once a
            # second regardless: the hub notices stalled viewers when it publishes.
            if (not output.dependent and not self._room(name)
                    and started - sending.last_by_format.get(name, 0.0) < KEEPALIVE_INTERVAL):
                del chosen[name]
                self.starved_ticks += 1
        return chosen

    def _due(self, chosen: dict[str, Format], cells: list[_Cell], changed: list[bool],
             started: float, sending: _Sending) -> bool:
        """A wall with live pictures goes out at its rate. One showing only cards that did
        not change is not encoded again, but sent at least once a second so viewers know
        it is alive, and at once to the first viewer of a format (whose first frame would
        otherwise wait for the next change or second)."""
        showing_video = (not self.spec.follow_source
                         and any(isinstance(cell.shown, Tile) for cell in cells))
        return bool(chosen) and (showing_video or any(changed) or sending.first_ticks > 0
                                 or started - sending.last_sent >= KEEPALIVE_INTERVAL)

    def _encode(self, canvas: np.ndarray, chosen: dict[str, Format],
                encoders: dict[str, WallEncoder], started: float, sending: _Sending) -> None:
        """Encode the canvas once per chosen format and deliver what comes out."""
        sending.first_ticks = max(0, sending.first_ticks - 1)
        self.frames += 1
        now_wall = time.time()
        for name, output in chosen.items():
            encoder = encoders.get(name)
            if encoder is None:
                encoder = encoders[name] = output.make(self.spec.width, self.spec.height, self.spec.fps)
            keyframe = False
            if output.dependent:
                keyframe, self._keyframe_requested = self._keyframe_requested, False
            for frame in encoder.encode(canvas, self.frames, now_wall, keyframe):
                self._deliver(name, frame)
            sending.last_by_format[name] = started
        sending.last_sent = started
        self.output_rate.add(started)

    def _update_cell(self, canvas: np.ndarray, cell: _Cell) -> bool:
        """Bring one cell up to date; True if its pixels changed."""
        size = (self.spec.width, self.spec.height)
        if cell.worker is None:
            key = ("empty",) if cell.spec.camera_id is None else ("unknown", cell.spec.camera_id)
            if cell.shown != key:
                blit(canvas, size, self._card(cell, key), cell.rect)
                cell.shown = key
                return True
            return False
        status = cell.worker.status()
        tile: Tile | None = None
        if status.state == CameraState.LIVE:
            tile = self._store.latest(cell.spec.camera_id, (cell.rect.width, cell.rect.height))
        if tile is not None:
            if cell.shown is not tile:
                blit(canvas, size, tile.i420, cell.rect)
                cell.shown, cell.card = tile, None
                return True
            return False
        key = (status.state.value, round(status.since), status.reason)
        if cell.shown != key:
            blit(canvas, size, self._card(cell, key), cell.rect)
            cell.shown = key
            return True
        return False

    def _card(self, cell: _Cell, key: tuple) -> np.ndarray:
        """The card for `key`, kept on the cell while shown: one card per cell at most (a
        cache of every outage's card grew with each flap: 3 MB each at 1920x1080)."""
        if cell.card is not None and cell.card[0] == key:
            return cell.card[1]
        width, height = cell.rect.width, cell.rect.height
        kind = key[0]
        if kind == "empty":
            card = draw_card(width, height, "", (), self._text)
        elif kind == "unknown":
            card = draw_card(width, height, "NO CAMERA", (str(key[1]),), self._text)
        else:
            camera = cell.worker.camera
            title = {"stalled": "STALLED", "connecting": "CONNECTING", "live": "CONNECTING"}.get(kind, "NO SIGNAL")
            tint = {"stalled": TINT_STALLED, "offline": TINT_OFFLINE}.get(kind, TINT_NEUTRAL)
            lines = (f"{camera.name} – {camera.commune_name}", since_text(key[1]))
            if key[2] and kind != "live":
                lines += (str(key[2])[:60],)
            card = draw_card(width, height, title, lines, self._text, tint)
        cell.card = (key, card)
        return card
