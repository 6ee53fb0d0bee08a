"""Our RTSP client (ingest/source/rtsp/client.py, ingest/source/rtsp/source.py) against the real GStreamer RTSP
server: codecs, credentials, the fallback to FFmpeg's client, and bulk reading while idle.
"""

from __future__ import annotations

import threading
import time

import pytest

from ingest.source.decoding import REDUCED_INTERVAL, Decoding
from ingest.source.rtsp.source import IDLE_READ_INTERVAL, RtspSource
from ingest.source import PyAVSource, SourceError, SourceSpec, open_source
from ingest.picture.stamp import read_stamp
from tests.support.camsim import CameraSimulator, Mount
from tests.ingest.test_camsim import gstreamer  # noqa: F401 - fixture (fails under CI=true)

USER, PASSWORD = "carole", "pa:ss/w@rd"

MOUNTS = [
    Mount("h264", codec="h264", tag=31),
    Mount("h265", codec="h265", tag=32),
    Mount("mjpeg", codec="mjpeg", tag=33),
    Mount("basic", tag=34, username=USER, password=PASSWORD, auth="basic"),
    Mount("digest", tag=35, username=USER, password=PASSWORD, auth="digest"),
]
TAGS = {mount.path: mount.tag for mount in MOUNTS}


@pytest.fixture(scope="module")
def sim(gstreamer):  # noqa: F811
    with CameraSimulator(MOUNTS) as simulator:
        yield simulator


def first_tag(source, seconds: float = 8.0) -> int | None:
    """The stamp tag of the first decoded picture (decoding in full)."""
    deadline = time.monotonic() + seconds
    for packet in source.packets(lambda: Decoding.FULL):
        if packet.frame is not None:
            stamp = read_stamp(packet.frame.to_ndarray(format="gray"))
            if stamp is not None:
                return stamp.tag
        if time.monotonic() > deadline:
            return None
    return None


@pytest.mark.parametrize(("path", "kind", "codec"), [
    ("h264", RtspSource, "h264"),
    ("h265", RtspSource, "hevc"),
    ("mjpeg", PyAVSource, "mjpeg"),  # RTP/JPEG: FFmpeg's client reads it
])
def test_each_codec_reaches_the_right_reader_and_decodes(sim, path, kind, codec) -> None:
    source = open_source(SourceSpec(sim.url(path)))
    try:
        assert type(source) is kind and source.codec == codec
        assert first_tag(source) == TAGS[path]
    finally:
        source.close()


def test_a_camera_our_client_does_not_take_is_remembered_with_its_spec(sim) -> None:
    """The fallback to FFmpeg is learned once per camera worker (its spec), not in a
    module-level set that outlived the camera's config."""
    from ingest.source.rtsp.source import FFMPEG_ONLY

    spec = SourceSpec(sim.url("mjpeg"))
    for _ in range(2):
        source = open_source(spec)
        source.close()
        assert type(source) is PyAVSource and spec.learned == {FFMPEG_ONLY}
    assert SourceSpec(sim.url("mjpeg")).learned == set()  # a new config starts afresh


def test_udp_cameras_stay_with_ffmpeg(sim) -> None:
    source = open_source(SourceSpec(sim.url("h264"), transport="udp"))
    try:
        assert type(source) is PyAVSource
    finally:
        source.close()


@pytest.mark.parametrize("path", ["basic", "digest"])
def test_credentials_basic_and_digest(sim, path) -> None:
    source = open_source(SourceSpec(sim.url(path), username=USER, password=PASSWORD))
    try:
        assert type(source) is RtspSource
        assert first_tag(source) == TAGS[path]
    finally:
        source.close()


@pytest.mark.parametrize("path", ["basic", "digest"])
def test_wrong_password_is_definitive_and_never_echoed(sim, path) -> None:
    wrong = "n0t-" + PASSWORD
    with pytest.raises(SourceError) as caught:
        open_source(SourceSpec(sim.url(path), username=USER, password=wrong))
    assert caught.value.reason == "authentication failed (401 Unauthorized)"
    assert caught.value.definitive
    assert wrong not in str(caught.value) and PASSWORD not in str(caught.value)


