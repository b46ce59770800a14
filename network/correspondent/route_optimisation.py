"""The correspondent daemon's route optimisation stage (RFC 6275 9.3), around the sans-IO
`Correspondent`.

Link side: Mobility Header packets (HoTI, CoTI, BU) go to the state machine and never to the
servers; a packet with a Home Address option is delivered as sent from the home address when
a binding (home address, care-of address) exists, else dropped with a Binding Error status 1.
Server side: packets to a bound home address leave to the care-of address with a type 2
Routing Header (one precomputed header per binding). Both sit outside end-to-end ESP: RO runs
before ESP inbound and after ESP outbound, so HAO and RH2 travel in clear around ESP.
"""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv6Address

from netstack.mobility.correspondent import Correspondent
from netstack.wire.errors import ParseError
from netstack.wire.ipv6 import parse_ipv6_packet
from netstack.wire.mh_codec import build_mobility_packet
from netstack.wire.ro_headers import INSERTABLE, home_address_of, strip_home_address

_MH = 135
_DSTOPTS = 60


class CorrespondentRouteOptimisation:
    def __init__(self, address: IPv6Address, counters: Counter[str]) -> None:
        self.correspondent = Correspondent(address)
        self.counters = counters

    def inbound(self, packet: memoryview | bytes, now: float) -> memoryview | bytes | bytearray | None:
        """A packet for this node from the link: the packet for the servers, or None (consumed)."""
        next_header = packet[6]
        if next_header == _MH:
            self._mobility(packet, now)
            return None
        if next_header != _DSTOPTS:
            return packet
        home_address = home_address_of(packet)
        if home_address is None:
            return packet  # other destination options: the kernel decides
        if packet[40] == _MH:
            self._mobility(packet, now)  # a BU from the care-of address
            return None
        binding = self.correspondent.bindings.get(home_address)
        if binding is None or binding.care_of != packet[8:24]:
            self.correspondent.home_address_without_binding(bytes(packet[8:24]), home_address, now)
            return None
        binding.last_used = now
        self.counters["rx_route_optimised"] += 1
        return strip_home_address(packet, home_address)

    def outbound(self, packet: bytes | bytearray, now: float) -> bytes | bytearray:
        """A packet from the servers: with a type 2 Routing Header if its destination is bound."""
        bindings = self.correspondent.bindings
        if not bindings:
            return packet
        binding = bindings.get(bytes(packet[24:40]))
        if binding is None or packet[6] not in INSERTABLE:
            return packet
        binding.last_used = now
        self.counters["tx_route_optimised"] += 1
        return binding.inserter.insert(packet)

    def _mobility(self, packet: memoryview | bytes, now: float) -> None:
        try:
            parsed = parse_ipv6_packet(packet)
        except ParseError as exc:
            self.counters[f"rx_dropped_mh_{exc.reason}"] += 1
            return
        self.correspondent.receive_mobility(parsed, now)

    def packets_to_send(self) -> list[tuple[bytes, IPv6Address]]:
        """(packet, destination) for every message the state machine produced."""
        out = [
            (build_mobility_packet(m.src, m.dst, m.message, home_address=m.home_address,
                                   routing_type2=m.routing_type2), m.dst)
            for m in self.correspondent.messages_to_send()
        ]
        address = self.correspondent.address
        out += [(p.packet(address), p.destination)
                for p in self.correspondent.parameter_problems_to_send()]
        return out
