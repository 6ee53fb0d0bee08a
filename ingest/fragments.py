"""One H.264 sample in, its fragmented-MP4 fragment (moof + mdat) out, at once.

FFmpeg's mp4 muxer (`frag_every_frame`) writes a sample's fragment only when the next
sample arrives, as it takes the sample's duration from the next one's timestamp: one frame
of delay for every fMP4 viewer (67 ms on a 15 fps wall, 200 ms on a 5 fps village camera).
Vigie still lets FFmpeg write the init segment (ftyp + moov: the avcC record, the track's
timescale), then writes each fragment itself, with the duration guessed from the interval
just elapsed (the first one: the nominal frame period). A guess a little off leaves a small
gap or overlap between samples, which Media Source Extensions take as contiguous (Chromium
merges frames closer than twice the largest interval it has seen), and the next fragment's
decode time (tfdt) is exact, so no error adds up.

Box layout as FFmpeg's with `default_base_moof` (ISO/IEC 14496-12): moof(mfhd, traf(tfhd,
tfdt, trun of one sample with its duration, size and flags)), then mdat. Samples are AVCC:
each NAL unit after its 32-bit length (the muxer's conversion of the encoder's Annex B).
"""

from __future__ import annotations

import io
import struct
from fractions import Fraction

import av

# trun sample flags: a sync sample depends on no other; the others do and are non-sync.
_SYNC_FLAGS = 0x02000000
_NON_SYNC_FLAGS = 0x01010000
# trun: data offset, sample duration, size and flags present.
_TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400
_TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
_MOOF_SIZE = 8 + 16 + 8 + 16 + 20 + 32  # moof, mfhd, traf, tfhd, tfdt (v1), trun (1 sample)


class Sink(io.RawIOBase):
    """Collects what FFmpeg's muxer writes."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.buffer += data
        return len(data)


def split_boxes(buffer: bytearray) -> list[tuple[bytes, bytes]]:
    """Remove complete top-level boxes from the front of `buffer`: [(type, box bytes)]."""
    boxes = []
    while len(buffer) >= 8:
        size, kind = struct.unpack(">I4s", buffer[:8])
        if size == 1 and len(buffer) >= 16:
            size = struct.unpack(">Q", buffer[8:16])[0]
        if size < 8 or len(buffer) < size:
            break
        boxes.append((bytes(kind), bytes(buffer[:size])))
        del buffer[:size]
    return boxes


def open_muxer(sink: Sink) -> av.container.OutputContainer:
    """FFmpeg's mp4 muxer as Vigie uses it: for the init segment (see Packager)."""
    return av.open(sink, mode="w", format="mp4", options={
        "movflags": "empty_moov+default_base_moof+frag_every_frame+skip_trailer"})


def annexb_to_avcc(data: bytes) -> bytes:
    """Annex B (NAL units after 00 00 01 or 00 00 00 01) -> each NAL after its 32-bit length."""
    out = bytearray()
    start = data.find(b"\x00\x00\x01")
    if start < 0:
        return bytes(data)  # already length-prefixed, or not H.264: passed as it is
    start += 3
    while True:
        following = data.find(b"\x00\x00\x01", start)
        end = len(data) if following < 0 else following
        while end > start and data[end - 1] == 0:  # a 4-byte start code's first zero
            end -= 1
        if end > start:
            out += struct.pack(">I", end - start)
            out += data[start:end]
        if following < 0:
            return bytes(out)
        start = following + 3


def _boxes(data: bytes, start: int, end: int):
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        if size < 8 or start + size > end:
            return
        yield kind, start + 8, start + size
        start += size


def track_of(init_segment: bytes) -> tuple[int, int]:
    """(track ID, timescale) of the first track in an init segment's moov."""
    for kind, body, end in _boxes(init_segment, 0, len(init_segment)):
        if kind != b"moov":
            continue
        for kind, trak, trak_end in _boxes(init_segment, body, end):
            if kind != b"trak":
                continue
            track_id = timescale = None
            for kind, inner, inner_end in _boxes(init_segment, trak, trak_end):
                if kind == b"tkhd":
                    version = init_segment[inner]
                    track_id = struct.unpack_from(">I", init_segment,
                                                  inner + (20 if version == 1 else 12))[0]
                elif kind == b"mdia":
                    for kind, mdhd, _ in _boxes(init_segment, inner, inner_end):
                        if kind == b"mdhd":
                            version = init_segment[mdhd]
                            timescale = struct.unpack_from(">I", init_segment,
                                                           mdhd + (20 if version == 1 else 12))[0]
            if track_id and timescale:
                return track_id, timescale
    raise ValueError("init segment without a video track")


