"""Camera availability from the journaled history: how much of a window each camera's stream
was up and its picture usable, how often it failed and how fast it came back. Pure: the
caller reads the periods, works and runs from the journal; nothing here touches a database.

Definitions, and why they are these:
- The window W is [since, min(until, now)]: the future is not history, so a window reaching
  past `now` is cut there. A window ending at or before `since` is empty: every duration is
  0 and every percentage None (no time, no ratio), rather than a misleading 100 %.
- known = union(runs) ∩ W. While no Vigie node ran, nobody looked at the camera; that time is
  "unknown", never counted as the camera's outage (a maintenance of Vigie must not lower
  the figures a commune is held to). Runs of several nodes overlap: only their union counts.
- planned = (union of the works covering the camera, by camera or by its commune) ∩ known;
  counted = known − planned. Declared works are an agreed outage: out of the ratio, shown
  apart (planned_pct) so they cannot hide a real failure.
- down = union(stream periods) ∩ counted; an open period lasts up to `now`.
- bad_picture = union(stream periods, tampering picture periods) ∩ counted: without a stream
  there is no usable picture, so the picture ratio is never better than the stream ratio.
  "too_dark"/"too_bright" only inform (night, sun): never counted, never an incident.
- stream_up_pct = 100·(counted − down)/counted, picture_usable_pct = 100·(counted −
  bad_picture)/counted, unknown_pct = 100·(|W| − known)/|W|, planned_pct = 100·planned/|W|;
  None when the denominator is 0. Percentages and seconds are rounded to 3 decimals.
- An incident is the stream and tampering periods of one camera sharing an incident key (a
  Vigie restart splits one outage into several periods; it stays one failure). It starts at
  the first start (or its periods' incident_since, when earlier), ends at the last end, or is open if any period is. It counts when it
  overlaps a non-empty W; it is planned when it starts inside a works covering the camera,
  and then counts only in planned_incidents: never in MTTR nor open_incidents.
- mttr_seconds: mean (end − start) of the closed, unplanned incidents counted in the window
  whose end lies in (since, W_end]: wall-clock, restarts included, because that is how long
  the camera was lost to the operators. None if there is none.
- open_incidents: the unplanned incidents of the window that are still open now (what needs
  fixing now; for the current month, every open incident).
- A commune adds up the seconds of its cameras and computes its percentages from the sums
  (time-weighted: a camera seen 10 minutes weighs less than one seen all month), and its
  MTTR over all its cameras' incidents (not a mean of means).
"""

from __future__ import annotations

import csv
import io
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from server.audit.rows import _csv_cell, _iso

# Picture states that make a picture unusable; "too_dark"/"too_bright" are informational.
TAMPERING = frozenset({"frozen", "black", "covered", "blurred", "moved"})
STREAM_STATES = frozenset({"offline", "stalled"})

CSV_COLUMNS = ("scope", "commune", "camera", "since_utc", "until_utc", "stream_up_pct",
               "picture_usable_pct", "unknown_pct", "planned_pct", "incidents",
               "planned_incidents", "mttr_seconds", "open_incidents", "counted_seconds",
               "down_seconds", "bad_picture_seconds")

Span = tuple[float, float]


@dataclass(frozen=True)
class Period:
    """A stretch of one bad state of one camera, as journaled."""

    camera: str
    kind: str           # "stream" | "picture"
    state: str          # stream: offline|stalled; picture: one of TAMPERING or too_dark|too_bright
    start: float        # epoch seconds
    end: float | None   # None: still open (lasts up to `now`)
    incident: str       # incident key; periods of one incident (split by a restart) share it
    # When the incident began, if before this period (a restart cut it): its earlier
    # periods may lie outside the range read.
    incident_since: float | None = None


@dataclass(frozen=True)
class Works:
    """Planned works declared by an operator."""

    key: str
    cameras: frozenset[str]
    communes: frozenset[str]  # works on a commune cover all its cameras
    start: float
    end: float
    reason: str


