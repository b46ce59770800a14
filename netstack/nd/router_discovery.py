"""Router discovery for NdHost (RFC 4861 6.3): Router Advertisements in, Router
Solicitations out, and what an RA tells the host (hop limit, timers, MTU, on-link prefixes,
SLAAC, the HMIPv6 MAP option of RFC 5380), plus the events that follow from it (movement,
same link after a carrier flap, a new default router).

A mixin of NdHost, like MovementDetection and NeighborResolution: it uses the host's tables,
counters and event queue.
"""

from __future__ import annotations

from ipaddress import IPv6Address

from netstack.nd.addresses import AddressState, lifetime_deadline
from netstack.nd.constants import IPV6_MIN_MTU
from netstack.nd.events import AddressReady, MapDiscovered, RouterChanged
from netstack.nd.options import find_option
from netstack.wire.icmpv6_types import (
    MapOption,
    Mtu,
    PrefixInformation,
    RouterAdvertisement,
    RouterSolicitation,
    SourceLinkLayerAddress,
)

ALL_ROUTERS = IPv6Address("ff02::2")
UNSPECIFIED = IPv6Address("::")


class RouterDiscovery:
    # ---------------------------------------------------------------- RA

    def _receive_router_advertisement(
        self, src: IPv6Address, ra: RouterAdvertisement, now: float
    ) -> None:
        if not src.is_link_local:  # RFC 4861 6.1.2
            self._count("invalid_ra")
            return
        self._count("rx_ra")
        pios = [o for o in ra.options if isinstance(o, PrefixInformation)]
        advertised = tuple(o.prefix for o in pios if not o.prefix.is_link_local)
        if self._is_movement(advertised):
            self._handle_movement(advertised, src, now)
        if self._confirm_link and advertised:
            self._confirm_link = False
            self._report_same_link()
        if ra.router_lifetime > 0:
            self._rs_next = None  # RFC 4861 6.3.7: desist from soliciting
        if ra.cur_hop_limit:
            self.cur_hop_limit = ra.cur_hop_limit
        if ra.reachable_time and ra.reachable_time / 1000 != self.base_reachable_time:
            self.base_reachable_time = ra.reachable_time / 1000
            self.neighbors.reachable_time = self._random_reachable_time()
        if ra.retrans_timer:
            self.neighbors.retrans_timer = ra.retrans_timer / 1000
        self.default_routers.update(src, ra.router_lifetime, now)
        slla = find_option(ra.options, SourceLinkLayerAddress)
        if isinstance(slla, SourceLinkLayerAddress):
            self._apply(self.neighbors.learn(src, slla.address, now, is_router=True), now)
        elif (entry := self.neighbors.get(src)) is not None:
            entry.is_router = True
        mtu = find_option(ra.options, Mtu)
        if isinstance(mtu, Mtu) and IPV6_MIN_MTU <= mtu.mtu <= self.config.link_mtu:
            self.mtu = mtu.mtu
        for pio in pios:
            if pio.prefix.is_link_local:
                continue
            if pio.on_link:
                until = lifetime_deadline(now, pio.valid_lifetime)
                self.prefixes.update(pio.prefix, until, src, now)
            if pio.autonomous and self.config.slaac:
                self._autoconfigure(pio, now)
        for option in ra.options:
            if isinstance(option, MapOption) and self._maps.get(option.map_address) != option:
                self._maps[option.map_address] = option
                self._events.append(MapDiscovered(option, src))

    def _send_router_solicitation(self, now: float) -> None:
        link_local = self.addresses.get(self.link_local)
        if link_local is None or link_local.state is AddressState.TENTATIVE:
            src, options = UNSPECIFIED, ()  # RFC 4861 6.3.7: no SLLA from ::
        elif link_local.state is AddressState.OPTIMISTIC:
            src, options = self.link_local, ()  # RFC 4429 3.3: no SLLA from optimistic
        else:
            src, options = self.link_local, (SourceLinkLayerAddress(self.mac),)
        self._send_nd(src, ALL_ROUTERS, RouterSolicitation(options=options))
        self._rs_sent += 1
        if self._rs_sent < self.config.max_rtr_solicitations:
            self._rs_next = now + self.config.rtr_solicitation_interval
        else:
            self._rs_next = None

    def _report_same_link(self) -> None:
        """No movement after a carrier flap: the care-of address is still ours and usable, so
        say so again (AddressReady), letting the mobile node resume what the outage stopped
        (an outstanding BU, a due refresh) instead of waiting for the next move."""
        entry = self.addresses.get(self.care_of_address) if self.care_of_address else None
        if entry is not None and entry.state is not AddressState.TENTATIVE:
            self._count("same_link_confirmed")
            self._events.append(
                AddressReady(entry.address, entry.prefix, entry.valid_until, entry.preferred_until)
            )

    def _check_router_change(self) -> None:
        router = self.default_router
        entry = self.neighbors.get(router) if router is not None else None
        state = (router, entry.mac if entry is not None else None)
        if state != self._router_state:
            self._router_state = state
            self._events.append(RouterChanged(*state))
