"""Viewers misbehaving: stalled ones, too many, churn; and shutdown closes sockets with 1001."""

import asyncio
import socket
import time
from urllib.parse import urlsplit

import aiohttp

from tests.support.mjpeg import fetch, login, wait_until

CONFIG = ('server: {listen: "127.0.0.1:{port}"}\ncommunes: [{id: a, name: A}]\ncameras:\n'
          + "".join(f'  - {{id: c{i}, name: C{i}, commune: a, url: "synthetic://c{i}?width=320&height=180&fps=10&tag={i}"}}\n'
                    for i in range(1, 5))
          + "walls:\n  - {id: w, name: W, size: 640x360, fps: 10, layout: 2x2, cameras: [c1, c2, c3, c4]}\n"
          "LIMITS")


def rate(reader, start: float, end: float) -> float:
    times = [f.received_wall for f in reader.frames if start <= f.received_wall <= end]
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 else 0.0


def stalled_client(base_url: str, headers: dict[str, str], path: str) -> socket.socket:
    """Connects, asks for the stream, then never reads a byte."""
    parts = urlsplit(base_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nCookie: {headers['Cookie']}\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def test_stalled_viewers_do_not_slow_healthy_ones_and_are_dropped(vigie):
    server = vigie(CONFIG.replace("LIMITS", ""))
    wait_until(lambda: all(c["state"] == "live" for c in server.get_json("/api/cameras")), 10)
    healthy = [server.reader("/walls/w/mjpeg") for _ in range(10)]
    time.sleep(3.0)
    now = time.time()
    baseline = min(rate(reader, now - 2.0, now) for reader in healthy)
    stalled = [stalled_client(server.base_url, server.headers, "/walls/w/mjpeg") for _ in range(10)]
    try:
        wait_until(lambda: server.get_json("/api/status")["open_views"] == 20, 5, message="20 views")
        time.sleep(6.0)
        now = time.time()
        during = min(rate(reader, now - 5.0, now) for reader in healthy)
        assert during >= 0.9 * baseline, (baseline, during)
        # After the stall timeout (10 s of frames waiting untaken) the stalled ones are cut.
        wait_until(lambda: server.get_json("/api/status")["open_views"] == 10, 15,
                   message="stalled viewers disconnected")
        status = server.get_json("/api/status")["walls"][0]
        assert status["dropped_frames"] > 0
        metrics = fetch("GET", server.base_url + "/metrics", headers=server.headers)[2].decode()
        assert 'vigie_wall_slow_viewers_disconnected_total{wall="w"} 10' in metrics
        assert all(reader.error is None for reader in healthy)
    finally:
        for sock in stalled:
            sock.close()
        for reader in healthy:
            reader.stop()


def test_views_per_user_are_limited(vigie):
    server = vigie(CONFIG.replace("LIMITS", "limits: {viewers_per_user: 2}\n"))
    first, second = server.reader("/walls/w/mjpeg"), server.reader("/cameras/c1/mjpeg")
    try:
        wait_until(lambda: first.frames and second.frames, 10, message="two views")
        status, _, body = fetch("GET", server.base_url + "/walls/w/mjpeg", headers=server.headers)
        assert status == 429 and b"too many open views" in body
        operator = login(server.base_url, "operator", "operator-Pw-52ab")
        third = server.reader("/walls/w/mjpeg", headers=operator)  # another user is not affected
        wait_until(lambda: third.frames, 10, message="another user's view")
        third.stop()
    finally:
        first.stop()
    wait_until(lambda: server.get_json("/api/status")["open_views"] == 1, 5, message="one view left")
    again = server.reader("/walls/w/mjpeg")
    wait_until(lambda: again.frames, 10, message="a view after one closed")
    again.stop()
    second.stop()


async def _churn(server, rounds: int, batch: int) -> None:
    ws_base = server.base_url.replace("http", "ws")
    async with aiohttp.ClientSession(headers=server.headers) as session:
        async def one(index: int) -> None:
            if index % 2:
                async with session.ws_connect(ws_base + "/walls/w/ws?format=jpeg") as ws:
                    message = await ws.receive(timeout=10)
                    while message.type == aiohttp.WSMsgType.TEXT:  # the hello
                        message = await ws.receive(timeout=10)
                    assert message.type == aiohttp.WSMsgType.BINARY, (message.type, message.data)
            else:
                response = await session.get(server.base_url + "/walls/w/mjpeg")
                try:
                    await asyncio.wait_for(response.content.readuntil(b"\xff\xd9"), 10)
                finally:
                    response.close()  # hang up: the stream never ends by itself
        for round_index in range(rounds):
            await asyncio.wait_for(
                asyncio.gather(*(one(round_index * batch + i) for i in range(batch))), 30)


def _process_counts(pid: int) -> tuple[int, int, int]:
    threads = len(list(__import__("os").listdir(f"/proc/{pid}/task")))
    fds = len(list(__import__("os").listdir(f"/proc/{pid}/fd")))
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    return threads, fds, rss


def test_viewer_churn_returns_to_baseline(vigie):
    server = vigie(CONFIG.replace("LIMITS", "limits: {viewers_per_user: 200, viewers_per_address: 200}\n"))
    wait_until(lambda: all(c["state"] == "live" for c in server.get_json("/api/cameras")), 10)
    asyncio.run(_churn(server, 2, 10))  # warm up: first JPEG/H.264 paths, allocator pools
    time.sleep(6.0)  # the wall lingers 5 s after its last viewer
    tasks_before = server.get_json("/api/status")["tasks"]
    threads_before, fds_before, rss_before = _process_counts(server.process.pid)
    asyncio.run(_churn(server, 10, 30))  # 300 viewers, 30 at a time
    time.sleep(6.0)
    status = server.get_json("/api/status")
    threads_after, fds_after, rss_after = _process_counts(server.process.pid)
    assert status["open_views"] == 0
    assert status["tasks"] <= tasks_before + 2, (tasks_before, status["tasks"])
    assert threads_after <= threads_before + 2, (threads_before, threads_after)
    assert fds_after <= fds_before + 4, (fds_before, fds_after)
    assert rss_after - rss_before < 40_000, (rss_before, rss_after)  # kB
    views = server.get_json("/api/audit?kind=view&limit=1000")
    assert len(views) >= 300 and all(view["end"] for view in views)


def test_sigterm_closes_websockets_with_going_away(vigie):
    server = vigie(CONFIG.replace("LIMITS", ""))

    async def watch() -> int:
        async with aiohttp.ClientSession(headers=server.headers) as session:
            async with session.ws_connect(server.base_url.replace("http", "ws") + "/walls/w/ws") as ws:
                await ws.receive(timeout=10)
                loop = asyncio.get_running_loop()
                loop.call_later(0.5, lambda: server.process.terminate())
                while True:
                    message = await ws.receive(timeout=15)
                    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                        aiohttp.WSMsgType.CLOSING):
                        return ws.close_code

    assert asyncio.run(watch()) == 1001
    assert server.process.wait(10) == 0
    # The journal is consistent: every view has its end, written at shutdown.
    import sqlite3
    from pathlib import Path

    journal = sqlite3.connect(Path(server.log_path).parent / "vigie-audit.sqlite")
    views = journal.execute("select end_time, close_reason from journal where kind = 'view'").fetchall()
    assert views and all(end is not None for end, _ in views), views
