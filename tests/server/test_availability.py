"""Camera availability (server.audit.availability): small scripted histories whose figures were
computed by hand (the comment of each case shows the sum), then invariants on random ones."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from server.audit.availability import (TAMPERING, Period, Works, availability,
                                       availability_csv)

ALWAYS = ((0.0, None),)  # Vigie ran the whole time


def down(camera: str, start: float, end: float | None, key: str, state: str = "offline") -> Period:
    return Period(camera, "stream", state, start, end, key)


def picture(camera: str, state: str, start: float, end: float | None, key: str) -> Period:
    return Period(camera, "picture", state, start, end, key)


def works(key: str, start: float, end: float, cameras: tuple[str, ...] = (),
          communes: tuple[str, ...] = ()) -> Works:
    return Works(key, frozenset(cameras), frozenset(communes), start, end, "travaux")


@dataclass
class Case:
    cameras: dict[str, str]
    expect: dict[str, dict[str, Any]]             # camera -> the fields to check
    periods: list[Period] = field(default_factory=list)
    works: list[Works] = field(default_factory=list)
    runs: tuple[tuple[float, float | None], ...] = ALWAYS
    since: float = 0.0
    until: float = 1000.0
    now: float = 1000.0
    communes: dict[str, dict[str, Any]] = field(default_factory=dict)
    until_reported: float | None = None


CLEAN = {"seconds": 1000.0, "known_seconds": 1000.0, "counted_seconds": 1000.0,
         "down_seconds": 0.0, "stream_up_pct": 100.0, "picture_usable_pct": 100.0,
         "unknown_pct": 0.0, "planned_pct": 0.0, "incidents": 0, "planned_incidents": 0,
         "mttr_seconds": None, "open_incidents": 0}

CASES = [
    # Nothing journaled over 1000 s, all known → 100 %, no incident, no MTTR.
    pytest.param(Case({"A": "c1"}, {"A": CLEAN}), id="clean"),
    # offline 100..190 = 90 s of 1000 → stream up 91 %, picture too; 1 incident, MTTR 90.
    # A period of a camera not in `cameras` is ignored.
    pytest.param(Case({"A": "c1"}, {"A": {"down_seconds": 90.0, "stream_up_pct": 91.0,
                                          "picture_usable_pct": 91.0, "incidents": 1,
                                          "mttr_seconds": 90.0}},
                      periods=[down("A", 100, 190, "i1"), down("ghost", 0, 1000, "g")]),
                 id="one-outage"),
    # Window 1000..2000 (now 3000). 500..800 is before: ignored. 900..1100 → 100 s inside,
    # ends inside → MTTR 200 (its whole length). 1950..2050 → 50 s inside, ends after the
    # window → counted as an incident, not in MTTR. down 150 → 85 %.
    pytest.param(Case({"A": "c1"}, {"A": {"seconds": 1000.0, "down_seconds": 150.0,
                                          "stream_up_pct": 85.0, "incidents": 2,
                                          "mttr_seconds": 200.0}},
                      periods=[down("A", 500, 800, "i0"), down("A", 900, 1100, "i1"),
                               down("A", 1950, 2050, "i2")],
                      since=1000, until=2000, now=3000), id="clipped"),
    # Vigie down 400..500 → known 900, unknown 10 %. Stalled 350..400, Vigie stops, restarts,
    # the same incident 500..540: down 50 + 40 = 90 of 900 → 90 %; 1 incident, MTTR 540 − 350.
    pytest.param(Case({"A": "c1"}, {"A": {"known_seconds": 900.0, "counted_seconds": 900.0,
                                          "unknown_pct": 10.0, "down_seconds": 90.0,
                                          "stream_up_pct": 90.0, "incidents": 1,
                                          "mttr_seconds": 190.0}},
                      periods=[down("A", 350, 400, "k1", "stalled"),
                               down("A", 500, 540, "k1", "stalled")],
                      runs=((0, 400), (500, None))), id="vigie-restart"),
    # Two nodes 0..600 and 400..900, then one from 950: union 900 + 50 = 950 → unknown 5 %;
    # offline 100..195 = 95 of 950 → 90 %.
    pytest.param(Case({"A": "c1"}, {"A": {"known_seconds": 950.0, "unknown_pct": 5.0,
                                          "down_seconds": 95.0, "stream_up_pct": 90.0}},
                      periods=[down("A", 100, 195, "x")],
                      runs=((0, 600), (400, 900), (950, None))), id="overlapping-runs"),
    # frozen 200..300: stream up 100 %, bad picture 100 of 1000 → 90 %; 1 incident, MTTR 100.
    pytest.param(Case({"A": "c1"}, {"A": {"stream_up_pct": 100.0, "bad_picture_seconds": 100.0,
                                          "picture_usable_pct": 90.0, "incidents": 1,
                                          "mttr_seconds": 100.0}},
                      periods=[picture("A", "frozen", 200, 300, "p1")]), id="picture-frozen"),
    # too_dark 100..500 and too_bright 600..700 only inform: the camera stays clean.
    pytest.param(Case({"A": "c1"}, {"A": CLEAN},
                      periods=[picture("A", "too_dark", 100, 500, "d1"),
                               picture("A", "too_bright", 600, 700, "b1")]),
                 id="too-dark-not-counted"),
    # offline 100..200, covered 150..350: down 100 → 90 %; bad = 100..350 = 250 → 75 %;
    # 2 incidents of 100 and 200 → MTTR 150.
    pytest.param(Case({"A": "c1"}, {"A": {"down_seconds": 100.0, "stream_up_pct": 90.0,
                                          "bad_picture_seconds": 250.0,
                                          "picture_usable_pct": 75.0, "incidents": 2,
                                          "mttr_seconds": 150.0}},
                      periods=[down("A", 100, 200, "s1"), picture("A", "covered", 150, 350, "p1")]),
                 id="stream-and-picture-union"),
    # Works on A 100..300 → planned 200 (20 %), counted 800. offline 150..250 starts in the
    # works: planned incident, its time is planned. offline 500..550: down 50 → 750/800 =
    # 93.75 %; 1 incident, MTTR 50.
    pytest.param(Case({"A": "c1"}, {"A": {"planned_seconds": 200.0, "planned_pct": 20.0,
                                          "counted_seconds": 800.0, "down_seconds": 50.0,
                                          "stream_up_pct": 93.75, "incidents": 1,
                                          "planned_incidents": 1, "mttr_seconds": 50.0}},
                      periods=[down("A", 150, 250, "s1"), down("A", 500, 550, "s2")],
                      works=[works("w1", 100, 300, cameras=("A",))]), id="works-on-camera"),
    # Works 900..1100 on A: planned 100 in the window. Frozen from 950, still open: planned,
    # so not open_incidents; its time is inside the works → picture 100 %.
    pytest.param(Case({"A": "c1"}, {"A": {"planned_seconds": 100.0, "counted_seconds": 900.0,
                                          "picture_usable_pct": 100.0, "planned_incidents": 1,
                                          "incidents": 0, "open_incidents": 0}},
                      periods=[picture("A", "frozen", 950, None, "p1")],
                      works=[works("w1", 900, 1100, cameras=("A",))]), id="open-in-works"),
    # Works on commune c1 0..500, Vigie down 400..450 → known 950 (unknown 5 %), planned for A
    # and B = 0..400 + 450..500 = 450 (45 %), counted 500. A offline 100..200 is planned → A
    # 100 %. C (commune c2) offline 100..200 → 850/950 = 89.474 %. c1: 2 cameras, counted
    # 1000, planned 900 of 2000 → 45 %.
    pytest.param(Case({"A": "c1", "B": "c1", "C": "c2"},
                      {"A": {"planned_seconds": 450.0, "planned_pct": 45.0,
                             "counted_seconds": 500.0, "stream_up_pct": 100.0,
                             "incidents": 0, "planned_incidents": 1, "mttr_seconds": None},
                       "B": {"planned_seconds": 450.0, "stream_up_pct": 100.0},
                       "C": {"planned_seconds": 0.0, "counted_seconds": 950.0,
                             "unknown_pct": 5.0, "stream_up_pct": 89.474, "incidents": 1,
                             "mttr_seconds": 100.0}},
                      periods=[down("A", 100, 200, "a"), down("C", 100, 200, "c")],
                      works=[works("w1", 0, 500, communes=("c1",))],
                      runs=((0, 400), (450, None)),
                      communes={"c1": {"cameras": 2, "counted_seconds": 1000.0,
                                       "planned_seconds": 900.0, "planned_pct": 45.0,
                                       "planned_incidents": 1, "incidents": 0},
                                "c2": {"cameras": 1, "stream_up_pct": 89.474}}),
                 id="works-on-commune"),
    # offline from 800, open at now 1000: 200 s down → 80 %; 1 incident, open, no MTTR.
    pytest.param(Case({"A": "c1"}, {"A": {"down_seconds": 200.0, "stream_up_pct": 80.0,
                                          "incidents": 1, "open_incidents": 1,
                                          "mttr_seconds": None}},
                      periods=[down("A", 800, None, "o1")]), id="open-incident"),
    # Window 0..500, now 1000, open since 800: not an incident of that window, so not
    # among its open ones (a past month lists what failed in it).
    pytest.param(Case({"A": "c1"}, {"A": {"down_seconds": 0.0, "incidents": 0,
                                          "open_incidents": 0}},
                      periods=[down("A", 800, None, "o1")], until=500),
                 id="open-outside-window"),
    # A restart cut an outage: its period read here began at 600, but the incident at 300
    # (incident_since); closed at 700 → MTTR 400 (not 100); down in the window 100 s.
    pytest.param(Case({"A": "c1"}, {"A": {"down_seconds": 100.0, "incidents": 1, "mttr_seconds": 400.0}},
                      periods=[Period("A", "stream", "offline", 600, 700, "r1", incident_since=300)],
                      since=500), id="incident-cut-before-window"),
    # until 5000 > now 1000 → window 0..1000; open from 900 → 100 of 1000 → 90 %.
    pytest.param(Case({"A": "c1"}, {"A": {"seconds": 1000.0, "stream_up_pct": 90.0}},
                      periods=[down("A", 900, None, "o1")], until=5000, until_reported=1000),
                 id="until-after-now"),
    # since 1000, until 2000, now 500 → no window: 0 s, every ratio None, no incident
    # counted, open or not.
    pytest.param(Case({"A": "c1"}, {"A": {"seconds": 0.0, "known_seconds": 0.0,
                                          "counted_seconds": 0.0, "stream_up_pct": None,
                                          "picture_usable_pct": None, "unknown_pct": None,
                                          "planned_pct": None, "incidents": 0,
                                          "open_incidents": 0, "mttr_seconds": None}},
                      periods=[down("A", 0, None, "o1")], since=1000, until=2000, now=500,
                      communes={"c1": {"seconds": 0.0, "stream_up_pct": None}}),
                 id="empty-window"),
    # A and B in c1; works on B 0..500 → B counted 500. A offline 0..100 → 90 %, MTTR 100.
    # B offline 600..650 and 700..750 → 100 of 500 = 80 %, MTTR 50. c1: counted 1500,
    # down 200 → 1300/1500 = 86.667 % (not the mean 85); MTTR (100 + 50 + 50)/3 = 66.667
    # (not the mean of means 75).
    pytest.param(Case({"A": "c1", "B": "c1"},
                      {"A": {"stream_up_pct": 90.0, "mttr_seconds": 100.0},
                       "B": {"counted_seconds": 500.0, "stream_up_pct": 80.0,
                             "mttr_seconds": 50.0}},
                      periods=[down("A", 0, 100, "a"), down("B", 600, 650, "b1"),
                               down("B", 700, 750, "b2")],
                      works=[works("w1", 0, 500, cameras=("B",))],
                      communes={"c1": {"cameras": 2, "seconds": 2000.0,
                                       "counted_seconds": 1500.0, "down_seconds": 200.0,
                                       "stream_up_pct": 86.667, "incidents": 3,
                                       "mttr_seconds": 66.667}}),
                 id="commune-time-weighted"),
]


@pytest.mark.parametrize("case", CASES)
def test_scripted_history(case: Case) -> None:
    report = availability(case.cameras, case.periods, case.works, case.runs,
                          case.since, case.until, case.now)
    assert report["since"] == case.since
    if case.until_reported is not None:
        assert report["until"] == case.until_reported
    rows = {row["camera"]: row for row in report["cameras"]}
    assert sorted(rows) == sorted(case.cameras)
    for camera, expected in case.expect.items():
        assert {key: rows[camera][key] for key in expected} == expected, camera
    communes = {row["commune"]: row for row in report["communes"]}
    assert sorted(communes) == sorted(set(case.cameras.values()))
    for commune, expected in case.communes.items():
        assert {key: communes[commune][key] for key in expected} == expected, commune


def test_rows_are_sorted_by_commune_then_camera() -> None:
    report = availability({"z": "a", "b": "b", "a": "b", "y": "a"}, [], [], ALWAYS, 0, 10, 10)
    assert [(row["commune"], row["camera"]) for row in report["cameras"]] == [
        ("a", "y"), ("a", "z"), ("b", "a"), ("b", "b")]
    assert [row["commune"] for row in report["communes"]] == ["a", "b"]


def test_csv_header_rows_and_formula_safety() -> None:
    # 2024-01-01T00:00:00Z; offline 100 s of 1000 → 90 %.
    t0 = 1_704_067_200.0
    report = availability({"=cmd": "+c1"}, [down("=cmd", t0 + 100, t0 + 200, "i")], [],
                          ((t0, None),), t0, t0 + 1000, t0 + 1000)
    text = availability_csv(report)
    assert text.endswith("\r\n") and "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "scope", "commune", "camera", "since_utc", "until_utc", "stream_up_pct",
        "picture_usable_pct", "unknown_pct", "planned_pct", "incidents", "planned_incidents",
        "mttr_seconds", "open_incidents", "counted_seconds", "down_seconds",
        "bad_picture_seconds"]
    commune, camera = rows
    assert commune["scope"] == "commune" and commune["camera"] == ""
    assert commune["commune"] == "'+c1" and camera["camera"] == "'=cmd"
    assert commune["since_utc"].startswith("2024-01-01T00:00:00")
    assert commune["until_utc"].startswith("2024-01-01T00:16:40")
    assert commune["since_utc"].endswith("+00:00")
    assert (commune["stream_up_pct"], commune["incidents"], commune["mttr_seconds"]) == (
        "90.0", "1", "100.0")
    assert camera["scope"] == "camera" and camera["down_seconds"] == "100.0"
    assert camera["planned_pct"] == "0.0" and camera["open_incidents"] == "0"


def test_csv_writes_none_as_empty() -> None:
    report = availability({"A": "c1"}, [], [], ALWAYS, 100, 100, 100)
    row = list(csv.DictReader(io.StringIO(availability_csv(report))))[1]
    assert row["stream_up_pct"] == "" and row["mttr_seconds"] == ""


STATES = [("stream", "offline"), ("stream", "stalled"), ("picture", "too_dark"),
          ("picture", "too_bright")] + [("picture", state) for state in sorted(TAMPERING)]


def _random_history(rng: random.Random) -> dict[str, Any]:
    cameras = {f"cam{i}": f"c{rng.randrange(3)}" for i in range(rng.randint(1, 5))}

    def span() -> tuple[float, float]:
        start = rng.uniform(0, 1000)
        return start, start + rng.uniform(0, 300)

    periods = []
    for _ in range(rng.randint(0, 12)):
        kind, state = rng.choice(STATES)
        start, end = span()
        periods.append(Period(rng.choice(list(cameras)), kind, state, start,
                              None if rng.random() < 0.15 else end, f"k{rng.randrange(6)}"))
    works_list = [works(f"w{i}", *span(), cameras=tuple(rng.sample(list(cameras), 1)),
                        communes=(f"c{rng.randrange(3)}",) if rng.random() < 0.5 else ())
                  for i in range(rng.randint(0, 3))]
    runs = [(start, None if rng.random() < 0.2 else end)
            for start, end in (span() for _ in range(rng.randint(0, 4)))]
    since = rng.uniform(0, 800)
    return {"cameras": cameras, "periods": periods, "works": works_list, "runs": runs,
            "since": since, "until": since + rng.uniform(-50, 600), "now": rng.uniform(0, 1300)}


def test_random_histories_keep_the_invariants() -> None:
    rng = random.Random(20240601)
    for _ in range(200):
        history = _random_history(rng)
        report = availability(**history)
        for row in report["cameras"] + report["communes"]:
            for key, value in row.items():
                if key.endswith("_pct") and value is not None:
                    assert 0.0 <= value <= 100.0, (key, row)
            assert (row["down_seconds"] <= row["bad_picture_seconds"] <= row["counted_seconds"]
                    <= row["known_seconds"] <= row["seconds"]), row
            assert row["counted_seconds"] + row["planned_seconds"] == pytest.approx(
                row["known_seconds"], abs=0.002)
            assert row["mttr_seconds"] is None or row["mttr_seconds"] >= 0
        # One more run (another node) can only add known time, never remove it.
        start = rng.uniform(0, 1000)
        more = availability(**{**history, "runs": history["runs"] + [(start, start + 200)]})
        for before, after in zip(report["cameras"], more["cameras"]):
            assert after["known_seconds"] >= before["known_seconds"], (before, after)
