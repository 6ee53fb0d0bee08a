"""The RTSP output's media path, before its server exists (issue 20): the SDP Vigie writes
(server/outputs/rtsp/sdp.py) and the RTP it packetises (ingest/encode/rtp.py), given to a
real client nobody here wrote. FFmpeg reads the SDP, receives the packets over UDP and
decodes every picture exactly as PyAV decodes the access units that were sent (MD5 of each
decoded frame), for H.264 and H.265; our camera-side SDP reader reads the same SDP back.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from ingest.encode.rtp import RtpPacketiser
from ingest.source.rtsp.message import parse_sdp
from ingest.source.rtsp.rtp import parameter_sets
from ingest.encode.annexb import parameter_sets_of
from server.outputs.rtsp.sdp import session_description
from tests.conftest import missing_component

SIZE = (320, 180)
FRAMES = 50
FPS = 25


def encoded(codec: str) -> list[bytes]:
    """FRAMES access units (Annex B) of a moving test picture, the first a keyframe."""
    context = av.CodecContext.create("libx264" if codec == "H264" else "libx265", "w")
    context.width, context.height, context.pix_fmt = *SIZE, "yuv420p"
    context.time_base, context.framerate = Fraction(1, FPS), Fraction(FPS)
    if codec == "H264":
        context.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                           "g": str(FPS)}
    else:
        context.options = {"preset": "ultrafast", "tune": "zerolatency",
                           "x265-params": f"keyint={FPS}:log-level=error"}
    units = []
    width, height = SIZE
    for index in range(FRAMES):
        picture = np.full((height * 3 // 2, width), 128, np.uint8)
        picture[:height] = (np.arange(width)[None, :] + 4 * index) % 256
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts = index
        units += [bytes(packet) for packet in context.encode(frame)]
    units += [bytes(packet) for packet in context.encode(None)]
    return units


def decoded_md5s(codec: str, units: list[bytes]) -> list[str]:
    decoder = av.CodecContext.create("h264" if codec == "H264" else "hevc", "r")
    return [hashlib.md5(frame.to_ndarray().tobytes()).hexdigest()
            for unit in units for frame in decoder.decode(av.Packet(unit))]


def free_even_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1] & ~1
        try:  # RTP on the even port, RTCP on the next
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtcp:
                rtp.bind(("127.0.0.1", port))
                rtcp.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue


def wait_bound(port: int, timeout: float = 10.0) -> None:
    """Until FFmpeg holds the RTP port (binding it ourselves then fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)
    raise AssertionError(f"FFmpeg did not bind UDP port {port} in {timeout} s")


@pytest.mark.parametrize("codec", ["H264", "H265"])
def test_ffmpeg_decodes_our_rtp_exactly(codec: str, tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        missing_component("ffmpeg is not installed (apt-get install ffmpeg)")
    units = encoded(codec)
    reference = decoded_md5s(codec, units)
    assert len(reference) == FRAMES
    port = free_even_port()
    sdp = session_description(codec, units[0], FPS, "trackID=0", "127.0.0.1", port)
    (tmp_path / "stream.sdp").write_text(sdp)
    wanted = FRAMES + 10
    ffmpeg = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-protocol_whitelist", "file,udp,rtp",
         "-i", str(tmp_path / "stream.sdp"), "-frames:v", str(wanted), "-f", "framemd5", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    packetiser = RtpPacketiser(codec)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        wait_bound(port)
        # The clip three times over, at its rate: FFmpeg keeps the last pictures until
        # more come (its decoder's and jitter buffer's delay).
        for index, unit in enumerate(units * 3):
            for packet in packetiser.packetise(unit, index * 90_000 // FPS):
                sender.sendto(packet, ("127.0.0.1", port))
            if ffmpeg.poll() is not None:
                break
            time.sleep(1 / FPS)
        output, errors = ffmpeg.communicate(timeout=30)
    finally:
        sender.close()
        if ffmpeg.poll() is None:
            ffmpeg.kill()
            ffmpeg.wait()
    received = [line.rsplit(",", 1)[-1].strip() for line in output.splitlines()
                if line and not line.startswith("#")]
    assert len(received) == wanted, errors[-1000:]
    # From a keyframe (the first, unless FFmpeg came late), every picture in order.
    loop = reference * 3
    start = loop.index(received[0]) if received[0] in loop else -1
    assert start >= 0 and start % FPS == 0, "FFmpeg's first picture is none of those sent"
    assert received == loop[start:start + wanted], "FFmpeg decoded other pictures than those sent"
    # and the camera side of Vigie reads the same description back
    track, missing, _ = parse_sdp(sdp)
    assert missing is None and track.codec == codec and track.clock_rate == 90_000
    sets = parameter_sets_of(codec, units[0])
    assert parameter_sets(codec, track.fmtp) == [*sets["vps"], *sets["sps"], *sets["pps"]]
