"""IPsec at the home agent: the MN-HA security processor (RFC 3776 / RFC 4877, patent Fig. 13,
21, 22).

- signalling: a BU arriving in ESP transport mode (Home Address option outside ESP) is
  decrypted and checked against the SPD, then handed to the HomeAgent as protected; BAs leave
  in ESP transport mode (type 2 Routing header outside ESP).
- tunnel: packets intercepted for a home address leave in ESP tunnel mode HA -> CoA, around
  the IPv6-in-IPv6 packet (Fig. 21, `tunnel = "esp-tunnel"`) or directly around the packet
  (Fig. 22, `tunnel = "esp-tunnel-only"`); the reverse direction is decrypted the same way.

Tunnel SAs are bound to a home address: in the key file their care-of end holds the home
address. When a binding is created or updated, `binding_updated` moves that end to the new
care-of address (RFC 4877 4.1: the HA updates the tunnel SA endpoints on a binding change),
so the SAs, their sequence numbers and replay windows survive a handover. Fig. 21 tunnel
policies whose care-of side names the home address (`home/128`, as a key file for several mobile
nodes has them, e.g. a mobile router and a node behind it) follow the binding the same way,
so the SPD picks each node's tunnel SA by its care-of address.

Mismatches (plain IPv6-in-IPv6 while ESP is required, ESP for an unknown SA or without any
IPsec configured, the other tunnel shape inside ESP) are dropped and counted under `mismatch`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

from netstack.ipsec._ip6chain import walk
from netstack.ipsec.mobility_config import (
    IPPROTO_IPV6,
    IPPROTO_MH,
    TUNNEL_ESP,
    TUNNEL_ESP_ONLY,
    MobilityIpsecSection,
    MobilityLayerSecurity,
    upper_protocol,
)
from netstack.ipsec.modes import esp_spi
from netstack.ipsec.processor import SecurityProcessor
from netstack.ipsec.sa import TUNNEL, SecurityAssociation
from netstack.ipsec.spd import INBOUND, OUTBOUND
from netstack.wire.errors import ParseError

MOBILITY = "mobility"  # a Mobility Header message (BU) that was in ESP transport mode
TUNNELLED = "tunnel"  # an IPv6-in-IPv6 packet CoA -> HA (Fig. 21)
FORWARD = "forward"  # a packet of the home address to forward (Fig. 22)


@dataclass
class HomeAgentIpsecSection(MobilityIpsecSection):
    """`[ipsec]` of ha.toml (see MobilityIpsecSection). `nested_key_file`: the SAs of nodes
    behind mobile routers, run by a second, independent processor (nesting.py)."""

    nested_key_file: Path | None = None


class HomeAgentSecurity(MobilityLayerSecurity):
    def __init__(
        self,
        section: HomeAgentIpsecSection,
        *,
        address: IPv6Address,
        now: float | None = None,
        processor: SecurityProcessor | None = None,
    ) -> None:
        super().__init__(section, processor=processor, now=now)
        self.address = address.packed
        # home address -> tunnel SAs whose care-of end it stands for (see module docstring)
        self._tunnel_sas: dict[IPv6Address, list[tuple[str, SecurityAssociation]]] = {}
        if self.mobility is not None:
            sad = self.mobility.sad
            for sa in sad:
                if sa.mode != TUNNEL:
                    continue
                direction = sad.direction(sa.name)
                home = sa.dst if direction == OUTBOUND else sa.src
                if home is not None:
                    self._tunnel_sas.setdefault(home, []).append((direction, sa))
        # home address -> names of the tunnel policies whose care-of side is that home address
        self._tunnel_policies: dict[IPv6Address, list[str]] = {}
        if self.mobility is not None:
            for home, sas in self._tunnel_sas.items():
                names = {sa.name for _direction, sa in sas}
                host = IPv6Network(home)
                for policy in self.mobility.spd:
                    side = policy.selector.dst if policy.direction == OUTBOUND else policy.selector.src
                    # Fig. 21 only: its selectors see the IPv6-in-IPv6 packet (CoA <-> HA);
                    # Fig. 22 selectors name the home address for real.
                    if policy.sa in names and side == host and policy.selector.protocol == IPPROTO_IPV6:
                        self._tunnel_policies.setdefault(home, []).append(policy.name)

    @property
    def processor(self) -> SecurityProcessor | None:
        """The MN-HA processor (the HA has only this one)."""
        return self.mobility

    def binding_updated(self, home_address: IPv6Address, care_of_address: IPv6Address) -> None:
        for direction, sa in self._tunnel_sas.get(home_address, ()):
            if direction == OUTBOUND:
                sa.dst = care_of_address
            elif direction == INBOUND:
                sa.src = care_of_address
        names = self._tunnel_policies.get(home_address)
        if names and self.mobility is not None:
            spd = self.mobility.spd
            policies = {p.name: p for p in spd}
            host = IPv6Network(care_of_address)
            for name in names:
                policy = policies[name]
                side = "dst" if policy.direction == OUTBOUND else "src"
                spd.remove(name)
                spd.add(replace(policy, selector=replace(policy.selector, **{side: host})))

    # ------------------------------------------------------------------ outbound

    def seal_tunnel(self, encapsulated: bytes, inner: bytes | bytearray, now: float) -> bytes | None:
        """Fig. 21: ESP around the IPv6-in-IPv6 packet; Fig. 22: ESP around the inner packet."""
        assert self.mobility is not None
        packet = encapsulated if self.tunnel_mode == TUNNEL_ESP else inner
        return self.mobility.outbound(packet, now)

    # ------------------------------------------------------------------ inbound

    def receive_esp(self, packet: bytes | memoryview, now: float) -> tuple[str, bytes] | None:
        """ESP addressed to the HA: (MOBILITY, BU packet), (TUNNELLED, IPv6-in-IPv6 packet) or
        (FORWARD, the home address's packet); None when dropped (counted)."""
        processor = self.mobility
        if processor is None:
            self.mismatch["esp_without_ipsec_configured"] += 1
            return None
        try:
            spi = esp_spi(packet, walk(packet))
        except ParseError as exc:
            self.mismatch[f"esp_{exc.reason}"] += 1
            return None
        if processor.sad.inbound(spi) is None:
            self.mismatch["esp_unknown_spi"] += 1
            return None
        result = processor.inbound(packet, now)
        if result is None:
            return None
        if result[0] >> 4 != 6:
            self.mismatch["tunnel_inner_not_ipv6"] += 1
            return None
        if upper_protocol(result) == IPPROTO_MH:
            return MOBILITY, result
        if result[6] == IPPROTO_IPV6 and result[24:40] == self.address:
            if self.tunnel_mode != TUNNEL_ESP:
                self.mismatch["ip6ip6_inside_esp_while_tunnel_only"] += 1
                return None
            return TUNNELLED, result
        if self.tunnel_mode != TUNNEL_ESP_ONLY:
            self.mismatch["inner_packet_inside_esp_while_ip6ip6_expected"] += 1
            return None
        return FORWARD, result

    def as_dict(self, now: float) -> dict[str, Any]:
        return self.mobility_status(now)
