"""SIP over TCP through the ALG: rewritten segments change length, so sequence numbers move.

Inputs: an IPv4/TCP segment of the host's SIP connection (host -> peer before step 514, or
peer -> host after step 511), a text rewriter for its payload, `now`. Output: the segment
with its payload rewritten (when it holds whole SIP messages), its sequence number shifted by
what earlier rewrites added to this direction, its acknowledgement number shifted back by
what rewrites added to the other direction, and a new TCP checksum (what Linux's
nf_nat_sip + nf_nat_seq_adjust do).

Choices: a segment that does not hold whole messages (a message split across segments) is
passed with its numbers shifted but its text unchanged, and counted; a retransmission is
rewritten again the same way (the shift recorded for its position is reused); SACK blocks
are left (a receiver ignores blocks it cannot match); connections idle for 10 minutes are
forgotten.
"""

from __future__ import annotations

import bisect
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from guest_agent.sip_alg import SipParseError
from netstack.wire.checksum import internet_checksum, ones_complement_sum
from netstack.wire.ipv4 import ipv4_header_checksum

_U32 = struct.Struct("!I")
_MOD = 1 << 32
IDLE = 600.0
StreamRewriter = Callable[[bytes], bytes]  # raises SipParseError


def _tcp_checksum(src: bytes, dst: bytes, segment: bytes | bytearray) -> int:
    pseudo = ones_complement_sum(src + dst + struct.pack("!xBH", 6, len(segment)))
    return internet_checksum(segment, pseudo)


@dataclass
class SeqShift:
    """Octets added to one direction of a stream, by position (relative to the first seq)."""

    base: int | None = None
    ends: list[int] = field(default_factory=list)  # original relative end of each rewrite
    shifts: list[int] = field(default_factory=list)  # cumulative shift after that end

    def _rel(self, seq: int) -> int:
        if self.base is None:
            self.base = seq
        return (seq - self.base) % _MOD

    def before(self, seq: int) -> int:
        i = bisect.bisect_right(self.ends, self._rel(seq))
        return self.shifts[i - 1] if i else 0

    def to_wire(self, seq: int) -> int:
        return (seq + self.before(seq)) % _MOD

    def from_wire(self, ack: int) -> int:
        """An acknowledgement of the shifted stream, in the original numbering."""
        if self.base is None:
            return ack
        rel = (ack - self.base) % _MOD
        shift = 0
        for end, cumulative in zip(self.ends, self.shifts, strict=True):
            if end + cumulative <= rel:
                shift = cumulative
        return (ack - shift) % _MOD

    def note(self, seq: int, old_len: int, new_len: int) -> None:
        if new_len == old_len:
            return
        end = self._rel(seq) + old_len
        i = bisect.bisect_left(self.ends, end)
        if i < len(self.ends) and self.ends[i] == end:
            return  # a retransmission: recorded already
        previous = self.shifts[i - 1] if i else 0
        self.ends.insert(i, end)
        self.shifts.insert(i, previous + new_len - old_len)
        for j in range(i + 1, len(self.shifts)):  # (out of order: later marks move too)
            self.shifts[j] += new_len - old_len


@dataclass
class _Connection:
    host_to_peer: SeqShift = field(default_factory=SeqShift)
    peer_to_host: SeqShift = field(default_factory=SeqShift)
    seen: float = 0.0


class TcpSipStreams:
    def __init__(self, counters: Counter[str]) -> None:
        self.counters = counters
        self._connections: dict[tuple[int, bytes, int], _Connection] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def process(self, packet: bytes | bytearray | memoryview, header_len: int, total: int,
                rewriter: StreamRewriter, *, from_host: bool, now: float) -> bytes | None:
        """The segment as it must leave, or None when it goes unchanged."""
        tcp = header_len
        if total < tcp + 20:
            return None
        sport, dport = struct.unpack_from("!HH", packet, tcp)
        peer = bytes(packet[16:20] if from_host else packet[12:16])
        key = (sport, peer, dport) if from_host else (dport, peer, sport)
        conn = self._connections.get(key)
        flags = packet[tcp + 13]  # connections are forgotten when idle (FINs still need shifts)
        if conn is None:
            conn = self._connections[key] = _Connection()
            if len(self._connections) > 1024:
                self._prune(now)
        conn.seen = now
        mine, theirs = ((conn.host_to_peer, conn.peer_to_host) if from_host
                        else (conn.peer_to_host, conn.host_to_peer))
        data_offset = (packet[tcp + 12] >> 4) * 4
        seq = _U32.unpack_from(packet, tcp + 4)[0]
        ack = _U32.unpack_from(packet, tcp + 8)[0]
        payload = bytes(packet[tcp + data_offset : total])
        new_payload = payload
        if payload.strip(b"\r\n"):
            try:
                new_payload = rewriter(payload)
            except SipParseError as exc:
                self.counters[f"sip_alg_tcp_unrewritten_{exc.reason}"] += 1
        new_seq = mine.to_wire(seq)
        mine.note(seq, len(payload), len(new_payload))
        new_ack = theirs.from_wire(ack) if flags & 0x10 else ack
        if new_payload == payload and new_seq == seq and new_ack == ack:
            return None
        header = bytearray(packet[:tcp + data_offset])
        _U32.pack_into(header, tcp + 4, new_seq)
        _U32.pack_into(header, tcp + 8, new_ack)
        struct.pack_into("!H", header, 2, len(header) + len(new_payload))
        header[10:12] = b"\x00\x00"
        struct.pack_into("!H", header, 10, ipv4_header_checksum(header[:tcp]))
        segment = header[tcp:] + new_payload
        segment[16:18] = b"\x00\x00"
        struct.pack_into("!H", segment, 16, _tcp_checksum(bytes(header[12:16]),
                                                          bytes(header[16:20]), segment))
        self.counters["sip_alg_tcp_segments_adjusted"] += 1
        return bytes(header[:tcp] + segment)

    def _prune(self, now: float) -> None:
        self._connections = {k: c for k, c in self._connections.items() if now - c.seen < IDLE}
