"""The printed report of issue 5's bench: one table (a row per scenario/variant), the
targets as PASS/FAIL text, then details per row (feeder CPU, threads, profiles)."""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import av

from bench.scenarios import (DISTURBED, TARGET_A_CPU_FLOOR, TARGET_A_CPU_XSTACK,
                             TARGET_A_FULL_WALL, TARGET_A_P95, TARGET_B_FPS,
                             TARGET_C_PER_VIEWER, TARGET_D_IDLE)

# -- report ----------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def command_line(argv: list[str]) -> str:
    executable = sys.executable
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(executable)
        if not relative.startswith(".."):
            executable = relative
    return shlex.join([executable, "-m", "bench.wall", *argv])


def f(value, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def mark(ok: bool | None) -> str:
    return "" if ok is None else (" PASS" if ok else " FAIL")


def ratio(a, b):
    return a / b if a is not None and b else None


@dataclass
class Line:
    cells: list[str]
    checks: list[tuple[str, bool | None, str]] = field(default_factory=list)


HEADER = ["row", "cams (live)", "viewers", "Vigie CPU", "RSS MB", "fps/viewer min/med",
          "g2g p50/p95 ms", "full wall", "floor CPU", "Vigie/floor", "xstack CPU",
          "Vigie/xstack", "xstack fps", "xstack g2g p50/p95", "xstack spread p50/max",
          "feed CPU", "others", "target"]


def lines_for(name: str, r: dict, results: dict) -> list[Line]:
    row = r["row"]
    if r.get("error"):
        return [Line([name, f"{row['cameras']} ({len(row['live'])})", "-", "FAILED"]
                     + [""] * (len(HEADER) - 5) + ["see Details"])]
    vigie = r["vigie"]
    reuse = results.get(row["reuse"]) if row.get("reuse") else None
    floor = r.get("floor") or (reuse or {}).get("floor")
    xstack = r.get("xstack") or (reuse or {}).get("xstack")
    tag = f" (={row['reuse'].split()[0]})" if reuse else ""
    out = []
    windows = vigie["windows"]
    for index, w in enumerate(windows):
        fmt = row["fmt"]
        kind = {"jpeg": "MJPEG", "fmp4": "WS fMP4"}.get(fmt or "", "")
        viewers = f"{w['viewers']} {kind}" if w["viewers"] else "none"
        cpu = w["cpu_s_per_s"]
        checks: list[tuple[str, bool | None, str]] = []
        floor_cpu = floor["cpu_s_per_s"] if floor else None
        x_cpu = xstack["cpu_s_per_s"] if xstack else None
        r_floor, r_x = ratio(cpu, floor_cpu), ratio(cpu, x_cpu)
        floor_mark = x_mark = p95_mark = wall_mark = ""
        target = ""
        if row["scenario"] == "A":
            ok = r_floor is not None and r_floor <= TARGET_A_CPU_FLOOR
            floor_mark = mark(ok if r_floor is not None else None)
            checks.append((f"A {fmt}: Vigie CPU <= {TARGET_A_CPU_FLOOR} x floor",
                           ok if r_floor is not None else None, f(r_floor, 2, "x")))
            ok = r_x is not None and r_x <= TARGET_A_CPU_XSTACK
            x_mark = mark(ok if r_x is not None else None)
            checks.append((f"A {fmt}: Vigie CPU <= {TARGET_A_CPU_XSTACK} x xstack",
                           ok if r_x is not None else None, f(r_x, 2, "x")))
            p95 = w.get("latency_p95_ms")
            limit = TARGET_A_P95[fmt]
            p95_mark = mark(p95 <= limit if p95 is not None else None)
            checks.append((f"A {fmt}: glass-to-glass p95 <= {limit:.0f} ms",
                           p95 <= limit if p95 is not None else None, f(p95, 0, " ms")))
            full = w.get("full_wall_s")
            wall_mark = mark(full <= TARGET_A_FULL_WALL if full is not None else False)
            checks.append((f"A {fmt}: server start -> full wall <= {TARGET_A_FULL_WALL:.0f} s",
                           full <= TARGET_A_FULL_WALL if full is not None else False,
                           f(full, 2, " s")))
        elif row["scenario"] == "B":
            walls = w.get("per_wall_fps") or {}
            worst = min((v["min"] for v in walls.values() if v["min"] is not None), default=None)
            ok = worst is not None and worst >= TARGET_B_FPS
            target = f"every wall >= {TARGET_B_FPS} fps:{mark(ok)}"
            checks.append((f"B: every wall delivers >= {TARGET_B_FPS} fps to every viewer", ok,
                           "per wall min/median " + ", ".join(
                               f"{k} {f(v['min'], 1)}/{f(v['median'], 1)}" for k, v in walls.items())))
        elif row["scenario"] == "C" and index >= 1:
            first = windows[0]
            added = w["viewers"] - first["viewers"]
            per = (cpu - first["cpu_s_per_s"]) / added * 100 if added else None
            served = w.get("viewer_fps_median") or 0.0
            # A cheap viewer that is not served (starved at a few fps) does not count.
            ok = per is not None and per <= TARGET_C_PER_VIEWER and served >= TARGET_B_FPS
            target = f"{f(per, 3)} %core/added viewer{mark(ok)}"
            checks.append((f"C {fmt} x{w['viewers']}: each added viewer costs <= "
                           f"{TARGET_C_PER_VIEWER} % of a core (viewers served >= "
                           f"{TARGET_B_FPS} fps)", ok,
                           f"{f(per, 3)} % ({f(first['cpu_s_per_s'], 3)} -> {f(cpu, 3)} s/s for "
                           f"+{added} viewers; viewers got median {f(served, 1)} fps, "
                           f"wall composed at {f(w.get('wall_fps'), 1)} fps)"))
        elif row["scenario"] == "D":
            ok = r_floor is not None and r_floor <= TARGET_D_IDLE
            floor_mark = mark(ok if r_floor is not None else None)
            target = f"idle/full decode {f(r_floor, 2)}{mark(ok)}"
            receive = (r.get("receive") or {}).get("cpu_s_per_s")
            receive_text = (f"; PyAV receiving the packets alone {f(receive, 3)} s/s = "
                            f"{f(receive / floor_cpu if receive and floor_cpu else None, 2, 'x')}"
                            f" full decode, Vigie idle = {f(cpu / receive if receive else None, 2, 'x')}"
                            " that" if receive else "")
            checks.append((f"D: idle cost <= {TARGET_D_IDLE} x full decode of the same cameras",
                           ok, f"{f(r_floor, 2, 'x')} (Vigie {f(cpu, 3)} s/s, "
                               f"PyAV full decode {f(floor_cpu, 3)} s/s{receive_text})"))
        feed = w["cpu"].get("feeder", 0.0) + w["cpu"].get("camsim", 0.0)
        lat = (f"{f(w.get('latency_p50_ms'), 0)}/{f(w.get('latency_p95_ms'), 0)}{p95_mark}"
               if w.get("latency_samples") else "n/a")
        fps = (f"{f(w.get('viewer_fps_min'), 1)}/{f(w.get('viewer_fps_median'), 1)}"
               if w.get("viewers_counted") else "n/a")
        full = (f"{f(w.get('full_wall_s'), 2)} s{wall_mark}"
                if row["full_wall"] and index == 0 else "-")
        show_x = xstack is not None and (index == 0 or row["scenario"] == "C")
        cells = [
            name + (f" x{w['viewers']}" if row["scenario"] == "C" else ""),
            f"{row['cameras']} ({len(row['live'])})",
            viewers,
            f(cpu, 3),
            f(w["rss_mb"], 0),
            fps,
            lat,
            full,
            (f(floor_cpu, 3) + tag) if floor else "-",
            (f(r_floor, 2, "x") + floor_mark) if floor else "-",
            (f(x_cpu, 3) + tag) if show_x else "-",
            (f(r_x, 2, "x") + x_mark) if show_x else "-",
            f"{f(xstack.get('fps_min'), 1)}/{f(xstack.get('fps_median'), 1)}" if show_x else "-",
            (f"{f(xstack.get('latency_p50_ms'), 0)}/{f(xstack.get('latency_p95_ms'), 0)}"
             if show_x and xstack.get("latency_samples") else "-"),
            (f"{f(xstack.get('spread_p50_ms'), 0)}/{f(xstack.get('spread_max_ms'), 0)} ms"
             if show_x and xstack.get("spread_p50_ms") is not None else "-"),
            f(feed, 3),
            f(w["cpu"].get("others"), 2) + ("!" if w["cpu"].get("others", 0) > DISTURBED else ""),
            target,
        ]
        out.append(Line(cells, checks))
    return out


def render(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    sep = "-+-".join("-" * w for w in widths)
    text = [" | ".join(h.ljust(w) for h, w in zip(header, widths)), sep]
    text += [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(line.rstrip() for line in text)


def report(results: dict, settings: dict, argv: list[str], elapsed: float) -> str:
    lines: list[Line] = []
    for name, r in results.items():
        lines.extend(lines_for(name, r, results))
    out = [f"Vigie bench (issue 5): {settings['mode']} run, {settings['seconds']:.0f} s windows "
           f"after {settings['warmup']:.0f} s warm-up; {os.cpu_count()} cores, {cpu_model()}, "
           f"PyAV {av.__version__}; niceness {settings.get('nice', 0)}; took {elapsed:.0f} s",
           "", render(HEADER, [line.cells for line in lines]), ""]
    out.append("CPU in s/s (1.0 = one core busy), all threads of the process. g2g = glass to "
               "glass: stamp drawn by a live camera -> frame received by the viewer (live-stamped "
               "cameras only).\nfloor = PyAV decoding the same inputs + one encode per wall "
               "(JPEG by simplejpeg, or H.264 by libx264 ultrafast; decode only for D) of the same "
               "picture (cells scaled as Vigie's; the scaling's CPU\nis measured per thread and "
               "not counted). xstack = "
               "Debian's ffmpeg, same inputs, same walls, same format;\nspread = max-min of the "
               "live tiles' clocks in one output frame. feed CPU = bench feeder (looped clips) + "
               "camsim (live-stamped cameras) during Vigie's window.\nothers = CPU used by "
               "processes outside the bench during Vigie's window (shared machine; "
               f"'!' = above {DISTURBED}: the numbers of that row may be disturbed).")
    out.append("")
    out.append("Targets (issue 5; printed, never asserted):")
    for line in lines:
        for text, ok, value in line.checks:
            verdict = "n/a " if ok is None else ("PASS" if ok else "FAIL")
            out.append(f"  {verdict}  {text}: {value}")
    out.append("")
    out.append("Details:")
    for name, r in results.items():
        if r.get("error"):
            out.append(f"  {name}: FAILED: {r['error']}")
            continue
        floor, vigie, xstack = r.get("floor"), r["vigie"], r.get("xstack")
        w0 = vigie["windows"][0]
        bits = [f"  {name}: {r['describe']}; row took {r['seconds']:.0f} s"]
        if floor:
            bits.append(f"    floor: {f(floor['cpu_s_per_s'], 3)} s/s (scaling its cells, not counted: "
                        f"{f(floor.get('scale_cpu_s_per_s'), 3)}), RSS {f(floor['rss_mb'], 0)} MB, "
                        f"decode fps/stream min {f(floor['decode_fps_min'], 1)}, encode fps "
                        f"{', '.join(f(x, 1) for x in floor['encode_fps']) or '-'}, "
                        f"{', '.join(f(x, 0) for x in floor['encoded_kb']) or '-'} KB/frame; "
                        f"feeder {f(floor['cpu'].get('feeder'), 3)}, camsim "
                        f"{f(floor['cpu'].get('camsim'), 3)}, others {f(floor['cpu'].get('others'), 2)}")
        for w in vigie["windows"]:
            bits.append(
                f"    vigie ({w['viewers']} viewers): {f(w['cpu_s_per_s'], 3)} s/s, "
                f"RSS {f(w['rss_mb'], 0)} MB (peak {f(w['rss_peak_mb'], 0)}), fps/viewer min/med "
                f"{f(w.get('viewer_fps_min'), 2)}/{f(w.get('viewer_fps_median'), 2)}, "
                f"{f(w.get('mean_frame_kb'), 0)} KB/frame, g2g p50/p95/max "
                f"{f(w.get('latency_p50_ms'), 0)}/{f(w.get('latency_p95_ms'), 0)}/"
                f"{f(w.get('latency_max_ms'), 0)} ms ({w.get('latency_samples', 0)} samples), "
                f"tile spread p50/max {f(w.get('spread_p50_ms'), 0)}/{f(w.get('spread_max_ms'), 0)} ms, "
                f"fresh pictures/cell min {f(w.get('cell_fresh_fps_min'), 1)} fps, "
                f"cells unreadable {w.get('cells_unreadable', 'n/a')}; feeder "
                f"{f(w['cpu'].get('feeder'), 3)}, camsim {f(w['cpu'].get('camsim'), 3)}, viewers "
                f"{f(w['cpu'].get('viewers'), 3)}, bench {f(w['cpu'].get('bench'), 3)}, others "
                f"{f(w['cpu'].get('others'), 2)}"
                + (f"; viewer errors {w['viewer_errors']}" if w.get("viewer_errors") else ""))
        if r["row"]["full_wall"]:
            bits.append(f"    vigie start -> ready {f(vigie.get('ready_s'), 2)} s, -> first "
                        f"wall frame {f(w0.get('first_frame_s'), 2)} s, -> full wall "
                        f"{f(w0.get('full_wall_s'), 2)} s")
        walls = [s for s in (vigie.get("status") or {}).get("walls", [])]
        if walls and r["row"]["fmt"]:
            bits.append("    vigie walls (after the windows): " + ", ".join(
                f"{s['id']} dropped {s.get('dropped_frames')}" for s in walls
                if s.get("viewers")) + "; composed fps at each window's end: " + ", ".join(
                f(w.get("wall_fps"), 1) for w in vigie["windows"]))
        scale = (floor or {}).get("scale_cpu_s_per_s")
        if scale and w0.get("cpu_s_per_s"):
            # What the floor leaves out and Vigie cannot: scaling each picture to its cell.
            # Vigie against the floor with it says what the rest of Vigie costs.
            bits.append(f"    Vigie / (floor + the same scaling, {f(scale, 3)} s/s): "
                        f"{f(ratio(w0['cpu_s_per_s'], floor['cpu_s_per_s'] + scale), 2, 'x')}")
        bits.append(f"    vigie cameras decoding: {vigie.get('decoding')}, reconnects "
                    f"{vigie.get('camera_reconnects')}")
        if xstack:
            bits.append(
                f"    xstack: {f(xstack['cpu_s_per_s'], 3)} s/s, RSS {f(xstack['rss_mb'], 0)} MB, "
                f"first output {f(xstack['first_output_s'], 1)} s after start, full wall "
                f"{f(xstack.get('full_wall_s'), 1)} s, fps min/med {f(xstack['fps_min'], 1)}/"
                f"{f(xstack['fps_median'], 1)}, {f(xstack.get('mean_frame_kb'), 0)} KB/frame, g2g "
                f"p50/p95/max {f(xstack.get('latency_p50_ms'), 0)}/"
                f"{f(xstack.get('latency_p95_ms'), 0)}/{f(xstack.get('latency_max_ms'), 0)} ms, "
                f"tile spread p50/p95/max {f(xstack.get('spread_p50_ms'), 0)}/"
                f"{f(xstack.get('spread_p95_ms'), 0)}/{f(xstack.get('spread_max_ms'), 0)} ms, "
                f"others {f(xstack['cpu'].get('others'), 2)}")
        threads = w0.get("threads")
        if threads:
            bits.append("    vigie threads (s/s): " + ", ".join(
                f"{group} {value:.3f}" for group, value in threads.items()))
        profile = vigie.get("profile")
        if profile:
            cpu = profile.get("cpu_s_per_s")
            python = profile.get("python")
            if python:
                bits.append(f"    where Vigie's CPU goes ({f(cpu, 3)} s/s while profiled "
                            f"{settings['profile']:.0f} s after the window): py-spy stacks, "
                            "each thread's /proc CPU spread over its samples; s/s by function")
                bits.append("      self (the Python line running or calling into C; a line that "
                            "blocks in C, like the demux loop waiting for packets, also collects "
                            "its thread's wake-ups: perf's libraries below are the native truth):")
                bits += [f"        {value:6.3f}  {fn}" for value, fn in python["self"][:10]]
                bits.append(f"        {python['threads_without_python_stack']:6.3f}  threads "
                            "without a Python stack (FFmpeg decode slices, x264 threads)")
                bits.append("      inclusive:")
                bits += [f"        {value:6.3f}  {fn}" for value, fn in python["inclusive"][:10]]
            elif profile.get("python_error"):
                bits.append(f"    py-spy failed: {profile['python_error']}")
            native = profile.get("native")
            if native:
                bits.append("      native (perf, share of CPU samples) by library: " + ", ".join(
                    f"{share:.0%} {name}" for share, name in native["dso"][:8]))
                named = [(share, name) for share, name in native["symbols"]
                         if not name.split()[-1].startswith("0x")]
                if named:
                    bits.append("      top named symbols (most of FFmpeg's and libjpeg's are "
                                "stripped): " + ", ".join(f"{share:.1%} {name.split()[-1]}"
                                                          for share, name in named[:8]))
            elif profile.get("native_error"):
                bits.append(f"    perf failed: {profile['native_error'].strip()[:200]}")
        out.extend(bits)
    out.append("")
    out.append(f"command: {command_line(argv)}")
    return "\n".join(out)
