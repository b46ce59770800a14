"""The home agent's per-packet path (patent Fig. 10 steps 508-509 and 515-516), on bytes.

Intercepted packets for a registered home address are encapsulated to its care-of address
(RFC 6275 10.4.2, RFC 2473); reverse-tunnelled packets from a care-of address are checked
(inner source must be the home address bound to that care-of address) and forwarded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from netstack.wire.ip6ip6 import Encapsulator

IPPROTO_IPV6 = 41
_ETHERTYPE_IPV6 = b"\x86\xdd"


class HomeAgentDataPlane:
    def __init__(
        self,
        address: bytes,
        own_mac: bytes,
        counters: Counter[str],
        lookup: Callable[[bytes], bytes | None],
        link_mtu: int = 1500,
    ) -> None:
        self.address = address
        self.own_mac = own_mac
        self.counters = counters
        self.lookup = lookup  # home address (16 octets) -> care-of address, from the binding cache
        self.link_mtu = link_mtu
        self._eth_header: bytes | None = None
        self._encapsulators: dict[bytes, Encapsulator] = {}

    def set_next_hop(self, mac: bytes | None) -> None:
        self._eth_header = (mac + self.own_mac + _ETHERTYPE_IPV6) if mac else None

    @property
    def next_hop_mac(self) -> bytes | None:
        return None if self._eth_header is None else self._eth_header[:6]

    @property
    def next_hop_known(self) -> bool:
        return self._eth_header is not None

    def forget(self, care_of_address: bytes) -> None:
        self._encapsulators.pop(care_of_address, None)

    def intercept(self, packet: memoryview, care_of_address: bytes) -> bytes | None:
        """Encapsulate a packet for a home address to its care-of address.

        Returns the outer packet, or None when it does not fit (the caller sends a Packet Too
        Big) or its hop limit is exhausted. The HA forwards, so the inner hop limit drops by one.
        """
        hop_limit = packet[7]
        if hop_limit <= 1:
            self.counters["rx_dropped_hop_limit"] += 1
            return None
        if len(packet) + 40 > self.link_mtu:
            self.counters["tunnel_packet_too_big"] += 1
            return None
        encapsulator = self._encapsulators.get(care_of_address)
        if encapsulator is None:
            encapsulator = Encapsulator(self.address, care_of_address)
            self._encapsulators[care_of_address] = encapsulator
        outer = encapsulator.encapsulate(packet)
        outer[47] = hop_limit - 1
        self.counters["tx_tunnelled"] += 1
        return bytes(outer)

    def detunnel(self, packet: memoryview) -> memoryview | None:
        """A reverse-tunnelled packet (outer dst = HA). Returns the inner packet to forward."""
        payload_length = (packet[4] << 8) | packet[5]
        if payload_length < 40 or 40 + payload_length > len(packet):
            self.counters["rx_dropped_malformed"] += 1
            return None
        inner = packet[40 : 40 + payload_length]
        if inner[0] >> 4 != 6:
            self.counters["rx_dropped_malformed"] += 1
            return None
        bound_coa = self.lookup(bytes(inner[8:24]))
        if bound_coa is None or bound_coa != packet[8:24]:
            # RFC 6275 10.4.5: the outer source must be the registered care-of address.
            self.counters["rx_dropped_reverse_tunnel_no_binding"] += 1
            return None
        if inner[7] <= 1:
            self.counters["rx_dropped_hop_limit"] += 1
            return None
        self.counters["rx_detunnelled"] += 1
        return inner

    def frame(self, packet: bytes | bytearray | memoryview) -> bytes | None:
        """An Ethernet frame to the default router, or None while it is unresolved."""
        eth = self._eth_header
        return None if eth is None else eth + packet