def test_no_camera_there_is_refused_definitively() -> None:
    with pytest.raises(SourceError) as caught:
        open_source(SourceSpec("rtsp://127.0.0.1:9/none"))  # the discard port: nobody
    assert caught.value.reason == "connection refused" and caught.value.definitive


def test_idle_reads_in_bulk_and_still_decodes_keyframes(sim) -> None:
    """Nobody watching: a few reads a second, each bringing a quarter second of the camera,
    and a keyframe decoded now and then; watching: a read as data comes; a remux of the
    camera's stream (`live`, not decoded): a read as data comes too, no decoding; reduced
    for want of CPU (its tiles wanted): in bulk again, every keyframe decoded; reduced and
    remuxed to a viewer too (`live`): as data comes for the viewer, keyframes decoded only."""
    source = open_source(SourceSpec(sim.url("h264")))
    assert type(source) is RtspSource
    reads = 0
    real_read = source._client.read

    def counted():
        nonlocal reads
        reads += 1
        return real_read()

    def read_for(seconds: float, mode: Decoding, live: threading.Event | None = None) -> dict:
        nonlocal reads
        reads, counts = 0, {"units": 0, "frames": 0}
        started = time.monotonic()
        for packet in source.packets(lambda: mode, live):
            counts["units"] += 1 if packet.size else 0
            counts["frames"] += packet.frame is not None
            if time.monotonic() - started > seconds:
                break
        return {**counts, "reads": reads}

    source._client.read = counted
    remuxed = threading.Event()
    remuxed.set()
    try:
        idle = read_for(3.0, Decoding.IDLE)
        full = read_for(2.0, Decoding.FULL)
        tapped = read_for(2.0, Decoding.IDLE, remuxed)
        reduced = read_for(3.0, Decoding.REDUCED)
        reduced_remuxed = read_for(3.0, Decoding.REDUCED, remuxed)
    finally:
        source.close()
    # 15 fps for 3 s: ~45 pictures in at most 3 / 0.25 + 1 reads.
    assert idle["units"] >= 30, idle
    assert idle["reads"] <= 3.0 / IDLE_READ_INTERVAL + 2, idle
    assert 1 <= idle["frames"] <= 3, idle  # keyframes only, one every 2 s
    # Watching, the socket is read as pictures come: at least one read per picture.
    assert full["units"] >= 20 and full["reads"] >= full["units"], full
    assert tapped["units"] >= 20 and tapped["reads"] >= tapped["units"], tapped
    assert tapped["frames"] <= 2, tapped  # a keyframe every 2 s at most: not decoded in full
    assert reduced["units"] >= 30, reduced
    assert reduced["reads"] <= 3.0 / IDLE_READ_INTERVAL + 2, reduced
    assert 2 <= reduced["frames"] <= 4, reduced  # each keyframe (GOP 1 s), nothing else
    # Its stream remuxed to a viewer: every packet as it comes, still keyframes decoded only.
    assert reduced_remuxed["units"] >= 30, reduced_remuxed
    assert reduced_remuxed["reads"] >= reduced_remuxed["units"], reduced_remuxed
    assert 2 <= reduced_remuxed["frames"] <= 4, reduced_remuxed


def test_keep_alives_follow_the_session_timeout_and_their_answers_do_not_disturb(gstreamer):  # noqa: F811
    """The camera says how long a silent session lives (Session: ...;timeout=6); the client
    keeps it alive within that (every 5 s, our floor) while streaming, the camera answers
    200 in the middle of the media, and the pictures go on decoding with their stamps.
    (GStreamer's server does not end TCP sessions that are not kept alive, so the answers
    are what shows the camera took them.)"""
    with CameraSimulator([Mount("kept", codec="h264", tag=36)], session_timeout=6) as short:
        source = open_source(SourceSpec(short.url("kept")))
        assert type(source) is RtspSource
        tags = set()
        started = time.monotonic()
        try:
            for packet in source.packets(lambda: Decoding.FULL):
                if packet.frame is not None:
                    stamp = read_stamp(packet.frame.to_ndarray(format="gray"))
                    tags.add(stamp.tag if stamp else None)
                if time.monotonic() - started > 11.5:
                    break
            client = source._client
            assert client._keepalive_every == 5.0
            assert client.keepalives == 2 and client.keepalives_answered == 2
        finally:
            source.close()
    assert tags == {36}  # every picture decoded whole, before and after the answers


