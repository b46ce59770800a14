"""Neighbour resolution and answering for NdHost (RFC 4861 7.2, 7.2.4; proxy ND RFC 6275 10.4.1).

A mixin of NdHost: it works on the host's neighbour cache, addresses and proxies.
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

from netstack.nd.addresses import AddressState
from netstack.nd.neighbor_cache import (
    NeighborAction,
    NeighborState,
    Solicit,
    Transmit,
)
from netstack.nd.options import find_option
from netstack.wire.ethernet import multicast_mac
from netstack.wire.icmpv6 import solicited_node_multicast
from netstack.wire.icmpv6_types import (
    NeighborAdvertisement,
    NeighborSolicitation,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
)

ALL_NODES = IPv6Address("ff02::1")
UNSPECIFIED = IPv6Address("::")
_SOLICITED_NODE_NET = IPv6Network("ff02::1:ff00:0/104")


class NeighborResolution:
    """Receive NS/NA, answer for own and proxied addresses, send NS (never from an optimistic
    address, RFC 4429 3.3: resolution waits for DAD instead)."""

    def _receive_neighbor_solicitation(
        self,
        src: IPv6Address,
        dst: IPv6Address,
        ns: NeighborSolicitation,
        src_mac: bytes,
        now: float,
    ) -> None:
        slla = find_option(ns.options, SourceLinkLayerAddress)
        from_dad = src == UNSPECIFIED
        # RFC 4861 7.1.1 validity checks
        if ns.target.is_multicast or (
            from_dad and (dst not in _SOLICITED_NODE_NET or slla is not None)
        ):
            self._count("invalid_ns")
            return
        self._count("rx_ns")
        target = ns.target
        entry = self.addresses.get(target)
        if entry is not None and entry.under_dad:
            if from_dad:
                # RFC 4862 5.4.3: another node is doing DAD for our tentative address.
                self._address_duplicate(entry)
            # otherwise RFC 4862 5.4.3: NS for a tentative address is silently discarded;
            # an optimistic address is answered without override (RFC 4429 3.3).
            elif entry.state is AddressState.OPTIMISTIC:
                self._learn_from_solicitation(src, slla, now)
                self._answer(src, target, target, slla, src_mac, override=False)
            return
        proxied = target in self.proxies
        if entry is None and not proxied:
            return
        if not from_dad:
            self._learn_from_solicitation(src, slla, now)
        na_src = target if entry is not None else self.link_local
        # RFC 4861 7.2.4: a proxy answer must not override the real owner's entry.
        self._answer(src, target, na_src, slla, src_mac, override=entry is not None)

    def _learn_from_solicitation(self, src: IPv6Address, slla: object | None, now: float) -> None:
        if isinstance(slla, SourceLinkLayerAddress):
            self._apply(self.neighbors.learn(src, slla.address, now), now)

    def _answer(
        self,
        solicitor: IPv6Address,
        target: IPv6Address,
        na_src: IPv6Address,
        slla: object | None,
        src_mac: bytes,
        *,
        override: bool,
    ) -> None:
        solicited = solicitor != UNSPECIFIED
        dst = solicitor if solicited else ALL_NODES  # DAD probes are answered to all-nodes
        if solicited:
            dst_mac = slla.address if isinstance(slla, SourceLinkLayerAddress) else src_mac
        else:
            dst_mac = multicast_mac(ALL_NODES)
        self._send_nd(
            na_src,
            dst,
            NeighborAdvertisement(
                target=target,
                # a proxied address is a mobile node's, not the router's (RFC 6275 10.4.1)
                router=self.config.is_router and target not in self.proxies,
                solicited=solicited,
                override=override,
                options=(TargetLinkLayerAddress(self.mac),),
            ),
            dst_mac=dst_mac,
        )

    def _receive_neighbor_advertisement(
        self, dst: IPv6Address, na: NeighborAdvertisement, now: float
    ) -> None:
        if na.target.is_multicast or (dst.is_multicast and na.solicited):  # RFC 4861 7.1.2
            self._count("invalid_na")
            return
        self._count("rx_na")
        entry = self.addresses.get(na.target)
        if entry is not None:
            if entry.under_dad:
                self._address_duplicate(entry)  # RFC 4862 5.4.4
            else:
                self._count("address_conflict")
            return
        tlla = find_option(na.options, TargetLinkLayerAddress)
        actions, router_cleared = self.neighbors.advertisement(
            na.target,
            tlla.address if isinstance(tlla, TargetLinkLayerAddress) else None,
            solicited=na.solicited,
            override=na.override,
            router=na.router,
            now=now,
        )
        if router_cleared:
            self.default_routers.remove(na.target)  # RFC 4861 7.2.5: no longer a router
        self._apply(actions, now)

    def _send_deferred_solicits(self, now: float) -> None:
        """DAD just gave us a usable NS source: resolve what waited for one, with full retries."""
        deferred, self._deferred_solicits = self._deferred_solicits, {}
        for target, action in deferred.items():
            neighbor = self.neighbors.get(target)
            if neighbor is None or neighbor.state is not NeighborState.INCOMPLETE:
                continue
            neighbor.probes_sent = 1
            neighbor.timer_at = now + self.neighbors.retrans_timer
            self._solicit(action)

    def _ns_source(self, target: IPv6Address) -> IPv6Address | None:
        """A source for an NS about target: an address that finished DAD, of the same scope
        when possible (RFC 4861 7.2.2). RFC 4429 3.3 forbids optimistic sources here."""
        candidates = [
            e
            for e in self.addresses.values()
            if e.state in (AddressState.PREFERRED, AddressState.DEPRECATED)
        ]
        for entry in candidates:
            if target in entry.prefix:
                return entry.address
        for entry in candidates:
            if entry.address.is_link_local == target.is_link_local:
                return entry.address
        return candidates[0].address if candidates else None

    def _apply(self, actions: list[NeighborAction], now: float) -> None:
        for action in actions:
            if isinstance(action, Transmit):
                self._frames.append((action.dst_mac, action.packet))
            elif isinstance(action, Solicit):
                self._solicit(action)

    def _solicit(self, action: Solicit) -> None:
        src = self._ns_source(action.target)
        if src is None:
            # Only optimistic/tentative addresses so far (just after a link change): hold the
            # solicitation until DAD gives us a source, instead of failing resolution.
            self._count("ns_no_source")
            self._deferred_solicits[action.target] = action
            return
        if action.dst_mac is None:
            dst, dst_mac = solicited_node_multicast(action.target), None
        else:
            dst, dst_mac = action.target, action.dst_mac
        self._send_nd(
            src,
            dst,
            NeighborSolicitation(action.target, (SourceLinkLayerAddress(self.mac),)),
            dst_mac=dst_mac,
        )
