"""Scenario 10000's data path: host IPv4 packets <-> IPv6 packets of the home address.

Fig. 10 steps 514 (host IPv4 packet translated; an unknown destination in the pool is refused,
one outside the pool maps to the RFC 6052 prefix) and 511 (an IPv6 packet for the home address
translated; an unknown IPv6 source gets a pool address, or, with the pool exhausted and nothing
expired, an ICMPv6 administratively-prohibited error). Table 230 decides addresses; the RFC 7915
translator rewrites headers.
"""

from __future__ import annotations

from collections import Counter

from netstack.translate.icmp_errors import build_icmpv6_error, icmpv4_admin_prohibited
from netstack.translate.rfc7915 import Rfc7915Translator
from netstack.translate.table import TranslationTable

_DEST_UNREACHABLE, _ADMIN_PROHIBITED = 1, 1


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
