"""Is a camera's picture usable? Frozen, black, covered, blurred, moved, too dark, too bright:
judged continuously, for every camera, on the small grey pictures of ingest/camera/sight.py,
against a reference picture learned from the camera itself.

- A condition is raised once it has held for its `hold` (10 s for frozen, black and covered,
  30 s for the others), and cleared once it has been gone for CLEAR_AFTER: a passing lorry
  or a headlight raises nothing, and the time a repair took can be read off since/until.
- The reference is learned once the scene has been stable for REFERENCE_SAMPLES samples
  (a pixel-wise median of them: passers-by leave it), one per light level (day, night), and
  refreshed slowly, only from pictures that raise nothing and still look like it: a slow
  tamper is never learned. An operator may accept the current view as the new reference.
- too_dark and too_bright are absolute thresholds on the mean level: reported, never
  counted as tampering (`ok` ignores them).

Pure: no threads, no I/O; times come in with each picture (the benchmark feeds simulated
time, bench/health.py).
"""

from __future__ import annotations

import enum
import warnings
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ingest.camera.sight import (Sight, SightMaker, cell_correlation, changed_cells,
                                 correlation_moved_back, rotation_against, shift_against)


class Condition(str, enum.Enum):
    FROZEN = "frozen"
    BLACK = "black"
    COVERED = "covered"
    BLURRED = "blurred"
    MOVED = "moved"
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"


ALL_CHECKS = frozenset(Condition)
TAMPERING = frozenset({Condition.FROZEN, Condition.BLACK, Condition.COVERED, Condition.BLURRED,
                       Condition.MOVED})
HOLD = {Condition.FROZEN: 10.0, Condition.BLACK: 10.0, Condition.COVERED: 10.0,
        Condition.BLURRED: 30.0, Condition.MOVED: 30.0, Condition.TOO_DARK: 30.0,
        Condition.TOO_BRIGHT: 30.0}
CLEAR_AFTER = 30.0       # seconds gone before a raised condition clears
PENDING_GRACE = 4.5      # a check that misses a pending condition this long resets it
CHECK_INTERVAL = 1.0     # at most one check a second
SHIFT_INTERVAL = 10.0    # phase correlation at most this often, unless the scene looks lost
REFERENCE_SAMPLES = 6    # samples, REFERENCE_EVERY apart, that make a reference
REFERENCE_EVERY = 10.0
FIRST_REFERENCE_EVERY = 3.0  # a camera with no reference at all gets one in 15-20 s
REFRESH_EVERY = 600.0    # a learned reference is refreshed at most this often
NIGHT_LEVEL = 60.0       # mean grey level under which the night reference is used

# Thresholds at sensitivity 1 (cameras[].health.sensitivity: higher finds more).
BLACK_LEVEL, BLACK_SPREAD = 22.0, 8.0
DARK_LEVEL, BRIGHT_LEVEL = 35.0, 225.0
FROZEN_CHANGE = 0.5      # grey levels of mean difference that make a cell changed
FROZEN_CELLS = 0.05      # at most this share of cells changed (an on-screen clock) is frozen
UNIFORM_STD = 3.0        # a cell this flat shows nothing
LOST_CORRELATION = 0.35  # a cell correlating less with its reference shows something else
COVERED_SHARE = 0.5
BLUR_RATIO = 0.6         # sharpness under this share of the reference's is defocus
SHIFT_SHARE = 0.04       # a confident shift of this share of the width is a move
SHIFT_RESPONSE = 0.08
TURN_DEGREES = 3.0       # a confident turn of this much is a move


@dataclass
class ConditionState:
    condition: Condition
    pending_since: float | None = None   # picture time first seen (not yet raised)
    since_wall: float | None = None
    last_seen: float | None = None
    raised: bool = False
    seen_last_check: bool = False


@dataclass(frozen=True)
class Change:
    """A condition raised or cleared: what the log, the metrics and the journal tell."""

    condition: Condition
    raised: bool
    since: float            # wall time the condition began
    until: float | None     # wall time it ended (cleared only)