class FragmentWriter:
    """Fragments for one track of one init segment, numbered from 1, times from 0."""

    def __init__(self, init_segment: bytes, nominal_duration: Fraction) -> None:
        self.track_id, self.timescale = track_of(init_segment)
        self._nominal = max(1, round(nominal_duration * self.timescale))
        self._sequence = 0
        self._origin: int | None = None  # the first sample's time, in timescale units
        self._last: int | None = None
        self._last_duration = self._nominal

    def fragment(self, sample: bytes, time: Fraction, keyframe: bool) -> bytes:
        """The fragment of one sample (Annex B) whose decode time is `time` seconds."""
        ticks = round(time * self.timescale)
        if self._origin is None:
            self._origin = ticks
        decode_time = ticks - self._origin
        if self._last is not None:
            # Never back in time (a camera's clock that jumps back): just after the last.
            decode_time = max(decode_time, self._last + 1)
            self._last_duration = decode_time - self._last
        self._last = decode_time
        self._sequence += 1
        payload = annexb_to_avcc(sample)
        flags = _SYNC_FLAGS if keyframe else _NON_SYNC_FLAGS
        moof = b"".join((
            struct.pack(">I4s", _MOOF_SIZE, b"moof"),
            struct.pack(">I4sII", 16, b"mfhd", 0, self._sequence),
            struct.pack(">I4s", _MOOF_SIZE - 8 - 16, b"traf"),  # moof minus its header, mfhd
            struct.pack(">I4sII", 16, b"tfhd", _TFHD_DEFAULT_BASE_IS_MOOF, self.track_id),
            struct.pack(">I4sIQ", 20, b"tfdt", 1 << 24, decode_time),
            struct.pack(">I4sIIiIII", 32, b"trun", _TRUN_FLAGS, 1, _MOOF_SIZE + 8,
                        self._last_duration, len(payload), flags),
        ))
        return moof + struct.pack(">I4s", 8 + len(payload), b"mdat") + payload


class Packager:
    """Packets of one stream -> its init segment (by FFmpeg's muxer: the first packets go
    through it until it has written ftyp + moov), then one fragment per packet, at once."""

    def __init__(self, container: av.container.OutputContainer, sink: Sink,
                 nominal_duration: Fraction) -> None:
        self._container, self._sink = container, sink
        self._nominal = nominal_duration
        self._ftyp = b""
        self.init_segment: bytes | None = None
        self._writer: FragmentWriter | None = None
        # Packets muxed before the init segment was out (PyAV holds a stream's first packets
        # while it looks for the parameter sets it needs for the moov).
        self._waiting: list[tuple[bytes, Fraction, bool]] = []

    def package(self, packet: av.Packet, time: Fraction) -> list[tuple[bytes, bool]]:
        """The fragments now ready, [(moof + mdat, keyframe)]: this packet's (and any held
        before the init segment). `time` is the packet's decode time in seconds."""
        item = (bytes(packet), time, bool(packet.is_keyframe))
        if self._writer is None:
            self._waiting.append(item)
            self._container.mux(packet)
            for kind, box in split_boxes(self._sink.buffer):
                if kind == b"ftyp":
                    self._ftyp = box
                elif kind == b"moov":
                    self.init_segment = self._ftyp + box
                    self._writer = FragmentWriter(self.init_segment, self._nominal)
            if self._writer is None:
                return []
            ready, self._waiting = self._waiting, []
        else:
            ready = [item]
        return [(self._writer.fragment(sample, at, keyframe), keyframe)
                for sample, at, keyframe in ready]

    def close(self) -> None:
        try:
            self._container.close()  # writes the fragment FFmpeg held: not ours, dropped
        except Exception:  # noqa: BLE001 - closing after a failed encode may fail too
            pass