def test_idle_reading_keeps_up_with_a_camera_above_one_read_per_wake(sim, monkeypatch) -> None:
    """An idle camera sending more than one read's worth between two wakes (above 8 Mbit/s
    with the real read size; here the read size is cut to 4 kB for a 1 Mbit/s camera) is
    read until its socket is empty, not a read per wake: it must not fall behind."""
    import ingest.source.rtsp.client

    monkeypatch.setattr(ingest.source.rtsp.client, "READ_SIZE", 4096)
    source = open_source(SourceSpec(sim.url("h264")))
    assert type(source) is RtspSource
    units = 0
    started = time.monotonic()
    try:
        for packet in source.packets(lambda: Decoding.IDLE):
            units += 1 if packet.size else 0
            if time.monotonic() - started > 4.0:
                break
        behind = source._client.waiting()  # what arrived since the last read
    finally:
        source.close()
    assert units >= 45, units  # 15 fps for 4 s, minus the last quarter second
    assert behind < 64_000, behind  # what arrived since the last wake, not seconds of it


def test_what_the_worker_leaves_unread_is_counted_where_it_waits(sim) -> None:
    """The lag guard asks how much of the camera's data waits unread (a worker short of
    CPU): our client answers from its own socket's queue and buffer."""
    source = open_source(SourceSpec(sim.url("h264")))
    assert type(source) is RtspSource
    client = source._client
    try:
        while not client.read():  # up to the first picture
            pass
        time.sleep(1.5)  # not reading, as a worker busy elsewhere
        left = client.waiting()
        assert 16_000 <= left < 4_000_000, left  # 1.5 s of a 640x360 camera
        taken = 0
        while client.waiting() > 0:  # catch up: what waited comes out as pictures
            taken += sum(len(unit.data) for unit in client.read())
        assert taken >= 0.8 * left, (taken, left)  # less the RTP and interleaving headers
    finally:
        source.close()


def test_a_reduced_mjpeg_camera_decodes_two_pictures_a_second(sim) -> None:
    """Every MJPEG frame is a keyframe: reduced for want of CPU, such a camera decodes at
    most one every REDUCED_INTERVAL, or reducing it would save nothing."""
    source = open_source(SourceSpec(sim.url("mjpeg")))
    units = frames = 0
    try:
        started = time.monotonic()
        for packet in source.packets(lambda: Decoding.REDUCED):
            units += 1 if packet.size else 0
            frames += packet.frame is not None
            if time.monotonic() - started > 3.0:
                break
    finally:
        source.close()
    assert units >= 30, units  # 15 fps received
    assert 3 <= frames <= 3.0 / REDUCED_INTERVAL + 1, frames


def test_an_idle_camera_holds_no_decoder_between_its_keyframes(sim) -> None:
    """Nobody watching, a keyframe is decoded every 2 s with a fresh decoder, let go at
    once (1.2 to 1.7 MB of frame buffers per 640x360 camera otherwise); watched again, a
    new decoder catches up from the kept keyframe and every picture decodes whole."""
    source = open_source(SourceSpec(sim.url("h264")))
    assert type(source) is RtspSource
    idle_tags, full_tags, held_between = [], [], []
    mode = Decoding.IDLE
    started = time.monotonic()
    try:
        for packet in source.packets(lambda: mode):
            elapsed = time.monotonic() - started
            if packet.frame is not None:
                stamp = read_stamp(packet.frame.to_ndarray(format="gray"))
                (idle_tags if mode is Decoding.IDLE else full_tags).append(stamp.tag if stamp else None)
            elif mode is Decoding.IDLE:
                held_between.append(source._context is not None)
            if elapsed > 4.5 and mode is Decoding.IDLE:
                mode = Decoding.FULL
            if elapsed > 6.5:
                break
    finally:
        source.close()
    assert 2 <= len(idle_tags) <= 3 and set(idle_tags) == {31}, idle_tags
    assert held_between and not any(held_between)
    assert len(full_tags) >= 20 and set(full_tags) == {31}, full_tags
