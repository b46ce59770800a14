"""The mobile router's side of virtual network 15 (patent E7: MR 10, mobile network 9; RFC 3963).

With `[nemo] prefixes`, the terminal is a mobile router and `eth1` (the host link) is its
mobile network: this module advertises the prefixes there (netstack.nd.ra_sender, from the
link-local gateway address the host link already answers Neighbor Solicitations for), keeps
the neighbours of the mobile network (learned from their frames and Neighbor Advertisements,
resolved by Neighbor Solicitation otherwise) and moves packets:

- from the mobile network (source in a prefix) into the MR-HA tunnel (`take_outbound()`,
  sent by the agent's send routine 100 with `forwarded=True`, after the hop limit drops);
- out of the tunnel (destination in a prefix) onto the mobile network (`route_inbound()`).

The host's IPv4 applications keep the translated path (table 230) on the same link: frames
this module does not take fall through to HostLink. Counters per prefix show in `status`.
"""

from __future__ import annotations

import time
from collections import Counter
from ipaddress import IPv6Address, IPv6Network
from typing import TYPE_CHECKING, Any

from netstack.mobility.constants import DEFAULT_TIMERS, MobilityTimers
from netstack.mobility.mobile_router import MobileRouter
from netstack.nd.ra_sender import AdvertisedPrefix, RaConfig, RouterAdvertiser
from netstack.runtime.configfile import ConfigError
from netstack.wire.icmpv6 import build_icmpv6_packet, solicited_node_multicast
from netstack.wire.icmpv6_types import NeighborSolicitation, SourceLinkLayerAddress

if TYPE_CHECKING:
    from guest_agent.config import AgentConfig, NemoSection
    from guest_agent.host_link import HostLink

_ETH_IPV6 = b"\x86\xdd"
_RS, _NA = 133, 136
MAX_WAITING = 16  # packets held per neighbour while it is being resolved
RESOLVE_RETRY = 1.0  # seconds between Neighbor Solicitations for the same address


def mobile_router(config: AgentConfig, timers: MobilityTimers = DEFAULT_TIMERS) -> MobileRouter:
    """The agent's Mobile IPv6 unit (25) as a mobile router, from [mobility] and [nemo]."""
    mob = config.mobility
    return MobileRouter(
        mob.home_address,
        mob.home_agent,
        home_prefix=mob.home_prefix,
        mobile_network_prefixes=tuple(config.nemo.prefixes),
        implicit=config.nemo.implicit,
        requested_lifetime=mob.requested_lifetime,
        timers=timers,
        require_protection=config.ipsec.require_protection,
    )


class _Prefix:
    """One mobile network prefix as bytes: the first `length // 8` octets compared at once."""

    def __init__(self, prefix: IPv6Network) -> None:
        self.network = prefix
        self.octets = prefix.prefixlen // 8
        self.head = prefix.network_address.packed[: self.octets]
        bits = prefix.prefixlen % 8
        self.mask = (0xFF << (8 - bits)) & 0xFF if bits else 0
        self.tail = prefix.network_address.packed[self.octets] if bits else 0
        self.counters: Counter[str] = Counter()

    def holds(self, address: bytes | memoryview) -> bool:
        if address[: self.octets] != self.head:
            return False
        return not self.mask or (address[self.octets] & self.mask) == self.tail


