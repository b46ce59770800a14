"""Nested mobility at the home agent (patent E7, Fig. 34-36, claims 20-28; RFC 3963).

A mobile node (vmn) whose care-of address lies in a prefix a mobile router registered is
reached through two tunnels: the HA encapsulates to the node's care-of address, looks that
address up again (it matches the mobile router's prefix) and encapsulates once more, to the
router's care-of address (claim 21). With IPsec on both tunnels each layer is sealed by ESP,
and on the way back the HA terminates ESP twice on one packet (claims 22-25).

`SecurityLayers` holds the HA's MN-HA security processors: the one of `[ipsec] key_file` and,
with `[ipsec] nested_key_file`, a second, independent one (its own SAD, SPD, counters and
replay windows) for nodes behind mobile routers, as the terminal runs two processors for its
end-to-end and tunnel ESP. Inbound ESP goes to the processor that knows its SPI; outbound, a
tunnel layer goes to the processor whose node is bound to the layer's care-of address and a
BA to the processor of its home address. With one processor it behaves as that processor.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv6Address
from typing import Any

from netstack.ipsec._ip6chain import walk
from netstack.ipsec.modes import esp_spi
from netstack.ipsec.processor import SecurityProcessor
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.wire.errors import ParseError
from network.home_agent.forwarding import HomeAgentDataPlane
from network.home_agent.ipsec import HomeAgentIpsecSection, HomeAgentSecurity

MAX_NESTING = 3  # tunnel layers the HA builds or takes apart for one packet


class SecurityLayers:
    """One or two HomeAgentSecurity processors, chosen per packet (see module docstring)."""

    def __init__(self, section: HomeAgentIpsecSection, *, address: IPv6Address) -> None:
        self.address = address
        self.primary = HomeAgentSecurity(section, address=address)
        self.layers = [self.primary]
        if section.nested_key_file is not None:
            nested = HomeAgentSecurity(
                replace(section, key_file=section.nested_key_file, nested_key_file=None),
                address=address,
            )
            if nested.mobility is not None:
                nested.mobility.name = "mobility-nested"  # its own rows in the ESP state file
            self.layers.append(nested)
        self._by_home: dict[IPv6Address, HomeAgentSecurity] = {}
        for layer in self.layers:
            for sa in layer.mobility.sad if layer.mobility is not None else ():
                for end in (sa.src, sa.dst):
                    if end is not None and end != address:
                        self._by_home.setdefault(end, layer)
        self._by_care_of: dict[bytes, HomeAgentSecurity] = {}

    # ------------------------------------------------------------------ what the daemon asks

    @property
    def esp_tunnel(self) -> bool:
        return self.primary.esp_tunnel

    @property
    def processors(self) -> list[SecurityProcessor | None]:
        return [layer.mobility for layer in self.layers]

    def refuse_plain_tunnel(self) -> bool:
        return self.primary.refuse_plain_tunnel()

    def binding_updated(self, home_address: IPv6Address, care_of_address: IPv6Address) -> None:
        for layer in self.layers:
            layer.binding_updated(home_address, care_of_address)
        self._by_care_of[care_of_address.packed] = self._by_home.get(home_address, self.primary)

    def receive_esp(self, packet: bytes | memoryview, now: float) -> tuple[str, bytes] | None:
        if len(self.layers) == 1:
            return self.primary.receive_esp(packet, now)
        try:
            spi = esp_spi(packet, walk(packet))
        except ParseError:
            return self.primary.receive_esp(packet, now)  # counts the reason
        for layer in self.layers:
            if layer.mobility is not None and layer.mobility.sad.inbound(spi) is not None:
                return layer.receive_esp(packet, now)
        return self.primary.receive_esp(packet, now)  # counts the unknown SPI

    def seal_tunnel(self, encapsulated: bytes, inner: bytes | bytearray, now: float) -> bytes | None:
        layer = self._by_care_of.get(bytes(encapsulated[24:40]), self.primary)
        return layer.seal_tunnel(encapsulated, inner, now)

    def seal_mobility_message(self, message: OutgoingMobilityMessage, now: float) -> bytes | None:
        home = message.routing_type2 or message.dst
        return self._by_home.get(home, self.primary).seal_mobility_message(message, now)

    def as_dict(self, now: float) -> dict[str, Any]:
        out = self.primary.as_dict(now)
        if len(self.layers) > 1:
            out["nested"] = self.layers[1].as_dict(now)
        return out


class NestedTunnels:
    """HA -> CoA encapsulation, repeated while the care-of address is itself routed into a
    mobile router's tunnel (claim 21); every layer sealed when ESP protects the tunnels."""

    def __init__(
        self,
        dataplane: HomeAgentDataPlane,
        lookup: Callable[[bytes], bytes | None],
        security: SecurityLayers,
        counters: Counter[str],
        packet_too_big: Callable[[memoryview, float, int], None],
    ) -> None:
        self.dataplane = dataplane
        self.lookup = lookup
        self.security = security
        self.counters = counters
        self.packet_too_big = packet_too_big

    def encapsulate(
        self, packet: memoryview, care_of_address: bytes, now: float
    ) -> tuple[bytes | None, bytes]:
        """(the packet to send or None, the care-of address of its outermost layer)."""
        outer = self._layer(packet, care_of_address, now, packet)
        for _ in range(MAX_NESTING - 1):
            if outer is None:
                break
            outer_coa = self.lookup(care_of_address)
            if outer_coa is None or outer_coa == care_of_address:
                break
            care_of_address = outer_coa
            self.counters["tx_nested_tunnelled"] += 1
            outer = self._layer(memoryview(outer), care_of_address, now, packet)
        return outer, care_of_address

    def _layer(
        self, packet: memoryview, care_of_address: bytes, now: float, original: memoryview
    ) -> bytes | None:
        """One tunnel layer HA -> CoA (ESP around it when configured); a Packet Too Big goes
        to the original packet's source when the result would not fit the link."""
        dataplane = self.dataplane
        too_big_before = dataplane.counters["tunnel_packet_too_big"]
        outer = dataplane.intercept(packet, care_of_address)
        if outer is None:
            if dataplane.counters["tunnel_packet_too_big"] > too_big_before:
                self.packet_too_big(original, now, len(packet) - len(original) + 40)
            return None
        if self.security.esp_tunnel:
            sealed = self.security.seal_tunnel(outer, outer[40:], now)
            if sealed is None:
                self.counters["tx_dropped_ipsec"] += 1
                return None
            if len(sealed) > dataplane.link_mtu:
                self.counters["tunnel_packet_too_big"] += 1
                self.packet_too_big(original, now, len(sealed) - len(original))
                return None
            outer = sealed
        return outer
