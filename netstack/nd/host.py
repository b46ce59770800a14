"""NdHost: sans-IO Neighbor Discovery (RFC 4861), SLAAC and DAD (RFC 4862, RFC 4429) and
Mobile IPv6 movement detection (RFC 6275 11.5.1) for one link.

aioquic shape: inputs carry `now`, outputs are read with `frames_to_send()`, `next_event()`
and `get_timer()`. No sockets, no clock, randomness from an injectable `random.Random`.
"""

from __future__ import annotations

import math
import random
from collections import deque
from ipaddress import IPv6Address, IPv6Network

from netstack.nd.addresses import (
    LINK_LOCAL_PREFIX,
    AddressEntry,
    AddressOrigin,
    AddressState,
    link_local_address,
)
from netstack.nd.autoconf import AddressAutoconfiguration
from netstack.nd.config import NdConfig
from netstack.nd.constants import MAX_RANDOM_FACTOR, MIN_RANDOM_FACTOR, ND_HOP_LIMIT
from netstack.nd.events import (
    AddressExpired,
    NdEvent,
)
from netstack.nd.movement import MovementDetection
from netstack.nd.neighbor_cache import (
    NeighborCache,
    NeighborState,
    Solicit,
)
from netstack.nd.resolution import NeighborResolution
from netstack.nd.router_discovery import RouterDiscovery
from netstack.nd.routers import DefaultRouterList, PrefixList
from netstack.wire.ethernet import mac_to_str, multicast_mac
from netstack.wire.icmpv6 import build_icmpv6_packet
from netstack.wire.icmpv6_types import (
    ICMPv6Message,
    MapOption,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterAdvertisement,
    RouterSolicitation,
    TargetLinkLayerAddress,
)

ALL_NODES = IPv6Address("ff02::1")