class MobileNetwork:
    def __init__(self, section: NemoSection, host_link: HostLink, counters: Counter[str]) -> None:
        self.host_link = host_link
        self.mac = host_link.mac
        self.link_local = host_link.ipv6_gateway
        self.counters = counters
        self.prefixes = [_Prefix(p) for p in section.prefixes]
        self.advertise = section.advertise
        self.advertiser = RouterAdvertiser(
            RaConfig(
                prefixes=tuple(AdvertisedPrefix(p) for p in section.prefixes),
                min_interval=section.ra_min_interval,
                max_interval=section.ra_max_interval,
                mtu=section.mtu,
            ),
            self.mac,
            self.link_local,
        )
        self.neighbours: dict[bytes, bytes] = {}  # address (16 octets) -> MAC
        self._waiting: dict[bytes, list[bytes]] = {}
        self._solicited_at: dict[bytes, float] = {}
        self._outbound: list[bytes] = []
        self._frames: list[bytes] = []

    # ------------------------------------------------------------------ prefixes

    def prefix_of(self, address: bytes | memoryview) -> _Prefix | None:
        for prefix in self.prefixes:
            if prefix.holds(address):
                return prefix
        return None

    def holds(self, address: bytes | memoryview) -> bool:
        return self.prefix_of(address) is not None

    # ------------------------------------------------------------------ router advertisements

    def start(self, now: float) -> None:
        if self.advertise:
            self._send_nd(self.advertiser.start(now))

    def get_timer(self) -> float | None:
        return self.advertiser.next_timer() if self.advertise else None

    def handle_timer(self, now: float) -> None:
        if self.advertise:
            self._send_nd(self.advertiser.handle_timer(now))

    def stop(self, now: float) -> None:
        if self.advertise:
            self._send_nd(self.advertiser.stop(now))

    def _send_nd(self, packets: list[tuple[IPv6Address, bytes]]) -> None:
        frames = []
        for destination, packet in packets:
            mac = self.neighbours.get(destination.packed) if not destination.is_multicast else None
            if mac is None:
                mac = _multicast_mac(destination) if destination.is_multicast else None
            if mac is not None:
                frames.append(mac + self.mac + _ETH_IPV6 + packet)
        if frames:
            self.host_link.link.send_batch(frames)

    # ------------------------------------------------------------------ from the mobile network

    def take(self, frame: memoryview) -> bool:
        """An IPv6 frame from the host link: True when it was ours (RS, NA, a prefix's packet).

        Neighbor Solicitations are left to HostLink (it answers for the gateway address).
        """
        packet = frame[14:]
        if len(packet) < 40:
            return False
        if packet[6] == 58 and len(packet) > 40 and packet[40] in (_RS, _NA):
            if packet[40] == _RS:
                if packet[7] != 255:
                    self.counters["mnet_rx_dropped_nd_hop_limit"] += 1
                elif self.advertise:
                    self._send_nd(self.advertiser.receive_router_solicitation(
                        IPv6Address(bytes(packet[8:24])), time.monotonic()))
            elif len(packet) >= 64 and self.holds(packet[48:64]):
                self._learn(bytes(packet[48:64]), bytes(frame[6:12]))
            return True
        prefix = self.prefix_of(packet[8:24])
        if prefix is None:
            return False
        self._learn(bytes(packet[8:24]), bytes(frame[6:12]))
        if packet[24] == 0xFF or (packet[24] == 0xFE and packet[25] & 0xC0 == 0x80):
            self.counters["mnet_rx_ignored_link_scope"] += 1
            return True
        if self.holds(packet[24:40]):
            self.counters["mnet_rx_ignored_on_link"] += 1  # the neighbours talk directly
            return True
        end = 40 + ((packet[4] << 8) | packet[5])
        if packet[0] >> 4 != 6 or end > len(packet):
            self.counters["mnet_rx_dropped_malformed"] += 1
            return True
        if packet[7] <= 1:
            self.counters["mnet_rx_dropped_hop_limit"] += 1
            return True
        forwarded = bytearray(packet[:end])  # without the Ethernet padding of short frames
        forwarded[7] -= 1
        prefix.counters["packets_out"] += 1
        prefix.counters["bytes_out"] += len(forwarded)
        self._outbound.append(bytes(forwarded))
        return True

    def take_outbound(self) -> list[bytes]:
        out, self._outbound = self._outbound, []
        return out

    # ------------------------------------------------------------------ to the mobile network

    def route_inbound(self, packets: list[memoryview], now: float) -> list[memoryview]:
        """Packets out of the tunnel: those for a prefix go to the mobile network; the rest
        (the home address's) are returned to the receive routine."""
        rest: list[memoryview] = []
        for packet in packets:
            prefix = self.prefix_of(packet[24:40])
            if prefix is None:
                rest.append(packet)
                continue
            if packet[7] <= 1:
                self.counters["mnet_tx_dropped_hop_limit"] += 1
                continue
            forwarded = bytearray(packet)
            forwarded[7] -= 1
            prefix.counters["packets_in"] += 1
            prefix.counters["bytes_in"] += len(forwarded)
            self._to_neighbour(bytes(packet[24:40]), bytes(forwarded), now)
        self.flush()
        return rest

    def _to_neighbour(self, address: bytes, packet: bytes, now: float) -> None:
        mac = self.neighbours.get(address)
        if mac is not None:
            self._frames.append(mac + self.mac + _ETH_IPV6 + packet)
            return
        waiting = self._waiting.setdefault(address, [])
        if len(waiting) < MAX_WAITING:
            waiting.append(packet)
        else:
            self.counters["mnet_tx_dropped_unresolved"] += 1
        last = self._solicited_at.get(address)
        if last is None or now - last >= RESOLVE_RETRY:
            self._solicited_at[address] = now
            self._solicit(IPv6Address(address))

    def _solicit(self, target: IPv6Address) -> None:
        group = solicited_node_multicast(target)
        ns = NeighborSolicitation(target=target, options=(SourceLinkLayerAddress(self.mac),))
        packet = build_icmpv6_packet(self.link_local, group, ns)
        self.counters["mnet_ns_sent"] += 1
        self._frames.append(_multicast_mac(group) + self.mac + _ETH_IPV6 + packet)

    def _learn(self, address: bytes, mac: bytes) -> None:
        if self.neighbours.get(address) != mac:
            self.neighbours[address] = mac
            self.counters["mnet_neighbours_learned"] += 1
        waiting = self._waiting.pop(address, None)
        self._solicited_at.pop(address, None)
        if waiting:
            self._frames += [mac + self.mac + _ETH_IPV6 + p for p in waiting]

    def flush(self) -> None:
        if self._frames:
            self.counters["mnet_tx_packets"] += len(self._frames)
            self.host_link.link.send_batch(self._frames)
            self._frames = []

    # ------------------------------------------------------------------ status

    def status(self, router: MobileRouter) -> dict[str, Any]:
        rows = router.prefix_rows()
        for row, prefix in zip(rows, self.prefixes, strict=True):
            row["counters"] = dict(prefix.counters)
        return {
            "mobile_network_prefixes": rows,
            "mobile_network": {
                "interface_mac": ":".join(f"{b:02x}" for b in self.mac),
                "router_address": str(self.link_local),
                "neighbours": sorted(str(IPv6Address(a)) for a in self.neighbours),
                "router_advertisements": dict(self.advertiser.counters),
            },
        }


def _multicast_mac(group: IPv6Address) -> bytes:
    return b"\x33\x33" + group.packed[12:]


def attach_mobile_network(agent: Any) -> MobileNetwork | None:
    """The GuestAgent's mobile network when [nemo] lists prefixes (else None); the agent
    built a MobileRouter (`mobile_router()`) in place of its MobileNode.

    Hooks the mobile network into the host link (frames in) and the data plane (tunnelled
    packets for the prefixes accepted).
    """
    config = agent.config
    if not config.nemo.prefixes:
        return None
    if agent.host_side is None:
        raise ConfigError("[nemo] prefixes need the host link ([host_link] interface)")
    network = MobileNetwork(config.nemo, agent.host_side.link, agent.counters)
    agent.host_side.link.mobile_network = network
    agent.dataplane.mobile_network = network
    agent.security.mobile_network = network  # Fig. 22: ESP straight around the prefix's packets
    return network
