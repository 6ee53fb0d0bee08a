"""The bench harness works end to end (`python -m bench.wall --quick`): every scenario row
runs against real components (RTSP feeder and simulator, a Vigie process, the PyAV floor,
Debian's ffmpeg xstack, real viewers) and reports its measurements.

Nothing here is about speed: the numbers are the bench's business (issue 5), measured on a
quiet machine. What must hold on any machine is that each path produced its measurements.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.support.camsim import require_gstreamer
from tests.conftest import REPO, missing_component

ROWS = ("A mjpeg", "A fmp4", "B", "C mjpeg", "C fmp4", "D")


@pytest.mark.timeout(600)
def test_quick_bench_runs_every_path(tmp_path):
    try:
        require_gstreamer()
    except RuntimeError as error:
        missing_component(str(error))
    if shutil.which("ffmpeg") is None:
        missing_component("ffmpeg (Debian package ffmpeg) is missing: the bench's xstack "
                          "baseline needs it")
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "bench.wall", "--quick", "--no-profile",
                          "--json", str(out)], cwd=REPO, capture_output=True, text=True,
                         timeout=580)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert set(ROWS) <= set(rows), sorted(rows)
    for name in ROWS:
        row = rows[name]
        assert not row.get("error"), (name, row.get("error"))
        windows = row["vigie"]["windows"]
        assert windows and all(w["cpu_s_per_s"] > 0 for w in windows), (name, windows)
    for name in ("A mjpeg", "A fmp4"):
        row, window = rows[name], rows[name]["vigie"]["windows"][0]
        assert row["floor"]["cpu_s_per_s"] > 0 and row["floor"]["decode_fps_min"] > 0, name
        assert row["xstack"]["cpu_s_per_s"] > 0, name
        # The floor encodes the picture Vigie's wall shows (cells scaled, the scaling's CPU
        # apart): a crop of each camera made x264's work look 4 times smaller (33 KB a
        # frame against Vigie's 128).
        assert row["floor"]["scale_cpu_s_per_s"] > 0, name
        floor_kb, vigie_kb = row["floor"]["encoded_kb"][0], window["mean_frame_kb"]
        assert 0.5 < floor_kb / vigie_kb < 2, (name, floor_kb, vigie_kb)
        # Pictures arrived and their stamps were read: latency from the live cameras,
        # every cell showing its own camera.
        assert window["viewer_fps_min"] > 0, (name, window)
        assert window["latency_samples"] > 0, (name, window)
        assert window["full_wall_s"] is not None, (name, window)
    d = rows["D"]
    assert d["floor"]["cpu_s_per_s"] > 0 and d["receive"]["cpu_s_per_s"] > 0
    assert d["floor"]["scale_cpu_s_per_s"] == 0  # decode only: nothing to scale
    assert "Targets (issue 5" in run.stdout, run.stdout[-2000:]
