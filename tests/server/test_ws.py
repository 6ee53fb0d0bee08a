"""WebSocket outputs end to end: H.264 in fMP4 and JPEG, wall changes, tours, scope."""

import asyncio
import io
import json
import time

import aiohttp
import av
import numpy as np
import pytest

from ingest.picture.layout import CellSpec
from tests.conftest import users_yaml
from tests.support.mjpeg import cell_stamp, fetch, login, wait_until

CONFIG = ('server: {listen: "127.0.0.1:{port}"}\n'
          "communes:\n  - {id: nord, name: Nord}\n  - {id: sud, name: Sud}\ncameras:\n"
          + "".join(f'  - {{id: c{i}, name: "C{i}", commune: {"nord" if i < 4 else "sud"}, '
                    f'url: "synthetic://c{i}?width=320&height=180&fps=10&tag={i}"}}\n' for i in range(1, 6))
          + "walls:\n  - {id: w, name: W, size: 640x360, fps: 10, layout: 2x2, cameras: [c1, c2, c3, c4]}\n"
          + users_yaml({"agent": ["nord"]}))


def cell_tags(gray: np.ndarray, grid=(2, 2), cells=4) -> list:
    return [getattr(cell_stamp(gray, CellSpec(None, i // grid[0], i % grid[0]), grid, (320, 180)), "tag", None)
            for i in range(cells)]


async def receive(ws, seconds: float, until=None) -> tuple[list[dict], list[tuple[float, bytes]]]:
    texts, binaries = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            message = await asyncio.wait_for(ws.receive(), deadline - time.monotonic())
        except TimeoutError:
            break
        if message.type == aiohttp.WSMsgType.TEXT:
            texts.append(json.loads(message.data))
        elif message.type == aiohttp.WSMsgType.BINARY:
            binaries.append((time.time(), message.data))
        else:
            break
        if until is not None and until(texts, binaries):
            break
    return texts, binaries


def decode_fmp4(segments: list[bytes]) -> list[np.ndarray]:
    container = av.open(io.BytesIO(b"".join(segments)), format="mp4")
    frames = [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]
    container.close()
    return frames


@pytest.fixture
def server(vigie):
    process = vigie(CONFIG)
    wait_until(lambda: all(c["state"] == "live" for c in process.get_json("/api/cameras")), 10)
    return process


async def test_wall_over_websocket_as_fragmented_mp4(server):
    async with aiohttp.ClientSession(headers=server.headers) as session:
        async with session.ws_connect(server.base_url.replace("http", "ws") + "/walls/w/ws") as ws:
            texts, binaries = await receive(ws, 4.0)
    hello = texts[0]
    assert hello["type"] == "hello" and hello["format"] == "fmp4"
    assert hello["mime"].startswith('video/mp4; codecs="avc1.42') and hello["wall"]["layout"] == "2x2"
    segments = [data for _, data in binaries]
    assert segments[0][4:8] == b"ftyp" and b"moov" in segments[0]
    assert all(segment[4:8] == b"moof" for segment in segments[1:])  # one fragment per message
    assert len(segments) - 1 >= 30  # 10 fps for about 4 s, first frame at once
    frames = decode_fmp4(segments)
    assert len(frames) >= len(segments) - 2  # the decoder may hold the last one
    assert cell_tags(frames[-1]) == [1, 2, 3, 4]
    ages = [cell_stamp(frames[i], CellSpec(None, 0, 0), (2, 2), (320, 180)).age_ms(int(t * 1000) % 2**32)
            for i, (t, _) in enumerate(binaries[1:len(frames) + 1])]
    assert np.median(ages) < 1000, ages  # loose: latency is the bench's business


async def test_the_same_socket_carries_jpeg_for_browsers_without_mse(server):
    async with aiohttp.ClientSession(headers=server.headers) as session:
        url = server.base_url.replace("http", "ws") + "/cameras/c3/ws?format=jpeg"
        async with session.ws_connect(url) as ws:
            texts, binaries = await receive(ws, 2.0)
    assert texts[0]["format"] == "jpeg" and texts[0]["camera"]["id"] == "c3"
    import cv2
    gray = cv2.imdecode(np.frombuffer(binaries[-1][1], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert cell_stamp(gray, CellSpec(None, 0, 0), (1, 1), (320, 180)).tag == 3
    assert len(binaries) >= 10


async def test_operator_changes_a_cell_and_every_screen_follows(server):
    operator = login(server.base_url, "operator", "operator-Pw-52ab")
    async with aiohttp.ClientSession(headers=server.headers) as session:
        async with session.ws_connect(server.base_url.replace("http", "ws") + "/walls/w/ws?format=jpeg") as ws:
            await receive(ws, 1.0)
            body = json.dumps({"layout": "2x2", "cameras": ["c5", "c2", "c3", None]}).encode()
            status, _, answer = fetch("PUT", server.base_url + "/api/walls/w", body,
                                      {**operator, "Content-Type": "application/json"})
            assert status == 200, answer
            assert [c["camera"] for c in json.loads(answer)["cells"]] == ["c5", "c2", "c3", None]

            def changed(texts, binaries):
                return any(t["type"] == "wall" for t in texts)
            texts, _ = await receive(ws, 5.0, until=changed)
            assert [c["camera"] for c in texts[-1]["wall"]["cells"]] == ["c5", "c2", "c3", None]
            _, binaries = await receive(ws, 1.5)
    import cv2
    gray = cv2.imdecode(np.frombuffer(binaries[-1][1], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert cell_tags(gray) == [5, 2, 3, None]
    events = server.get_json("/api/audit?kind=wall_change")
    assert events[0]["user"] == "operator" and events[0]["cameras"] == ["c5", "c2", "c3"]


async def test_tours_cycle_pages_and_stop(server):
    async with aiohttp.ClientSession(headers=server.headers) as session:
        put = lambda body: session.put(server.base_url + "/api/walls/w", json=body)  # noqa: E731
        async with put({"tour": {"seconds": 3, "pages": [["c1", "c2"], ["c5", "c4", "c3"]]}}) as response:
            assert response.status == 200 and (await response.json())["tour"]["seconds"] == 3
        async with session.ws_connect(server.base_url.replace("http", "ws") + "/walls/w/ws?format=jpeg") as ws:
            seen = set()
            deadline = time.monotonic() + 8
            import cv2
            while time.monotonic() < deadline and len(seen) < 2:
                _, binaries = await receive(ws, 0.5)
                if binaries:
                    gray = cv2.imdecode(np.frombuffer(binaries[-1][1], np.uint8), cv2.IMREAD_GRAYSCALE)
                    seen.add(tuple(cell_tags(gray)))
        assert {(1, 2, None, None), (5, 4, 3, None)} <= seen
        async with put({"tour": None}) as response:
            assert (await response.json())["tour"] is None
        async with put({"tour": {"seconds": 1, "pages": [["c1"], ["c2"]]}}) as response:
            assert response.status == 400
        async with put({"layout": "9x9", "cameras": ["c1"]}) as response:
            assert response.status == 400 and "layout" in (await response.json())["error"]
        async with put({"layout": "2x2", "cameras": ["nope"]}) as response:
            assert response.status == 400


async def test_police_sockets_and_wall_changes_are_scoped(server):
    agent = login(server.base_url, "agent", "agent-Pw")
    base = server.base_url.replace("http", "ws")
    async with aiohttp.ClientSession(headers=agent) as session:
        for path in ("/cameras/c5/ws", "/walls/w/ws", "/mosaic/ws?cameras=c1,c5"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(base + path)
            assert refused.value.status == 404
        async with session.ws_connect(base + "/walls/commune-nord/ws?format=jpeg") as ws:
            texts, binaries = await receive(ws, 1.5)
            assert texts[0]["wall"]["id"] == "commune-nord" and binaries
        async with session.put(server.base_url + "/api/walls/commune-nord", json={"tour": None}) as response:
            assert response.status == 403
        async with session.put(server.base_url + "/api/walls/w", json={"tour": None}) as response:
            assert response.status == 404