class NdHost(AddressAutoconfiguration, NeighborResolution, MovementDetection,
             RouterDiscovery):
    """Neighbor Discovery for one link the node owns (one MAC)."""

    def __init__(
        self, mac: bytes, *, config: NdConfig | None = None, rng: random.Random | None = None
    ) -> None:
        if len(mac) != 6:
            raise ValueError("an Ethernet MAC is 6 octets")
        self.mac = bytes(mac)
        self.config = config if config is not None else NdConfig()
        self._rng = rng if rng is not None else random.Random()
        self.link_local = link_local_address(self.mac)
        self.counters: dict[str, int] = {}
        self.addresses: dict[IPv6Address, AddressEntry] = {}
        self.default_routers = DefaultRouterList()
        self.prefixes = PrefixList()
        self.neighbors = NeighborCache(self.config, self.counters)
        self.proxies: set[IPv6Address] = set()
        self.mtu = self.config.link_mtu
        self.cur_hop_limit = 64
        self.base_reachable_time = self.config.reachable_time
        self.neighbors.reachable_time = self._random_reachable_time()
        self.link_is_up = False
        self._attached_before = False
        # After a re-attachment, the first RA with prefixes tells whether we are still on the
        # same link (RFC 6275 11.5.1); if so the care-of address is reported again.
        self._confirm_link = False
        self.care_of_address: IPv6Address | None = None  # the SLAAC address of this link
        self._rs_sent = 0
        self._rs_next: float | None = None
        self._router_state: tuple[IPv6Address | None, bytes | None] = (None, None)
        self._maps: dict[IPv6Address, MapOption] = {}
        self._events: deque[NdEvent] = deque()
        self._frames: list[tuple[bytes, bytes]] = []
        # Address resolutions that had no usable NS source yet (RFC 4429 3.3), by target.
        self._deferred_solicits: dict[IPv6Address, Solicit] = {}
        # RFC 6275 11.5.5: a mobile node returning home may resolve its home agent with an
        # NS from :: (multicast, no SLLAO) before any address of its own is usable.
        self.unspecified_solicit_targets: set[IPv6Address] = set()
        self._solicited_from_unspecified: set[IPv6Address] = set()  # answer awaited

    # ================================================================ outputs

    def frames_to_send(self) -> list[tuple[bytes, bytes]]:
        """(destination MAC, IPv6 packet) pairs, in order; the caller adds the Ethernet header."""
        frames, self._frames = self._frames, []
        return frames

    def next_event(self) -> NdEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        deadlines: list[float] = []
        if self._rs_next is not None:
            deadlines.append(self._rs_next)
        for entry in self.addresses.values():
            if entry.dad_next is not None:
                deadlines.append(entry.dad_next)
            if entry.state is AddressState.PREFERRED and not math.isinf(entry.preferred_until):
                deadlines.append(entry.preferred_until)
            if not math.isinf(entry.valid_until):
                deadlines.append(entry.valid_until)
        for deadline in (
            self.default_routers.next_expiry(),
            self.prefixes.next_expiry(),
            self.neighbors.next_timer(),
        ):
            if deadline is not None:
                deadlines.append(deadline)
        return min(deadlines, default=None)

    def owns(self, addr: IPv6Address) -> bool:
        """A usable address of ours (optimistic counts: RFC 4429 lets it be used)."""
        entry = self.addresses.get(addr)
        return entry is not None and entry.usable

    def is_proxied(self, addr: IPv6Address) -> bool:
        return addr in self.proxies

    @property
    def default_router(self) -> IPv6Address | None:
        """RFC 4861 6.3.6: the first router not known to be unreachable, else the first."""
        routers = list(self.default_routers)
        for router in routers:
            entry = self.neighbors.get(router)
            if entry is None or entry.state is not NeighborState.INCOMPLETE:
                return router
        return routers[0] if routers else None

    def as_dict(self) -> dict[str, object]:
        return {
            "mac": mac_to_str(self.mac),
            "link_up": self.link_is_up,
            "mtu": self.mtu,
            "care_of_address": None if self.care_of_address is None else str(self.care_of_address),
            "default_router": None if self.default_router is None else str(self.default_router),
            "addresses": [e.as_dict() for e in self.addresses.values()],
            "default_routers": [e.as_dict() for e in self.default_routers.entries.values()],
            "prefixes": [e.as_dict() for e in self.prefixes.entries.values()],
            "neighbors": self.neighbors.as_list(),
            "proxies": sorted(str(a) for a in self.proxies),
            "counters": dict(self.counters),
        }

    # ================================================================ link events

    def link_up(self, now: float) -> None:
        """Link (re)attached: form the link-local address, (re)run DAD, solicit routers
        (RFC 4861 6.3.7, RFC 6275 11.5.1: after a link change, re-solicit at once)."""
        self.link_is_up = True
        if self.link_local not in self.addresses:
            self._add_address(
                self.link_local, LINK_LOCAL_PREFIX, AddressOrigin.LINK_LOCAL, math.inf, math.inf, now
            )
        for entry in list(self.addresses.values()):
            if self._attached_before and entry.dad_enabled and not entry.under_dad:
                # RFC 4862 5.4: DAD again after re-attachment; keep autoconfigured
                # addresses usable meanwhile when optimistic DAD is on (RFC 4429).
                entry.state = self._dad_state(entry.origin)
            if entry.under_dad and entry.dad_next is None:
                self._start_dad(entry, now)
        self._confirm_link = self._attached_before
        self._attached_before = True
        self.neighbors.mark_all_stale()
        self._rs_sent = 0
        delay = self.config.max_rtr_solicitation_delay
        self._rs_next = now + (self._rng.uniform(0.0, delay) if delay > 0 else 0.0)
        if self._rs_next <= now:
            self._send_router_solicitation(now)

    def link_down(self, now: float) -> None:
        """Link lost: stop soliciting, pause DAD, drop packets waiting for resolution."""
        self.link_is_up = False
        self._rs_next = None
        for entry in self.addresses.values():
            if entry.under_dad:
                entry.dad_next = None
                entry.dad_probes_sent = 0
        for entry in list(self.neighbors.entries.values()):
            if entry.state is NeighborState.INCOMPLETE:
                self.neighbors.remove(entry.address)

    # ================================================================ configuration

    def add_static_address(
        self, addr: IPv6Address, prefixlen: int, now: float, dad: bool = True
    ) -> None:
        prefix = IPv6Network((addr, prefixlen), strict=False)
        entry = self._add_address(
            addr, prefix, AddressOrigin.STATIC, math.inf, math.inf, now, run_dad=dad
        )
        if entry is not None and prefixlen < 128:
            self.prefixes.add_static(prefix)

    def remove_address(self, addr: IPv6Address) -> None:
        entry = self.addresses.pop(addr, None)
        if (
            entry is not None
            and entry.origin is AddressOrigin.STATIC
            and not any(e.prefix == entry.prefix for e in self.addresses.values())
        ):
            self.prefixes.remove(entry.prefix)
        if addr == self.care_of_address:
            self.care_of_address = None

    def add_proxy(self, addr: IPv6Address, now: float) -> None:
        """Answer NS for addr with our MAC (e.g. a home agent for an away mobile node,
        RFC 6275 10.4.1), announcing it with an unsolicited override NA."""
        self.proxies.add(addr)
        self.announce(addr, now)

    def remove_proxy(self, addr: IPv6Address) -> None:
        self.proxies.discard(addr)

    def set_default_router(self, addr: IPv6Address) -> None:
        """A static gateway for links without RAs."""
        self.default_routers.add_static(addr)
        self._check_router_change()

    def confirm_reachable(self, addr: IPv6Address, now: float) -> None:
        self.neighbors.confirm(addr, now)

    def announce(self, addr: IPv6Address, now: float) -> None:
        """Unsolicited NA with the Override flag to all-nodes (RFC 4861 7.2.6)."""
        entry = self.addresses.get(addr)
        src = addr if entry is not None and entry.state in (
            AddressState.PREFERRED,
            AddressState.DEPRECATED,
        ) else self.link_local
        self._send_nd(
            src,
            ALL_NODES,
            NeighborAdvertisement(
                target=addr,
                router=self.config.is_router and addr not in self.proxies,  # 10.4.1: R = 0
                solicited=False,
                override=True,
                options=(TargetLinkLayerAddress(self.mac),),
            ),
        )

    # ================================================================ data path

    def send(self, packet: bytes, dst: IPv6Address, now: float) -> None:
        """Queue an IPv6 packet for dst: multicast goes straight out, unicast to the next hop
        (dst when on-link, else the default router) once its link-layer address is known."""
        if not self.link_is_up:
            self._count("tx_dropped_link_down")
            return
        if dst.is_multicast:
            self._frames.append((multicast_mac(dst), bytes(packet)))
            return
        next_hop = self.next_hop(dst)
        if next_hop is None:
            self._count("no_route")
            return
        next_hop = self._avoid_resolution_from_optimistic(packet, next_hop)
        self._apply(self.neighbors.send(next_hop, bytes(packet), now), now)

    def _avoid_resolution_from_optimistic(
        self, packet: bytes, next_hop: IPv6Address
    ) -> IPv6Address:
        """RFC 4429 3.3: a packet from an optimistic address must not trigger address
        resolution; it goes to a default router (which may redirect) instead."""
        source = self.addresses.get(IPv6Address(bytes(packet[8:24]))) if len(packet) >= 40 else None
        if source is None or source.state is not AddressState.OPTIMISTIC:
            return next_hop
        neighbor = self.neighbors.get(next_hop)
        router = self.default_router
        if (neighbor is None or neighbor.state is NeighborState.INCOMPLETE) and router is not None:
            self._count("optimistic_via_router")
            return router
        return next_hop

    def next_hop(self, dst: IPv6Address) -> IPv6Address | None:
        """RFC 4861 5.2 next-hop determination."""
        if dst.is_link_local or self.prefixes.is_on_link(dst):
            return dst
        return self.default_router

    # ================================================================ receive

    def receive(
        self,
        src: IPv6Address,
        dst: IPv6Address,
        hop_limit: int,
        message: ICMPv6Message,
        src_mac: bytes,
        now: float,
    ) -> None:
        """An ICMPv6 message received on this link. Only RS/RA/NS/NA matter."""
        if not isinstance(
            message,
            RouterSolicitation | RouterAdvertisement | NeighborSolicitation | NeighborAdvertisement,
        ):
            return
        if bytes(src_mac) == self.mac:
            self._count("nd_own_frame")  # our own multicast reflected back
            return
        if hop_limit != ND_HOP_LIMIT:
            # RFC 4861 6.1 / 7.1: ND from off-link (hop limit decremented) is discarded.
            self._count("nd_invalid_hop_limit")
            return
        if isinstance(message, RouterAdvertisement):
            self._receive_router_advertisement(src, message, now)
        elif isinstance(message, NeighborSolicitation):
            self._receive_neighbor_solicitation(src, dst, message, bytes(src_mac), now)
        elif isinstance(message, NeighborAdvertisement):
            self._receive_neighbor_advertisement(dst, message, now)
        else:
            self._count("rx_rs_ignored")  # hosts do not answer RS (RFC 4861 6.2.6)
        self._check_router_change()

    # ================================================================ timers

    def handle_timer(self, now: float) -> None:
        for entry in list(self.addresses.values()):
            if entry.dad_next is not None and entry.dad_next <= now:
                self._dad_step(entry, now)
            if entry.valid_until <= now:
                del self.addresses[entry.address]
                if entry.address == self.care_of_address:
                    self.care_of_address = None
                self._events.append(AddressExpired(entry.address))
            elif entry.state is AddressState.PREFERRED and entry.preferred_until <= now:
                entry.state = AddressState.DEPRECATED
        # after DAD steps, so an RS sent now can already use a just-confirmed link-local
        if self._rs_next is not None and self._rs_next <= now:
            self._send_router_solicitation(now)
        if self.default_routers.expire(now):
            self._count("router_expired")
        self.prefixes.expire(now)
        self._apply(self.neighbors.handle_timer(now), now)
        self._check_router_change()

    # ================================================================ internals

    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def _random_reachable_time(self) -> float:
        if not self.config.randomize_reachable_time:
            return self.base_reachable_time
        return self.base_reachable_time * self._rng.uniform(MIN_RANDOM_FACTOR, MAX_RANDOM_FACTOR)

    def _send_nd(
        self,
        src: IPv6Address,
        dst: IPv6Address,
        message: ICMPv6Message,
        *,
        dst_mac: bytes | None = None,
    ) -> None:
        if not self.link_is_up:
            return
        packet = build_icmpv6_packet(src, dst, message, hop_limit=ND_HOP_LIMIT)
        self._frames.append((dst_mac if dst_mac is not None else multicast_mac(dst), packet))
        self._count("tx_" + type(message).__name__)
