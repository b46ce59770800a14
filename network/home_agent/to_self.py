"""What the home agent daemon does with a packet addressed to the HA itself (patent: HA 4).

Binding Updates (plain, or in ESP under RFC 3776/4877 transport mode), the reverse tunnel
(IPv6-in-IPv6 or ESP tunnel mode, Fig. 21 / 22) including a node's tunnel nested inside its
mobile router's (claims 21-25), RFC 6275 9.2 answers to bad Mobility Headers, Neighbor
Discovery observed for proxy DAD, and echo. A mixin of `HomeAgentDaemon`
(network/home_agent/daemon.py), which owns the link, the binding cache and the data plane.
"""

from __future__ import annotations

from ipaddress import IPv6Address
from typing import Any

from netstack.mobility.mh_errors import mobility_header_error
from netstack.wire.errors import ParseError
from netstack.wire.icmpv6 import build_icmpv6_packet
from netstack.wire.icmpv6_types import (
    EchoReply,
    EchoRequest,
    NeighborAdvertisement,
    NeighborSolicitation,
)
from netstack.wire.mh import BindingUpdate
from netstack.wire.mh_codec import decode_mobility_packet
from network.home_agent.forwarding import IPPROTO_IPV6
from network.home_agent.ipsec import FORWARD, MOBILITY, TUNNELLED
from network.home_agent.nesting import MAX_NESTING

_MOBILITY_CHAIN = frozenset((0, 43, 60, 135))
_ESP_DEPTH = tuple(f"esp_terminations_depth_{n}" for n in range(MAX_NESTING))
IPPROTO_ESP = 50


class HomeAgentSelfReceive:
    """Receive side for packets to the HA's own address: BUs, reverse tunnels, ND, echo."""

    def _to_self(self, packet: memoryview, src_mac: bytes, now: float, depth: int = 0) -> None:
        """A packet for the HA's own address; `depth` > 0 when it came out of a tunnel
        (nested mobility: a node's tunnel inside its mobile router's, claim 21)."""
        next_header = packet[6]
        if next_header == IPPROTO_IPV6:
            if not self.security.refuse_plain_tunnel():
                self._reverse_tunnel(packet, now, depth)
        elif next_header == IPPROTO_ESP:
            self._on_esp(packet, src_mac, now, depth)
        elif next_header in _MOBILITY_CHAIN:
            self._handle_mobility(packet, src_mac, now)
        elif next_header == 58:
            self._handle_icmp_to_self(packet, now)
        else:
            self.counters["rx_ignored_to_self"] += 1

    def _detunnelled_to_self(self, inner: memoryview | bytes, src_mac: bytes, now: float,
                             depth: int) -> bool:
        """True when a decapsulated packet is itself for the HA and was handled as such."""
        if bytes(inner[24:40]) != self.address.packed:
            return False
        if depth + 1 >= MAX_NESTING:
            self.counters["rx_dropped_nesting_too_deep"] += 1
            return True
        self.counters["rx_nested_detunnelled"] += 1
        self._to_self(memoryview(inner), src_mac, now, depth + 1)
        return True

    def _handle_nd(self, packet: memoryview, src_mac: bytes, now: float) -> None:
        result = self.node.parse(packet)
        if result is None:
            return
        decoded = self.node.handle_icmpv6(packet, src_mac, now)
        del decoded  # ND messages are consumed by NdHost; observe them for proxy DAD too.
        try:
            from netstack.wire.icmpv6 import decode_icmpv6_packet

            message = decode_icmpv6_packet(result)
        except ParseError:
            return
        if isinstance(message, NeighborAdvertisement):
            self.proxy_dad.observe(message.target, advertisement=True, source=result.src)
        elif isinstance(message, NeighborSolicitation):
            self.proxy_dad.observe(message.target, advertisement=False, source=result.src)

    def _on_esp(self, packet: memoryview, src_mac: bytes, now: float, depth: int = 0) -> None:
        """ESP to the HA: a protected BU, or the reverse ESP tunnel (Fig. 21 / 22)."""
        found = self.security.receive_esp(packet, now)
        if found is None:
            return
        self.counters[_ESP_DEPTH[depth]] += 1  # claims 22-25: twice when nested
        kind, plain = found
        if kind == MOBILITY:
            self._handle_mobility(memoryview(plain), src_mac, now, protected=True)
        elif kind == TUNNELLED:
            self._reverse_tunnel(memoryview(plain), now, depth)
        elif kind == FORWARD:
            # Fig. 22: the ESP packet's source must be the care-of address bound to the source.
            if self.home_agent.lookup(plain[8:24]) != bytes(packet[8:24]):
                self.counters["rx_dropped_reverse_tunnel_no_binding"] += 1
                return
            if plain[7] <= 1:
                self.counters["rx_dropped_hop_limit"] += 1
                return
            self.counters["rx_detunnelled"] += 1
            if not self._detunnelled_to_self(plain, src_mac, now, depth):
                self._forward(bytearray(plain), now)

    def _handle_mobility(
        self, packet: memoryview, src_mac: bytes, now: float, protected: bool = False
    ) -> None:
        parsed = self.node.parse(packet)
        if parsed is not None and parsed.upper_protocol == IPPROTO_ESP and not protected:
            self._on_esp(packet, src_mac, now)  # a BU in ESP behind its Home Address option
            return
        if parsed is None or parsed.upper_protocol != 135:
            self.counters["rx_ignored_to_self"] += 1
            return
        try:
            message = decode_mobility_packet(parsed)
        except ParseError as exc:
            self.counters[f"rx_dropped_mh_{exc.reason}"] += 1
            self._answer_bad_mobility_header(parsed, exc, now)
            return
        if not isinstance(message, BindingUpdate):
            self.counters["rx_ignored_mh_type"] += 1
            return
        if parsed.src in self.home_prefix:
            self._on_link_macs[parsed.src] = src_mac
        self.counters["rx_binding_updates"] += 1
        src, home_address = self.hmip_replies.unwrap(parsed.src, parsed.home_address, message)
        self.home_agent.receive_binding_update(
            src, home_address, message, now, protected=protected
        )

    def _answer_bad_mobility_header(self, parsed: Any, error: ParseError, now: float) -> None:
        """RFC 6275 9.2: Binding Error status 2 or ICMP Parameter Problem (rate limited)."""
        reply = mobility_header_error(parsed, error)
        if reply is None:
            return
        if not self._error_limiter.allow(now):
            self.counters["tx_mh_errors_rate_limited"] += 1
            return
        self.counters[reply.counter] += 1
        self._send_from_self(reply.packet(self.address), reply.destination, now)

    def _send_from_self(self, packet: bytes, destination: IPv6Address, now: float) -> None:
        """A packet the HA itself originates: to a registered home address it goes through
        the tunnel like any intercepted packet (10.4.2), else out on the link."""
        care_of_address = self.home_agent.lookup(destination.packed)
        if care_of_address is not None:
            self._intercept(memoryview(packet), care_of_address, now)
        else:
            self.node.send_packet(packet, destination, now)

    def _handle_icmp_to_self(self, packet: memoryview, now: float) -> None:
        result = self.node.handle_icmpv6(packet, b"", now)
        if result is None:
            return
        parsed, message = result
        if isinstance(message, EchoRequest):
            reply = EchoReply(message.identifier, message.sequence, message.data)
            self._send_from_self(
                build_icmpv6_packet(self.address, parsed.src, reply, hop_limit=64), parsed.src, now
            )
