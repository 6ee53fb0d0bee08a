"""Soak: camera flaps and viewer churn against one Vigie process; is anything leaking?

    python -m bench.soak --minutes N [--cameras 8] [--viewers 8] [--json PATH]

Starts the RTSP camera simulator (N cameras, each behind a `tests.support.faultproxy` proxy) and a
Vigie server with a wall of them, then for N minutes:
  - flaps one camera every few seconds, in turn, with a rotating fault (killed, reset,
    stalled, garbage, accept-and-never-answer) lasting a few seconds;
  - churns viewers: MJPEG (wall, single camera, ad-hoc mosaic) and WebSocket (JPEG and fMP4)
    viewers connect, read for a random 1-6 s, and leave (a quarter of them abruptly);
  - samples Vigie's RSS, open fds and threads every 10 s (and asyncio tasks when
    /api/status exposes them).
Every 5 minutes, glibc's malloc_trim(0) is called inside Vigie through gdb (when installed)
and memory sampled right after: that series, free of the allocator's spare pages, is the one
whose slope tells a leak from a saw-tooth.
At the end: start and end values, the RSS slope in MB/hour over the samples after a warm-up
of the first 20 % of the run (least squares), viewer and flap counts, and whether open views
went back to zero, and the lowest RSS of each 5 minutes (the baseline under the saw-tooth
of frames in flight). Target: < 10 MB/hour after warm-up (issue 6). Then, once quiet, glibc's
malloc_trim(0) is called inside Vigie through gdb (when installed): the RSS left after it is
memory in use; the difference is memory the allocator had kept (fragmentation, not a leak).

Everything runs on 127.0.0.1; everything started here is stopped on exit, error or Ctrl+C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bench.measure import memory_mb
from tests.support.camsim import CameraSimulator, Mount, require_gstreamer
from tests.conftest import start_vigie
from tests.support.faultproxy import FaultProxy
from tests.support.mjpeg import MjpegReader

SAMPLE_EVERY = 10.0
TRIM_EVERY = 300.0        # malloc_trim through gdb (pauses Vigie ~1 s), then a sample
WARMUP_FRACTION = 0.2
FLAP_EVERY = 10.0         # seconds between two faults (on different cameras, in turn)
FLAP_LASTS = (2.0, 5.0)   # a fault lasts this long (uniform), then the camera is healthy
FAULTS = ("down", "reset", "stall", "garbage", "blackhole")
WALL = "soak"


@dataclass
class Sample:
    t: float               # seconds since the soak started
    rss_mb: float
    fds: int
    threads: int
    tasks: int | None
    open_views: int | None
    live: int | None
    anon_mb: float | None = None  # RssAnon: RSS less mapped files (libraries paged in)


@dataclass
class Counters:
    mjpeg_views: int = 0
    ws_views: int = 0
    abrupt: int = 0
    refused: int = 0      # 429 or other refusals from the server
    errors: int = 0
    frames: int = 0
    flaps: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict:
        with self.lock:
            return {name: (dict(value) if isinstance(value, dict) else value)
                    for name, value in vars(self).items() if name != "lock"}

    def add(self, name: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)


def counts(pid: int) -> tuple[int, int]:
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


def config_text(urls: list[str]) -> str:
    cameras = "".join(
        f'  - {{id: c{i}, name: "Soak {i}", commune: bourg, url: "{url}", '
        f"stale_after: 3, open_timeout: 3}}\n" for i, url in enumerate(urls))
    ids = ", ".join(f"c{i}" for i in range(len(urls)))
    columns = 3 if len(urls) <= 9 else 4
    rows = -(-len(urls) // columns)
    return (
        'server: {listen: "127.0.0.1:{port}"}\n'
        "communes:\n  - {id: bourg, name: Le Bourg}\n"
        f"cameras:\n{cameras}"
        f"walls:\n  - {{id: {WALL}, name: Soak, size: 1280x720, fps: 10, "
        f"layout: {columns}x{rows}, cameras: [{ids}]}}\n"
    )


# --------------------------------------------------------------------------- load


def flapper(proxies: list[FaultProxy], stop: threading.Event, counters: Counters,
            rng: random.Random) -> None:
    turn = 0
    healing: list[tuple[float, FaultProxy]] = []
    next_flap = time.monotonic() + FLAP_EVERY
    while not stop.is_set():
        now = time.monotonic()
        for due, proxy in [h for h in healing if h[0] <= now]:
            proxy.pass_through()
            healing.remove((due, proxy))
        if now >= next_flap:
            proxy = proxies[turn % len(proxies)]
            kind = FAULTS[(turn // len(proxies) + turn) % len(FAULTS)]
            if proxy not in [p for _, p in healing]:
                if kind == "down":
                    proxy.down()
                elif kind == "reset":
                    proxy.reset_connections()
                elif kind == "stall":
                    proxy.stall()
                elif kind == "garbage":
                    proxy.garbage(after_bytes=0)
                else:
                    proxy.blackhole()
                    proxy.reset_connections()
                if kind != "reset":
                    healing.append((now + rng.uniform(*FLAP_LASTS), proxy))
                with counters.lock:
                    counters.flaps[kind] = counters.flaps.get(kind, 0) + 1
            turn += 1
            next_flap = now + FLAP_EVERY
        stop.wait(0.2)
    for proxy in proxies:
        proxy.pass_through()


def mjpeg_churn(base_url: str, headers: dict[str, str], paths: list[str], stop: threading.Event,
                counters: Counters, rng: random.Random) -> None:
    while not stop.is_set():
        reader = MjpegReader(base_url + rng.choice(paths), headers=headers).start()
        stop.wait(rng.uniform(1.0, 6.0))
        reader.stop()
        counters.add("mjpeg_views")
        counters.add("frames", len(reader.frames))
        if reader.error is not None:
            counters.add("refused" if "429" in str(reader.error) else "errors")
            stop.wait(0.5)


async def ws_viewer(session, base_url: str, paths: list[str], formats: tuple[str, ...],
                    stop: threading.Event, counters: Counters, rng: random.Random) -> None:
    import aiohttp

    loop = asyncio.get_running_loop()
    while not stop.is_set():
        url = base_url.replace("http", "ws", 1) + rng.choice(paths)
        url += ("&" if "?" in url else "?") + "format=" + rng.choice(formats)
        abrupt = rng.random() < 0.25
        try:
            async with session.ws_connect(url, heartbeat=None) as ws:
                counters.add("ws_views")
                end = loop.time() + rng.uniform(1.0, 6.0)
                while loop.time() < end and not stop.is_set():
                    try:
                        message = await ws.receive(timeout=max(0.05, end - loop.time()))
                    except asyncio.TimeoutError:
                        break
                    if message.type == aiohttp.WSMsgType.BINARY:
                        counters.add("frames")
                    elif message.type != aiohttp.WSMsgType.TEXT:
                        break
                if abrupt:
                    counters.add("abrupt")
                    # Hang up without a close frame (a browser tab killed, a dead link).
                    connection = ws._response.connection  # noqa: SLF001 - on purpose
                    if connection is not None and connection.transport is not None:
                        connection.transport.abort()
        except aiohttp.WSServerHandshakeError as error:
            counters.add("refused" if error.status == 429 else "errors")
            await asyncio.sleep(0.5)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            counters.add("errors")
            await asyncio.sleep(0.5)


def ws_churn(base_url: str, headers: dict[str, str], paths: list[str], formats: tuple[str, ...],
             viewers: int, stop: threading.Event, counters: Counters, seed: int) -> None:
    import aiohttp

    async def main() -> None:
        async with aiohttp.ClientSession(headers=headers) as session:
            await asyncio.gather(*(ws_viewer(session, base_url, paths, formats, stop, counters,
                                             random.Random(seed + i)) for i in range(viewers)))

    asyncio.run(main())


# --------------------------------------------------------------------------- measuring


def sample(server, started: float) -> Sample:
    pid = server.process.pid
    fds, threads = counts(pid)
    tasks = open_views = live = None
    try:
        status = server.get_json("/api/status")
        tasks = status.get("tasks")
        open_views = status.get("open_views")
        live = (status.get("cameras") or {}).get("live")
    except Exception:  # noqa: BLE001 - a busy server may miss one sample
        pass
    memory = memory_mb(pid)
    return Sample(round(time.monotonic() - started, 1), round(memory["VmRSS"], 1),
                  fds, threads, tasks, open_views, live, round(memory["RssAnon"], 1))


def malloc_trim(pid: int) -> bool:
    """Have glibc hand freed memory back to the system in Vigie (through gdb, if installed):
    what RSS is left is memory in use, not memory the allocator kept for later."""
    gdb = shutil.which("gdb")
    if gdb is None:
        return False
    try:
        result = subprocess.run([gdb, "-p", str(pid), "-batch", "-nx",
                                 "-ex", "call (int) malloc_trim(0)"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def rss_slope(samples: list[Sample], warmup: float, field: str = "rss_mb") -> float | None:
    """MB per hour, least squares over the samples taken after the warm-up."""
    kept = [s for s in samples if s.t >= warmup and getattr(s, field) is not None]
    if len(kept) < 3:
        return None
    hours = np.array([s.t for s in kept]) / 3600.0
    rss = np.array([getattr(s, field) for s in kept])
    return float(np.polyfit(hours, rss, 1)[0])


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def floor_by_window(samples: list[Sample], window: float = 300.0,
                    field: str = "rss_mb") -> list[tuple[float, float]]:
    """The lowest RSS of each `window` seconds, (window start, MB): RSS saw-tooths with the
    frames in flight and the allocator's trims; the lows show the baseline under them."""
    groups: dict[int, list[float]] = {}
    for s in samples:
        if getattr(s, field) is not None:
            groups.setdefault(int(s.t // window), []).append(getattr(s, field))
    # A window of one or two samples (the run's last instant) has no low to speak of.
    return [(key * window, min(mbs)) for key, mbs in sorted(groups.items()) if len(mbs) >= 3]


LOADS = ("flaps", "mjpeg", "ws-jpeg", "ws-fmp4")
TARGETS = ("wall", "camera", "mosaic")


def run(minutes: float, cameras: int, viewers: int, seed: int,
        loads: tuple[str, ...] = LOADS, targets: tuple[str, ...] = TARGETS,
        kill: bool = False) -> dict:
    require_gstreamer()
    rng = random.Random(seed)
    duration = minutes * 60.0
    counters = Counters()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    mounts = [Mount(f"c{i}", width=640, height=360, fps=10, gop=10, tag=40 + i)
              for i in range(cameras)]
    simulator = CameraSimulator(mounts).start()
    proxies: list[FaultProxy] = []
    server = None
    with tempfile.TemporaryDirectory(prefix="vigie-soak-") as folder:
        try:
            proxies = [FaultProxy(simulator.port).start() for _ in range(cameras)]
            server = start_vigie(config_text([p.url(f"c{i}") for i, p in enumerate(proxies)]),
                                 Path(folder))
            pid = server.process.pid
            print(f"vigie pid {pid} at {server.base_url}; {cameras} cameras behind fault "
                  f"proxies; load {','.join(loads)} ({viewers} viewers each) on "
                  f"{','.join(targets)}; {minutes:g} min", flush=True)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if all(c["state"] == "live" for c in server.get_json("/api/cameras")):
                    break
                time.sleep(0.5)
            ids = [f"c{i}" for i in range(cameras)]
            mosaic = f"?cameras={ids[0]},{ids[-1]}&layout=2x1"
            chosen = {"wall": [f"/walls/{WALL}/{{}}"] * 3,
                      "camera": [f"/cameras/{c}/{{}}" for c in ids[:3]],
                      "mosaic": ["/mosaic/{}" + mosaic]}
            paths = [p.format("mjpeg") for t in targets for p in chosen[t]]
            ws_formats = tuple(f for f in ("jpeg", "fmp4") if f"ws-{f}" in loads)
            ws_paths = [p.format("ws") for t in targets for p in chosen[t]]
            started = time.monotonic()
            samples = [sample(server, started)]
            if "flaps" in loads:
                threads.append(threading.Thread(target=flapper, args=(proxies, stop, counters,
                                                                      random.Random(seed)),
                                                name="flapper", daemon=True))
            for index in range(viewers if "mjpeg" in loads else 0):
                threads.append(threading.Thread(
                    target=mjpeg_churn, args=(server.base_url, server.headers, paths, stop,
                                              counters, random.Random(seed * 100 + index)),
                    name=f"mjpeg-{index}", daemon=True))
            if ws_formats:
                threads.append(threading.Thread(
                    target=ws_churn, args=(server.base_url, server.headers, ws_paths, ws_formats,
                                           viewers, stop, counters, seed * 1000),
                    name="ws", daemon=True))
            for thread in threads:
                thread.start()
            print(f"{'t s':>7} {'RSS MB':>8} {'anon':>6} {'fds':>5} {'threads':>7} {'tasks':>5} "
                  f"{'views':>5} {'live':>4}", flush=True)
            show(samples[0])
            trimmed_series: list[Sample] = []
            last_trim = time.monotonic()
            while time.monotonic() - started < duration:
                time.sleep(min(SAMPLE_EVERY, max(0.0, duration - (time.monotonic() - started))))
                if server.process.poll() is not None:
                    raise RuntimeError(f"vigie exited with {server.process.returncode}:\n"
                                       + server.log()[-3000:])
                samples.append(sample(server, started))
                show(samples[-1])
                if time.monotonic() - last_trim >= TRIM_EVERY and malloc_trim(pid):
                    # Memory in use under the load, the allocator's spare pages handed back:
                    # the series whose slope tells a leak from a saw-tooth.
                    last_trim = time.monotonic()
                    trimmed_series.append(sample(server, started))
                    print(f"{'':7} after malloc_trim: RSS {trimmed_series[-1].rss_mb:.1f} MB, "
                          f"anonymous {trimmed_series[-1].anon_mb} MB", flush=True)
            stop.set()
            for thread in threads:
                thread.join(15)
            # Quiet: every viewer gone, every camera healthy; what is left?
            settle_deadline = time.monotonic() + 40
            after = sample(server, started)
            while time.monotonic() < settle_deadline and (after.open_views or after.live != cameras):
                time.sleep(2)
                after = sample(server, started)
            time.sleep(8)  # past the streams' linger (5 s): compositors stopped
            after = sample(server, started)
            trimmed = sample(server, started) if malloc_trim(pid) else None
            warmup = duration * WARMUP_FRACTION
            slope = rss_slope(samples, warmup)
            result = {
                "loads": list(loads), "targets": list(targets),
                "minutes": minutes, "cameras": cameras, "viewers": 2 * viewers,
                "warmup_seconds": warmup,
                "start": asdict(samples[0]), "end": asdict(samples[-1]),
                "after_quiet": asdict(after),
                "after_malloc_trim": None if trimmed is None else asdict(trimmed),
                "rss_slope_mb_per_hour": _rounded(slope),
                "anon_slope_mb_per_hour": _rounded(rss_slope(samples, warmup, "anon_mb")),
                "samples": [asdict(s) for s in samples],
                "trimmed": [asdict(s) for s in trimmed_series],
                "trimmed_anon_slope_mb_per_hour": _rounded(
                    rss_slope(trimmed_series, warmup, "anon_mb")),
                "counters": counters.as_dict(),
                "camera_reconnects": sum(c["reconnects_last_hour"]
                                         for c in server.get_json("/api/cameras")),
            }
            if kill:
                # For a heap profiler attached to Vigie (heaptrack -p PID): what it reports
                # as leaked is then what was still allocated after the quiet phase.
                server.process.kill()
                result["exit"] = {"signal": "SIGKILL", "code": server.process.wait()}
            else:
                code, seconds = server.terminate()
                result["exit"] = {"signal": "SIGTERM", "code": code, "seconds": round(seconds, 2)}
            return result
        finally:
            stop.set()
            for thread in threads:
                thread.join(5)
            if server is not None and server.process.poll() is None:
                server.terminate()
            for proxy in proxies:
                proxy.stop()
            simulator.stop()


def show(s: Sample) -> None:
    def opt(value) -> str:
        return "-" if value is None else str(value)
    print(f"{s.t:7.1f} {s.rss_mb:8.1f} {opt(s.anon_mb):>6} {s.fds:5d} {s.threads:7d} {opt(s.tasks):>5} "
          f"{opt(s.open_views):>5} {opt(s.live):>4}", flush=True)


def report(result: dict) -> None:
    start, end, quiet = result["start"], result["end"], result["after_quiet"]
    slope = result["rss_slope_mb_per_hour"]
    c = result["counters"]
    print()
    print(f"soak {result['minutes']:g} min, {result['cameras']} cameras, "
          f"{result['viewers']} churning viewers; load {','.join(result['loads'])}, "
          f"targets {','.join(result['targets'])}")
    print(f"{'':12} {'RSS MB':>8} {'anon':>6} {'fds':>5} {'threads':>7} {'tasks':>5} {'views':>5}")
    rows = [("start", start), ("end", end), ("after quiet", quiet)]
    if result.get("after_malloc_trim"):
        rows.append(("malloc_trim", result["after_malloc_trim"]))
    for name, s in rows:
        anon = s.get("anon_mb")
        print(f"{name:12} {s['rss_mb']:8.1f} {'-' if anon is None else anon:>6} {s['fds']:5d} {s['threads']:7d} "
              f"{'-' if s['tasks'] is None else s['tasks']:>5} "
              f"{'-' if s['open_views'] is None else s['open_views']:>5}")
    verdict = ("n/a (too few samples after warm-up)" if slope is None
               else f"{slope:+.1f} MB/hour ({'OK' if slope < 10 else 'ABOVE'} target < 10)")
    print(f"RSS slope after {result['warmup_seconds']:.0f} s warm-up: {verdict}")
    anon_slope = result.get("anon_slope_mb_per_hour")
    if anon_slope is not None:
        print(f"  of which anonymous memory (heap, stacks; not libraries paged in): "
              f"{anon_slope:+.1f} MB/hour")
    trimmed = result.get("trimmed") or []
    if trimmed:
        print(f"anonymous RSS after malloc_trim every {TRIM_EVERY / 60:g} minutes (MB): "
              + ", ".join(f"{x['anon_mb']:.0f}" for x in trimmed)
              + f"; slope after warm-up {result['trimmed_anon_slope_mb_per_hour']} MB/hour")
    samples = [Sample(**x) for x in result["samples"]]
    lows = floor_by_window(samples)
    print("lowest RSS per 5 minutes (MB): " + ", ".join(f"{mb:.0f}" for _, mb in lows))
    anon_lows = floor_by_window(samples, field="anon_mb")
    if anon_lows:
        print("lowest anonymous RSS per 5 minutes (MB): "
              + ", ".join(f"{mb:.0f}" for _, mb in anon_lows))
    print(f"viewers: {c['mjpeg_views']} MJPEG + {c['ws_views']} WebSocket views "
          f"({c['abrupt']} hung up abruptly), {c['frames']} frames; refused {c['refused']}, "
          f"errors {c['errors']}")
    print(f"camera faults: {c['flaps']}; reconnects counted by Vigie: "
          f"{result['camera_reconnects']}")
    ended = result["exit"]
    if ended.get("signal", "SIGTERM") == "SIGTERM":
        print(f"SIGTERM: exit {ended['code']} in {ended['seconds']} s")
    else:
        print(f"{ended['signal']}: exit {ended['code']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--viewers", type=int, default=4,
                        help="MJPEG viewers churning at once (as many WebSocket ones)")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--load", default=",".join(LOADS),
                        help=f"comma-separated subset of {','.join(LOADS)} (to find a leak)")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help=f"what viewers watch: comma-separated subset of {','.join(TARGETS)}")
    parser.add_argument("--kill", action="store_true",
                        help="end Vigie with SIGKILL instead of SIGTERM (for heap profilers)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    loads = tuple(x for x in args.load.split(",") if x)
    targets = tuple(x for x in args.targets.split(",") if x)
    if not set(loads) <= set(LOADS) or not targets or not set(targets) <= set(TARGETS):
        parser.error(f"--load from {LOADS}, --targets from {TARGETS}")
    if args.minutes <= 0 or not 1 <= args.cameras <= 32 or not 1 <= args.viewers <= 14:
        parser.error("--minutes > 0, --cameras 1..32, --viewers 1..14")
    try:
        result = run(args.minutes, args.cameras, args.viewers, args.seed, loads, targets,
                     args.kill)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