def _union(spans: Iterable[Span]) -> list[Span]:
    """Sorted, disjoint spans; empty ones dropped so lengths never go negative."""
    merged: list[Span] = []
    for start, end in sorted(span for span in spans if span[1] > span[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _end(span: Span) -> float:
    return span[1]


def _intersect(a: list[Span], b: list[Span]) -> list[Span]:
    """a ∩ b for sorted disjoint lists: each span of the shorter one is looked up by bisection
    in the longer, so a camera with few periods costs little against a long run history."""
    if len(a) > len(b):
        a, b = b, a
    out: list[Span] = []
    for start, end in a:
        i = bisect_right(b, start, key=_end)  # first span of b ending after `start`
        while i < len(b) and b[i][0] < end:
            low, high = max(start, b[i][0]), min(end, b[i][1])
            if high > low:
                out.append((low, high))
            i += 1
    return out


def _subtract(a: list[Span], b: list[Span]) -> list[Span]:
    """a − b for sorted disjoint lists, in one pass over both."""
    out: list[Span] = []
    i = 0
    for start, end in a:
        while i < len(b) and b[i][1] <= start:
            i += 1
        cursor, j = start, i
        while j < len(b) and b[j][0] < end:
            if b[j][0] > cursor:
                out.append((cursor, b[j][0]))
            cursor = max(cursor, b[j][1])
            j += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def _length(spans: list[Span]) -> float:
    return sum(end - start for start, end in spans)


def _failing(period: Period) -> bool:
    """A period that makes the camera fail: any stream period (an unknown stream state still
    means no stream; better to count it than to hide it), or a tampered picture."""
    return period.kind == "stream" or (period.kind == "picture" and period.state in TAMPERING)


@dataclass
class _Tally:
    """Raw (unrounded) figures of a camera or a commune; communes add their cameras' tallies,
    so their ratios are computed from sums and rounded once."""

    seconds: float = 0.0
    known: float = 0.0
    planned: float = 0.0
    counted: float = 0.0
    down: float = 0.0
    bad_picture: float = 0.0
    incidents: int = 0
    planned_incidents: int = 0
    open_incidents: int = 0
    repair_total: float = 0.0  # sum of the durations entering MTTR ...
    repaired: int = 0          # ... and their number: a commune's MTTR is not a mean of means

    def add(self, other: _Tally) -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def figures(self) -> dict[str, Any]:
        return {
            "seconds": _round(self.seconds), "known_seconds": _round(self.known),
            "planned_seconds": _round(self.planned), "counted_seconds": _round(self.counted),
            "down_seconds": _round(self.down), "bad_picture_seconds": _round(self.bad_picture),
            "stream_up_pct": _pct(self.counted - self.down, self.counted),
            "picture_usable_pct": _pct(self.counted - self.bad_picture, self.counted),
            "unknown_pct": _pct(self.seconds - self.known, self.seconds),
            "planned_pct": _pct(self.planned, self.seconds),
            "incidents": self.incidents, "planned_incidents": self.planned_incidents,
            "mttr_seconds": _round(self.repair_total / self.repaired) if self.repaired else None,
            "open_incidents": self.open_incidents,
        }


def _round(seconds: float) -> float:
    return max(0.0, round(seconds, 3))  # float dust below 0 would print as "-0.0"


def _pct(part: float, whole: float) -> float | None:
    if whole <= 0:
        return None
    return min(100.0, max(0.0, round(100.0 * part / whole, 3)))


def _camera(periods: list[Period], works: list[Works], known: list[Span], since: float,
            w_end: float, now: float) -> _Tally:
    tally = _Tally(seconds=max(0.0, w_end - since), known=_length(known))
    planned = _intersect(_union((w.start, w.end) for w in works), known) if works else []
    # Most cameras have no works: they share `known` as their counted time, no copy.
    counted = _subtract(known, planned) if planned else known
    tally.planned, tally.counted = _length(planned), _length(counted)
    failing = [p for p in periods if _failing(p)]
    stream = [(p.start, now if p.end is None else p.end) for p in failing if p.kind == "stream"]
    picture = [(p.start, now if p.end is None else p.end) for p in failing if p.kind != "stream"]
    tally.down = _length(_intersect(_union(stream), counted))
    tally.bad_picture = _length(_intersect(_union(stream + picture), counted))

    # Incidents: key -> [first start, last end or None once any period is open].
    spans: dict[str, list[Any]] = {}
    for period in failing:
        span = spans.setdefault(period.incident, [period.start, period.end])
        span[0] = min(span[0], period.start, period.incident_since or period.start)
        if span[1] is not None:
            span[1] = None if period.end is None else max(span[1], period.end)
    for start, end in spans.values():
        in_window = since < w_end and start < w_end and (now if end is None else end) > since
        if any(w.start <= start < w.end for w in works):
            # A failure begun during declared works is expected: shown, never held against.
            tally.planned_incidents += int(in_window)
            continue
        if not in_window:
            continue
        tally.open_incidents += int(end is None)
        tally.incidents += 1
        if end is not None and since < end <= w_end:
            tally.repair_total += end - start
            tally.repaired += 1
    return tally


def availability(cameras: Mapping[str, str], periods: Sequence[Period], works: Sequence[Works],
                 runs: Sequence[tuple[float, float | None]], since: float, until: float,
                 now: float) -> dict[str, Any]:
    """Per camera and per commune availability over [since, min(until, now)] (see the module
    docstring for the definitions)."""
    w_end = min(until, now)
    window = [(since, w_end)] if w_end > since else []
    known = _intersect(_union((start, now if end is None else end) for start, end in runs),
                       window)

    # One pass over periods and works, so the cost is never cameras × periods.
    by_camera: dict[str, list[Period]] = defaultdict(list)
    for period in periods:
        if period.camera in cameras:
            by_camera[period.camera].append(period)
    works_of_camera: dict[str, list[Works]] = defaultdict(list)
    works_of_commune: dict[str, list[Works]] = defaultdict(list)
    for item in works:
        for camera in item.cameras:
            works_of_camera[camera].append(item)
        for commune in item.communes:
            works_of_commune[commune].append(item)

    camera_rows: list[dict[str, Any]] = []
    communes: dict[str, _Tally] = {}
    commune_sizes: dict[str, int] = defaultdict(int)
    for camera, commune in sorted(cameras.items(), key=lambda item: (item[1], item[0])):
        # A works naming both the camera and its commune is one works, not two.
        covering = list({id(w): w for w in works_of_camera.get(camera, [])
                         + works_of_commune.get(commune, [])}.values())
        tally = _camera(by_camera.get(camera, []), covering, known, since, w_end, now)
        camera_rows.append({"camera": camera, "commune": commune, **tally.figures()})
        communes.setdefault(commune, _Tally()).add(tally)
        commune_sizes[commune] += 1

    commune_rows = [{"commune": commune, "cameras": commune_sizes[commune],
                     **communes[commune].figures()} for commune in sorted(communes)]
    return {"since": since, "until": w_end, "cameras": camera_rows, "communes": commune_rows}


def availability_csv(report: dict[str, Any]) -> str:
    """The report as CSV: a header, the communes, then the cameras; times in ISO 8601 UTC.
    Names come from the configuration but end up in a spreadsheet: every cell goes through
    the journal's formula guard."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    times = {"since_utc": _iso(report["since"]), "until_utc": _iso(report["until"])}
    for scope, rows in (("commune", report["communes"]), ("camera", report["cameras"])):
        for row in rows:
            cells = {**row, **times, "scope": scope}
            if scope == "commune":
                cells["camera"] = None
            writer.writerow([_csv_cell(cells.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()
