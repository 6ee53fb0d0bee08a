"""Access units into RTP packets, the way cameras send them, for Vigie's RTSP output.

H.264 per RFC 6184 (packetization-mode 1): a NAL unit that fits the MTU goes alone, small
ones before a picture (parameter sets, SEI) are aggregated in one STAP-A, a big one is cut
into FU-A fragments. H.265 per RFC 7798: the same with AP (48) and FU (49). The last packet
of an access unit carries the marker. RTCP sender reports map RTP time to the wall clock
(NTP), so a recipient keeps the true time of every picture.

Pure byte work, no I/O: the RTSP output sends what these return. The reverse, for what
cameras send, is ingest/source/rtsp/rtp.py; the tests run one into the other.
"""

from __future__ import annotations

import os
import struct

MTU = 1400  # RTP packet size at most (header included): fits any path's 1,500 with room
RTP_HEADER = struct.Struct(">BBHII")
RTP_VERSION = 0x80
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)


def split_annex_b(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B access unit (3- or 4-byte start codes), in one pass."""
    nals = []
    start = data.find(b"\x00\x00\x01")
    while start != -1:
        begin = start + 3
        following = data.find(b"\x00\x00\x01", begin)
        end = len(data) if following == -1 else following
        # A 4-byte start code leaves its first zero at the end of the previous unit.
        nal = data[begin:end]
        if following != -1 and nal.endswith(b"\x00"):
            nal = nal[:-1]
        if nal:
            nals.append(nal)
        start = following
    return nals


class RtpPacketiser:
    """One RTP stream: sequence numbers and SSRC of its own, packets of at most `mtu`."""

    def __init__(self, codec: str, payload_type: int = 96, mtu: int = MTU,
                 ssrc: int | None = None, first_sequence: int | None = None) -> None:
        if codec not in ("H264", "H265"):
            raise ValueError(f"no RTP packetiser for {codec}")
        self.codec = codec
        self.payload_type = payload_type
        self.mtu = mtu
        self.ssrc = int.from_bytes(os.urandom(4), "big") if ssrc is None else ssrc
        # A random start (RFC 3550 5.1): a recipient cannot tell a restart from a loss.
        self.sequence = int.from_bytes(os.urandom(2), "big") if first_sequence is None else first_sequence
        self.packets_sent = 0
        self.octets_sent = 0  # payload octets, as the sender report counts them
        self._header_size = 2 if codec == "H265" else 1  # a NAL unit's own header

    def packetise(self, access_unit: bytes, timestamp: int) -> list[bytes]:
        """The RTP packets of one Annex B access unit at `timestamp` (90 kHz ticks)."""
        return self.packets(self.payloads(access_unit), timestamp)

    def packets(self, payloads: list[bytes], timestamp: int) -> list[bytes]:
        """RTP packets of this stream (its sequence numbers, its SSRC) around payloads made
        by `payloads`: what depends on the stream is only the 12-byte header."""
        return [self._rtp(payload, timestamp, marker=index == len(payloads) - 1)
                for index, payload in enumerate(payloads)]

    def payloads(self, access_unit: bytes) -> list[bytes]:
        """The RTP payloads of one access unit: the same for every stream of this codec and
        MTU, so one picture sent to many clients is cut once."""
        packets: list[bytes] = []
        room = self.mtu - RTP_HEADER.size
        pending: list[bytes] = []  # small NAL units waiting to be aggregated
        aggregate = self._header_size  # the size of `pending` as one aggregation packet
        for nal in split_annex_b(access_unit):
            if len(nal) > room:
                self._flush(pending, packets)
                aggregate = self._header_size
                self._fragments(nal, packets, room)
                continue
            if aggregate + 2 + len(nal) > room:
                self._flush(pending, packets)
                aggregate = self._header_size
            pending.append(nal)
            aggregate += 2 + len(nal)
        self._flush(pending, packets)
        return packets

    def _flush(self, pending: list[bytes], packets: list[bytes]) -> None:
        if len(pending) == 1:
            packets.append(pending[0])
        elif pending:
            packets.append(self._aggregate(pending))
        pending.clear()

    def _aggregate(self, nals: list[bytes]) -> bytes:
        """STAP-A (H.264) or AP (H.265): one header, then each unit after its 16-bit size."""
        if self.codec == "H264":
            # F bit of any unit, the highest NRI of them, type 24.
            header = bytes([(max(n[0] & 0x60 for n in nals)) | (max(n[0] & 0x80 for n in nals)) | 24])
        else:
            layer_tid = min(((n[0] & 0x01) << 8 | n[1]) & 0x1FF for n in nals)  # lowest layer, TID
            header = bytes([(48 << 1) | (layer_tid >> 8), layer_tid & 0xFF])
        return header + b"".join(struct.pack(">H", len(n)) + n for n in nals)

    def _fragments(self, nal: bytes, packets: list[bytes], room: int) -> None:
        """FU-A (H.264) or FU (H.265): the unit's header becomes a fragment header with
        start and end flags; its payload is cut to fit."""
        if self.codec == "H264":
            indicator = bytes([(nal[0] & 0xE0) | 28])
            kind = nal[0] & 0x1F
        else:
            indicator = bytes([(nal[0] & 0x81) | (49 << 1), nal[1]])
            kind = (nal[0] >> 1) & 0x3F
        body = memoryview(nal)[self._header_size:]
        size = room - len(indicator) - 1
        for offset in range(0, len(body), size):
            flags = (0x80 if offset == 0 else 0) | (0x40 if offset + size >= len(body) else 0)
            packets.append(indicator + bytes([flags | kind]) + bytes(body[offset:offset + size]))

    def _rtp(self, payload: bytes, timestamp: int, marker: bool) -> bytes:
        header = RTP_HEADER.pack(RTP_VERSION, (0x80 if marker else 0) | self.payload_type,
                                 self.sequence, timestamp & 0xFFFFFFFF, self.ssrc)
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return header + payload

    def sender_report(self, wall_time: float, timestamp: int) -> bytes:
        """An RTCP sender report (RFC 3550 6.4.1): this RTP `timestamp` is the picture
        taken at `wall_time` (Unix seconds), with the counts so far. No report blocks."""
        ntp = wall_time + NTP_EPOCH_OFFSET
        seconds = int(ntp)
        fraction = int((ntp - seconds) * (1 << 32)) & 0xFFFFFFFF
        return struct.pack(">BBHIIIIII", 0x80, 200, 6, self.ssrc, seconds & 0xFFFFFFFF, fraction,
                           timestamp & 0xFFFFFFFF, self.packets_sent & 0xFFFFFFFF,
                           self.octets_sent & 0xFFFFFFFF)