@dataclass(frozen=True)
class PictureStatus:
    """What the API shows of a camera's picture: `ok` unless a tampering condition is
    raised (too_dark and too_bright are shown, never counted), the raised conditions with
    the wall time each began, when the newest reference was learned."""

    ok: bool
    conditions: tuple[tuple[str, float], ...]
    reference_at: float | None
    checks: tuple[str, ...]
    # The last clearing of each condition that cleared: (condition, since, until), so
    # whoever reads statuses (the journal of camera health) gets the true end, not the
    # moment it noticed (a clearing is told CLEAR_AFTER seconds after the end).
    ended: tuple[tuple[str, float, float], ...] = ()


@dataclass
class Reference:
    sight: Sight
    sharpness: np.ndarray  # per cell, the median of the samples'
    learned_at: float       # wall time
    refreshed_at: float     # picture time


@dataclass
class PictureJudge:
    checks: frozenset[Condition] = ALL_CHECKS
    sensitivity: float = 1.0
    maker: SightMaker = field(default_factory=SightMaker)

    def __post_init__(self) -> None:
        self._states = {c: ConditionState(c) for c in Condition}
        self._previous: Sight | None = None
        self._samples: deque[Sight] = deque(maxlen=REFERENCE_SAMPLES)
        self._references: dict[str, Reference] = {}
        self._last_shift: tuple[float, tuple[float, float, float, float, float]] | None = None
        self._last_check: float | None = None
        self._previous_wall = 0.0
        self._confirmed_move: tuple[float, float, float, float] | None = None

    # -- what others read ----------------------------------------------------------------
    def due(self, taken: float) -> bool:
        return self._last_check is None or taken - self._last_check >= CHECK_INTERVAL * 0.95

    @property
    def ok(self) -> bool:
        return not any(s.raised and s.condition in TAMPERING for s in self._states.values())

    def status(self) -> PictureStatus:
        raised = sorted((s for s in self._states.values() if s.raised), key=lambda s: s.since_wall or 0.0)
        return PictureStatus(self.ok, tuple((s.condition.value, s.since_wall or 0.0) for s in raised),
                             self.reference_at(), tuple(sorted(c.value for c in self.checks)))

    def reference_at(self) -> float | None:
        learned = [r.learned_at for r in self._references.values()]
        return max(learned) if learned else None

    def references(self) -> dict[str, Reference]:
        return dict(self._references)

    # -- judging -------------------------------------------------------------------------
    def judge(self, sight: Sight, wall: float) -> list[Change]:
        """One check of one picture (at most one a second: see `due`)."""
        self._last_check = sight.taken
        shape = sight.grey.shape
        if (self._previous is not None and self._previous.grey.shape != shape) or any(
                r.sight.grey.shape != shape for r in self._references.values()):
            # The camera's picture changed size: nothing learned of the old one compares.
            self._references.clear()
            self._samples.clear()
            self._previous = None
        # A frozen picture is identical to the one before: frozen since that one, at least.
        frozen_from = None if self._previous is None else (self._previous.taken, self._previous_wall)
        observed = self._observe(sight) & self.checks
        self._learn(sight, wall, observed)
        self._previous, self._previous_wall = sight, wall
        return list(self._hysteresis(observed, sight.taken, wall, frozen_from))

    def accept_reference(self, wall: float) -> bool:
        """The operator says the current view is right: it becomes the reference of its
        light level at once. False when there is no picture yet."""
        if self._previous is None:
            return False
        # The other light level's reference shows the old view: learned again when it comes.
        self._references.clear()
        self._set_reference(self._previous, [self._previous], wall)
        return True

    def restore(self, level: str, grey: np.ndarray, sharpness: np.ndarray, learned_at: float,
                taken: float) -> None:
        """A reference kept across a restart (server side: the state directory)."""
        sight = self.maker.from_grey(grey, taken)
        self._references[level] = Reference(sight, sharpness, learned_at, taken)

    def _observe(self, sight: Sight) -> set[Condition]:
        # Levels move little with the sensitivity (0.25-4): a dim street is not black.
        s, level = self.sensitivity, min(max(self.sensitivity, 0.5), 1.5)
        found: set[Condition] = set()
        black = sight.mean < BLACK_LEVEL * level and sight.spread < BLACK_SPREAD * level
        if black:
            found.add(Condition.BLACK)
        elif sight.mean < DARK_LEVEL * level:
            found.add(Condition.TOO_DARK)
        if sight.mean > 255 - (255 - BRIGHT_LEVEL) * level:
            found.add(Condition.TOO_BRIGHT)
        if black:
            return found
        judged = sight.cell_valid
        uniform = (sight.cell_std < UNIFORM_STD * min(s, 2.0)) & judged
        reference = self._reference_for(sight)
        if reference is not None:
            correlation = cell_correlation(self.maker, reference.sight, sight)
            was_uniform = reference.sight.cell_std < UNIFORM_STD
            structured = judged & ~was_uniform
            lost = self._lost(correlation, structured, uniform)
            covered_share = lost.sum() / max(1, structured.sum())
            if self._moved(reference, sight, structured, uniform, covered_share):
                found.add(Condition.MOVED)
            elif covered_share >= COVERED_SHARE:
                found.add(Condition.COVERED)
            elif self._blurred(reference, sight):
                found.add(Condition.BLURRED)
        elif uniform.sum() >= 0.9 * max(1, judged.sum()):
            found.add(Condition.COVERED)  # no reference yet: only a picture showing nothing
        previous = self._previous
        if previous is not None and Condition.COVERED not in found and sight.taken - previous.taken <= 5.0:
            # More sensitive: a larger change still counts as none (a noisy frozen encoder).
            changed = changed_cells(self.maker, previous, sight, FROZEN_CHANGE * min(s, 2.0)) & judged
            if changed.sum() <= FROZEN_CELLS * max(1, judged.sum()) and not uniform[judged].all():
                found.add(Condition.FROZEN)
        return found

    def _blurred(self, reference: Reference, sight: Sight) -> bool:
        """The median cell's sharpness against the reference's same cell (cells too flat
        in either left out; at least a quarter of the picture must be judged)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = sight.sharpness / reference.sharpness
        ratios = ratios[np.isfinite(ratios)]
        if ratios.size < max(3, reference.sharpness.size // 4):
            return False
        return float(np.median(ratios)) < min(0.95, BLUR_RATIO * self.sensitivity)

    def _lost(self, correlation: np.ndarray, structured: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """Cells that showed something in the reference and show something else now."""
        # 0.35 at sensitivity 1, towards (never reaching) 1 above, towards 0 below.
        threshold = 1 - (1 - LOST_CORRELATION) / self.sensitivity
        return structured & (uniform | (np.nan_to_num(correlation, nan=1.0) < threshold))

    def _moved(self, reference: Reference, sight: Sight, structured: np.ndarray, uniform: np.ndarray,
               covered_share: float) -> bool:
        """Phase correlation against the reference (a shift) and of their log-polar spectra
        (a turn) at most every SHIFT_INTERVAL, at every check while the scene looks lost
        (moved or covered: which one, the peaks tell), then confirmed: moved back by the
        shift or turn found, the picture finds its reference again (a cover's texture may
        correlate by chance with a moved reference; it never does with the reference itself)."""
        if uniform.sum() >= 0.5 * max(1, sight.cell_valid.sum()):
            return False  # a picture showing little cannot tell a move
        last = self._last_shift
        if (last is None or sight.taken - last[0] >= SHIFT_INTERVAL
                or (covered_share >= COVERED_SHARE * 0.6 and sight.taken - last[0] >= 1.5)):
            self._last_shift = last = (sight.taken, (*shift_against(reference.sight, sight),
                                                     *rotation_against(reference.sight, sight)))
        dx, dy, response, angle, turned = last[1]
        width = sight.grey.shape[1]
        candidates = []
        if response >= SHIFT_RESPONSE and np.hypot(dx, dy) >= SHIFT_SHARE * width / self.sensitivity:
            candidates.append((dx, dy, 0.0))
        if turned >= SHIFT_RESPONSE and abs(angle) >= TURN_DEGREES / self.sensitivity:
            candidates.append((0.0, 0.0, angle))
        confirmed = self._confirmed_move
        if confirmed is not None and sight.taken - confirmed[3] <= 6 * SHIFT_INTERVAL:
            candidates.append(confirmed[:3])  # a camera knocked out of aim stays where it went
        for cx, cy, ca in candidates:
            back = correlation_moved_back(self.maker, reference.sight, sight, cx, cy, ca)
            lost_back = self._lost(back, structured, uniform).sum() / max(1, structured.sum())
            # Moved back, the picture would not be called covered, and far less of it is lost.
            if lost_back < COVERED_SHARE and lost_back <= covered_share - 0.15:
                self._confirmed_move = (cx, cy, ca, sight.taken)
                return True
        return False

    # -- the reference -------------------------------------------------------------------
    @staticmethod
    def _level(sight: Sight) -> str:
        return "night" if sight.mean < NIGHT_LEVEL else "day"

    def _reference_for(self, sight: Sight) -> Reference | None:
        """The reference of the picture's light level. None until that level's own is
        learned (in about 20 s of stable picture): judged against the day's, a night picture
        could look covered, and a condition under way would keep the night's reference from
        ever being learned."""
        return self._references.get(self._level(sight))

    def _learn(self, sight: Sight, wall: float, observed: set[Condition]) -> None:
        if observed & TAMPERING or any(s.pending_since is not None or s.raised
                                       for s in self._states.values() if s.condition in TAMPERING):
            self._samples.clear()  # nothing is learned from a picture under suspicion
            return
        level = self._level(sight)
        every = REFERENCE_EVERY if level in self._references else FIRST_REFERENCE_EVERY
        if self._samples and sight.taken - self._samples[-1].taken < every:
            return
        if self._samples and self._level(self._samples[-1]) != level:
            self._samples.clear()
        self._samples.append(sight)
        if len(self._samples) < REFERENCE_SAMPLES:
            return
        current = self._references.get(level)
        if current is None or sight.taken - current.refreshed_at >= REFRESH_EVERY:
            self._set_reference(sight, list(self._samples), wall)
            self._samples.clear()

    def _set_reference(self, sight: Sight, samples: list[Sight], wall: float) -> None:
        grey = np.median(np.stack([s.grey for s in samples]), axis=0).astype(np.uint8)
        made = self.maker.from_grey(grey, sight.taken)
        with warnings.catch_warnings():  # a cell flat in every sample stays NaN, quietly
            warnings.simplefilter("ignore", RuntimeWarning)
            sharpness = np.nanmedian(np.stack([s.sharpness for s in samples]), axis=0)
        self._references[self._level(sight)] = Reference(made, sharpness, wall, sight.taken)

    # -- hysteresis ----------------------------------------------------------------------
    def _hysteresis(self, observed: set[Condition], taken: float, wall: float,
                    frozen_from: tuple[float, float] | None) -> Iterable[Change]:
        for condition, state in self._states.items():
            if condition in observed:
                # Raised, a single picture that shows it again (a lorry passing a camera
                # whose cover was just removed) does not put its clearing off: two in a row do.
                if not state.raised or state.seen_last_check:
                    state.last_seen = taken
                state.seen_last_check = True
                if state.pending_since is None:
                    state.pending_since, state.since_wall = taken, wall
                    if condition is Condition.FROZEN and frozen_from is not None:
                        state.pending_since, state.since_wall = frozen_from
                if not state.raised and taken - state.pending_since >= HOLD[condition]:
                    state.raised = True
                    yield Change(condition, True, state.since_wall, None)
                continue
            state.seen_last_check = False
            if state.last_seen is None:
                continue
            gone = taken - state.last_seen
            if state.raised and gone >= CLEAR_AFTER:
                until = wall - gone
                yield Change(condition, False, state.since_wall, until)
                self._states[condition] = ConditionState(condition)
            elif not state.raised and gone >= PENDING_GRACE:
                self._states[condition] = ConditionState(condition)
