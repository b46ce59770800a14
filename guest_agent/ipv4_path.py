"""Scenario 10000's data path: host IPv4 packets <-> IPv6 packets of the home address.

Fig. 10 steps 514 (host IPv4 packet translated; an unknown destination in the pool is refused,
one outside the pool maps to the RFC 6052 prefix) and 511 (an IPv6 packet for the home address
translated; an unknown IPv6 source gets a pool address, or, with the pool exhausted and nothing
expired, an ICMPv6 administratively-prohibited error). Table 230 decides addresses; the RFC 7915
translator rewrites headers.
"""

from __future__ import annotations

import struct
from collections import Counter

from netstack.translate.icmp_errors import build_icmpv6_error, icmpv4_admin_prohibited
from netstack.translate.rfc7915 import Rfc7915Translator
from netstack.translate.table import TranslationTable
from netstack.wire.offload import Offload, SegmentationError, segment

_DEST_UNREACHABLE, _ADMIN_PROHIBITED = 1, 1
_TCP, _UDP = 6, 17
_U16 = struct.Struct("!H")


class Ipv4Translation:
    def __init__(
        self,
        table: TranslationTable,
        translator: Rfc7915Translator,
        *,
        home_address: bytes,
        home_ipv4: bytes,
        gateway_ipv4: bytes,
        counters: Counter[str],
    ) -> None:
        self.table = table
        self.translator = translator
        self.home_address = home_address
        self.home_ipv4 = home_ipv4
        self.gateway_ipv4 = gateway_ipv4
        self.counters = counters

    def map_inner_6to4(self, address: bytes) -> bytes | None:
        """Addresses quoted inside ICMP errors (no pool allocation for them)."""
        entry = self.table.get(address)
        if entry is not None:
            return entry.ipv4
        return self.table.prefix.extract(address)

    def map_inner_4to6(self, address: bytes) -> bytes | None:
        entry = self.table.get_by_v4(address)
        if entry is not None:
            return entry.ipv6
        return None if address in self.table.pool else self.table.prefix.embed(address)

    def outbound(self, packet: memoryview, now: float) -> tuple[list[bytes], list[bytes]]:
        """Step 514: (IPv6 packets from the home address, IPv4 errors back to the host)."""
        if len(packet) < 20 or packet[0] >> 4 != 4:
            self.counters["xlat_dropped_not_ipv4"] += 1
            return [], []
        if packet[12:16] != self.home_ipv4:
            # Only the home address's virtual IPv4 (interface 19) is translated.
            self.counters["xlat_dropped_foreign_source"] += 1
            return [], []
        destination = self.table.v4_to_v6(bytes(packet[16:20]), now, len(packet))
        if destination is None:
            self.counters["xlat_dropped_unmapped_destination"] += 1
            error = icmpv4_admin_prohibited(bytes(packet), self.gateway_ipv4)
            return [], [error] if error else []
        out = self.translator.translate_4to6(packet, self.home_address, destination)
        self.counters["xlat_4to6"] += len(out)
        return out, self.translator.icmp_errors_to_send()

    def inbound(self, packet: memoryview, now: float) -> tuple[list[bytes], list[bytes]]:
        """Step 511: (IPv4 packets for the host, IPv6 errors back to the correspondent)."""
        source6 = bytes(packet[8:24])
        if packet[6] == 58 and len(packet) > 40 and packet[40] < 128 and self.table.get(source6) is None:
            # An ICMPv6 error from a router on the path: it must not use up a pool address;
            # it reaches the host from the gateway, as a router's error would (RFC 7915 5.2).
            source = self.table.v6_to_v4(source6, now, len(packet)) if self.table.prefix.extract(source6) else self.gateway_ipv4
        else:
            source = self.table.v6_to_v4(source6, now, len(packet))
        if source is None:
            self.counters["xlat_dropped_pool_exhausted"] += 1
            error = build_icmpv6_error(
                bytes(packet), self.home_address, _DEST_UNREACHABLE, _ADMIN_PROHIBITED
            )
            return [], [error] if error else []
        out = self.translator.translate_6to4(packet, source, self.home_ipv4)
        self.counters["xlat_6to4"] += len(out)
        return out, self.translator.icmp_errors_to_send()

    def outbound_super_frame(
        self, packet: memoryview, offload: Offload, now: float
    ) -> tuple[bytearray | None, list[bytes | bytearray], list[bytes]]:
        """Step 514 once for a GSO super-frame of the host (TSO/GRO).

        The first segment goes through the RFC 7915 translator like any packet (table 230,
        errors, counters); its translated IPv6 and transport headers then head the whole
        payload: returns (that IPv6 super-frame, [], []) for the caller to cut (with
        ``segment``) or to tunnel whole. Anything the translator does not turn into one plain
        IPv6 packet of the same protocol (errors, fragment headers) takes the per-segment
        path instead: (None, translated segments, ICMPv4 errors).
        """
        protocol = packet[9] if len(packet) >= 20 else 0
        transport = offload.csum_start - 14
        if protocol == _TCP and 20 <= transport <= len(packet) - 20:
            header_end = transport + (packet[transport + 12] >> 4) * 4
        elif protocol == _UDP and 20 <= transport <= len(packet) - 8:
            header_end = transport + 8
        else:
            return None, *self._per_segment(packet, offload, now)
        size = offload.gso_size
        if header_end >= len(packet) or size <= 0:
            return None, *self._per_segment(packet, offload, now)
        try:  # the first segment as the kernel would cut it (finished checksums)
            first = segment(packet[: header_end + size], size, l3_offset=0)[0]
        except SegmentationError:
            return None, *self._per_segment(packet, offload, now)
        out, errors = self.outbound(memoryview(first), now)
        if errors or len(out) != 1 or out[0][0] >> 4 != 6 or out[0][6] != protocol:
            return None, *self._per_segment(packet, offload, now, first_done=(out, errors))
        whole = bytearray(out[0][: 40 + header_end - transport])
        whole += packet[header_end:]
        # The payload length is rewritten per segment; a 64 KB super-frame may not fit it.
        _U16.pack_into(whole, 4, min(len(whole) - 40, 0xFFFF))
        segments = -(-(len(packet) - header_end) // size)
        self.counters["xlat_4to6"] += segments - 1
        self.counters["xlat_4to6_super_frames"] += 1
        return whole, [], []

    def _per_segment(
        self,
        packet: memoryview,
        offload: Offload,
        now: float,
        first_done: tuple[list[bytes], list[bytes]] | None = None,
    ) -> tuple[list[bytes | bytearray], list[bytes]]:
        """Cut first, then translate every segment (`first_done`: segment 0's result)."""
        try:
            pieces = segment(packet, offload.gso_size, l3_offset=0)
        except SegmentationError:
            self.counters["xlat_dropped_gso_unsupported"] += 1
            return [], []
        out: list[bytes | bytearray] = []
        errors: list[bytes] = []
        if first_done is not None:
            out.extend(first_done[0])
            errors.extend(first_done[1])
            pieces = pieces[1:]
        for piece in pieces:
            translated, failed = self.outbound(memoryview(piece), now)
            out.extend(translated)
            errors.extend(failed)
        return out, errors
