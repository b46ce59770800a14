"""NdHost with a fake clock: RS schedule, SLAAC, DAD (optimistic and not), NS answering,
neighbour resolution, movement detection, expiry. Packets go through the real codec."""

from __future__ import annotations

import math
import random
from ipaddress import IPv6Address, IPv6Network

from netstack.nd import (
    AddressDuplicate,
    AddressExpired,
    AddressReady,
    MapDiscovered,
    MovementDetected,
    NdConfig,
    NdHost,
    RouterChanged,
)
from netstack.wire.ethernet import multicast_mac
from netstack.wire.icmpv6 import solicited_node_multicast
from netstack.wire.icmpv6_types import (
    EchoRequest,
    MapOption,
    Mtu,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterSolicitation,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
)
from netstack.wire.ipv6 import build_ipv6_packet
from tests.unit.test_nd_support import (
    COA_A,
    COA_B,
    LINK_LOCAL,
    MAC,
    PREFIX_A,
    PREFIX_B,
    ROUTER_A,
    ROUTER_A_MAC,
    ROUTER_B,
    ROUTER_B_MAC,
    deliver,
    events,
    make_host,
    messages_of,
    router_advertisement,
    run_until,
    sent,
)

ALL_NODES = IPv6Address("ff02::1")
ALL_ROUTERS = IPv6Address("ff02::2")
UNSPEC = IPv6Address("::")
PEER = IPv6Address("2001:db8:a::99")
PEER_MAC = bytes.fromhex("020000000099")


def attached_host(**overrides: object) -> NdHost:
    """A host on link A with its link-local and SLAAC CoA ready, router A known."""
    host = make_host(**overrides)
    host.link_up(0.0)
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(), ROUTER_A_MAC, 0.5)
    run_until(host, 2.0)
    sent(host)
    events(host)
    return host


# ---------------------------------------------------------------- router solicitation


def test_rs_retransmit_schedule_and_stop() -> None:
    host = make_host()
    host.link_up(0.0)
    times = []
    now = 0.0
    rs = messages_of(sent(host), RouterSolicitation)
    assert len(rs) == 1
    times.append(now)
    while (deadline := host.get_timer()) is not None and deadline < 100:
        now = deadline
        host.handle_timer(now)
        if messages_of(sent(host), RouterSolicitation):
            times.append(now)
    assert times == [0.0, 4.0, 8.0]  # MAX_RTR_SOLICITATIONS=3 at RTR_SOLICITATION_INTERVAL
    first = rs[0]
    assert first.packet.dst == ALL_ROUTERS
    assert first.dst_mac == multicast_mac(ALL_ROUTERS)
    assert first.packet.hop_limit == 255
    # link-local is optimistic at t=0: RFC 4429 says no SLLA from an optimistic source
    assert first.packet.src == LINK_LOCAL
    assert first.message.options == ()


def test_rs_from_unspecified_when_link_local_is_tentative() -> None:
    host = make_host(optimistic_dad=False)
    host.link_up(0.0)
    (rs,) = messages_of(sent(host), RouterSolicitation)
    assert rs.packet.src == UNSPEC
    host.handle_timer(4.0)  # link-local DAD done at 1 s, so the next RS carries the SLLA
    (rs,) = messages_of(sent(host), RouterSolicitation)
    assert rs.packet.src == LINK_LOCAL
    assert rs.message.options == (SourceLinkLayerAddress(MAC),)


def test_random_initial_rs_delay_comes_from_injected_rng() -> None:
    host = NdHost(MAC, config=NdConfig(), rng=random.Random(7))
    host.link_up(10.0)
    expected = 10.0 + random.Random(7).uniform(0.0, 1.0)
    assert messages_of(sent(host), RouterSolicitation) == []
    assert host.get_timer() <= expected
    run_until(host, expected, 10.0)
    assert len(messages_of(sent(host), RouterSolicitation)) == 1


def test_ra_stops_solicitation() -> None:
    host = make_host()
    host.link_up(0.0)
    sent(host)
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(), ROUTER_A_MAC, 1.0)
    run_until(host, 20.0)
    assert messages_of(sent(host), RouterSolicitation) == []


# ---------------------------------------------------------------- SLAAC / DAD


def test_slaac_forms_eui64_coa_with_optimistic_dad() -> None:
    host = make_host()
    host.link_up(0.0)
    sent(host)
    events(host)
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(), ROUTER_A_MAC, 0.5)
    evs = events(host)
    assert AddressReady(COA_A, PREFIX_A, 0.5 + 86400, 0.5 + 14400) in evs
    assert RouterChanged(ROUTER_A, ROUTER_A_MAC) in evs
    assert host.owns(COA_A)
    assert host.care_of_address == COA_A
    assert host.addresses[COA_A].state == "optimistic"
    (dad,) = messages_of(sent(host), NeighborSolicitation)
    assert dad.packet.src == UNSPEC
    assert dad.packet.dst == solicited_node_multicast(COA_A)
    assert dad.message.target == COA_A and dad.message.options == ()
    host.handle_timer(1.5)
    assert host.addresses[COA_A].state == "preferred"
    assert [e for e in events(host) if isinstance(e, AddressReady)] == []  # reported once


def test_non_optimistic_dad_reports_ready_after_retrans_timer() -> None:
    host = make_host(optimistic_dad=False)
    host.link_up(0.0)
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(), ROUTER_A_MAC, 0.5)
    assert not host.owns(COA_A)
    assert not any(isinstance(e, AddressReady) and e.address == COA_A for e in events(host))
    host.handle_timer(1.4)
    assert not host.owns(COA_A)
    host.handle_timer(1.5)
    assert host.owns(COA_A)
    assert AddressReady(COA_A, PREFIX_A, 0.5 + 86400, 0.5 + 14400) in events(host)


def test_dad_duplicate_by_na_optimistic() -> None:
    host = make_host()
    host.link_up(0.0)
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(), ROUTER_A_MAC, 0.5)
    events(host)
    na = NeighborAdvertisement(COA_A, override=True, options=(TargetLinkLayerAddress(PEER_MAC),))
    deliver(host, COA_A, ALL_NODES, na, PEER_MAC, 0.8)
    assert AddressDuplicate(COA_A) in events(host)
    assert not host.owns(COA_A)
    assert host.care_of_address is None
    assert host.counters["dad_duplicate"] == 1


def test_dad_duplicate_by_simultaneous_dad_ns_tentative() -> None:
    host = make_host(optimistic_dad=False)
    host.link_up(0.0)
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(), ROUTER_A_MAC, 0.5)
    events(host)
    deliver(host, UNSPEC, solicited_node_multicast(COA_A), NeighborSolicitation(COA_A), PEER_MAC, 0.7)
    assert events(host) == [AddressDuplicate(COA_A)]
    run_until(host, 3.0, 0.7)
    assert not any(isinstance(e, AddressReady) and e.address == COA_A for e in events(host))
    assert COA_A not in host.addresses


def test_tentative_address_ignores_resolution_ns() -> None:
    host = make_host(optimistic_dad=False)
    host.link_up(0.0)
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(), ROUTER_A_MAC, 0.5)
    sent(host)
    ns = NeighborSolicitation(COA_A, (SourceLinkLayerAddress(PEER_MAC),))
    deliver(host, PEER, solicited_node_multicast(COA_A), ns, PEER_MAC, 0.6)
    assert messages_of(sent(host), NeighborAdvertisement) == []
    assert host.owns(COA_A) is False


def test_static_address_uses_normal_dad_and_on_link_prefix() -> None:
    host = make_host()
    host.link_up(0.0)
    events(host)
    addr = IPv6Address("2001:db8:6::1")
    host.add_static_address(addr, 64, 0.0)
    assert host.addresses[addr].state == "tentative"
    host.handle_timer(1.0)
    assert AddressReady(addr, IPv6Network("2001:db8:6::/64"), math.inf, math.inf) in events(host)
    assert host.next_hop(IPv6Address("2001:db8:6::77")) == IPv6Address("2001:db8:6::77")


def test_static_address_without_dad_is_ready_at_once() -> None:
    host = make_host()
    addr = IPv6Address("2001:db8:6::1")
    host.add_static_address(addr, 64, 0.0, dad=False)
    assert host.owns(addr)
    assert isinstance(events(host)[0], AddressReady)


def test_resolution_waits_for_dad_instead_of_failing_without_a_source() -> None:
    """Right after a link change only optimistic/tentative addresses exist (RFC 4429 3.3):
    the NS is held, then sent the moment DAD completes, with its full retries left."""
    host = make_host()
    host.link_up(0.0)
    home = IPv6Network("2001:db8:6::/64")
    host.add_static_address(IPv6Address("2001:db8:6::1000"), 64, 0.0)  # tentative, like the HoA
    sent(host)
    target = IPv6Address("2001:db8:6::1")
    packet = build_ipv6_packet(IPv6Address("2001:db8:6::1000"), target, 59, b"")
    host.send(packet, target, 0.1)
    assert messages_of(sent(host), NeighborSolicitation) == []
    assert home  # the target is on-link through the static address's prefix
    host.handle_timer(1.0)  # link-local and the static address finish DAD
    resolutions = [
        m for m in messages_of(sent(host), NeighborSolicitation) if m.message.target == target
    ]
    assert len(resolutions) == 1 and resolutions[0].packet.src != UNSPEC
    assert host.neighbors.get(target).probes_sent == 1  # three full tries from now on


# ---------------------------------------------------------------- NS answering


def test_answers_ns_for_own_address_with_tlla_and_solicited_flag() -> None:
    host = attached_host()
    ns = NeighborSolicitation(COA_A, (SourceLinkLayerAddress(PEER_MAC),))
    deliver(host, PEER, solicited_node_multicast(COA_A), ns, PEER_MAC, 5.0)
    (na,) = messages_of(sent(host), NeighborAdvertisement)
    assert na.dst_mac == PEER_MAC
    assert (na.packet.src, na.packet.dst, na.packet.hop_limit) == (COA_A, PEER, 255)
    assert na.message == NeighborAdvertisement(
        COA_A, router=False, solicited=True, override=True, options=(TargetLinkLayerAddress(MAC),)
    )
    # the solicitor was learned from its SLLA
    assert host.neighbors.get(PEER).mac == PEER_MAC


def test_answers_dad_ns_for_own_address_to_all_nodes() -> None:
    host = attached_host()
    deliver(host, UNSPEC, solicited_node_multicast(COA_A), NeighborSolicitation(COA_A), PEER_MAC, 5.0)
    (na,) = messages_of(sent(host), NeighborAdvertisement)
    assert (na.packet.dst, na.dst_mac) == (ALL_NODES, multicast_mac(ALL_NODES))
    assert na.message.solicited is False and na.message.override is True
    assert host.neighbors.get(UNSPEC) is None


def test_proxy_answers_without_override_and_announces_with_override() -> None:
    host = attached_host()
    hoa = IPv6Address("2001:db8:a::1000")
    host.add_proxy(hoa, 5.0)
    (announce,) = messages_of(sent(host), NeighborAdvertisement)
    assert announce.packet.dst == ALL_NODES
    assert announce.message.override is True and announce.message.solicited is False
    assert announce.message.options == (TargetLinkLayerAddress(MAC),)
    assert host.is_proxied(hoa)
    ns = NeighborSolicitation(hoa, (SourceLinkLayerAddress(PEER_MAC),))
    deliver(host, PEER, solicited_node_multicast(hoa), ns, PEER_MAC, 6.0)
    (na,) = messages_of(sent(host), NeighborAdvertisement)
    assert na.packet.src == LINK_LOCAL and na.packet.dst == PEER
    assert na.message.target == hoa and na.message.solicited and not na.message.override
    # DAD for the proxied address by someone else is defended
    deliver(host, UNSPEC, solicited_node_multicast(hoa), NeighborSolicitation(hoa), PEER_MAC, 7.0)
    (defence,) = messages_of(sent(host), NeighborAdvertisement)
    assert defence.packet.dst == ALL_NODES
    host.remove_proxy(hoa)
    deliver(host, PEER, solicited_node_multicast(hoa), ns, PEER_MAC, 8.0)
    assert messages_of(sent(host), NeighborAdvertisement) == []


def test_ns_for_someone_else_is_not_answered() -> None:
    host = attached_host()
    other = IPv6Address("2001:db8:a::5")
    ns = NeighborSolicitation(other, (SourceLinkLayerAddress(PEER_MAC),))
    deliver(host, PEER, solicited_node_multicast(other), ns, PEER_MAC, 5.0)
    assert sent(host) == []


def test_invalid_nd_is_dropped_and_counted() -> None:
    host = attached_host()
    ns = NeighborSolicitation(COA_A, (SourceLinkLayerAddress(PEER_MAC),))
    deliver(host, PEER, solicited_node_multicast(COA_A), ns, PEER_MAC, 5.0, hop_limit=64)
    # DAD NS must not carry an SLLA
    deliver(host, UNSPEC, solicited_node_multicast(COA_A), ns, PEER_MAC, 5.0)
    # RA from a global source
    deliver(host, PEER, ALL_NODES, router_advertisement(), PEER_MAC, 5.0)
    assert sent(host) == []
    assert host.counters["nd_invalid_hop_limit"] == 1
    assert host.counters["invalid_ns"] == 1
    assert host.counters["invalid_ra"] == 1


def test_announce_sends_unsolicited_override_na() -> None:
    host = attached_host()
    host.announce(COA_A, 5.0)
    (na,) = messages_of(sent(host), NeighborAdvertisement)
    assert (na.packet.src, na.packet.dst) == (COA_A, ALL_NODES)
    assert na.message.override and not na.message.solicited


def test_non_nd_messages_are_ignored() -> None:
    host = attached_host()
    deliver(host, PEER, COA_A, EchoRequest(1, 1), PEER_MAC, 5.0)
    assert sent(host) == [] and events(host) == []


# ---------------------------------------------------------------- resolution


def _data(dst: IPv6Address, tag: int) -> bytes:
    return build_ipv6_packet(COA_A, dst, 59, bytes([tag]))


def test_on_link_resolution_then_delivery() -> None:
    host = attached_host()
    host.send(_data(PEER, 1), PEER, 5.0)
    (ns,) = messages_of(sent(host), NeighborSolicitation)
    assert ns.packet.dst == solicited_node_multicast(PEER)
    assert ns.packet.src == COA_A
    assert ns.message.options == (SourceLinkLayerAddress(MAC),)
    na = NeighborAdvertisement(PEER, solicited=True, options=(TargetLinkLayerAddress(PEER_MAC),))
    deliver(host, PEER, COA_A, na, PEER_MAC, 5.2)
    frames = sent(host)
    assert [(f.dst_mac, f.packet.payload) for f in frames] == [(PEER_MAC, b"\x01")]
    host.send(_data(PEER, 2), PEER, 5.3)
    assert [f.dst_mac for f in sent(host)] == [PEER_MAC]


def test_resolution_failure_drops_and_counts() -> None:
    host = attached_host()
    for tag in range(4):
        host.send(_data(PEER, tag), PEER, 5.0)
    run_until(host, 20.0, 5.0)
    solicitations = messages_of(sent(host), NeighborSolicitation)
    assert len(solicitations) == 3  # MAX_MULTICAST_SOLICIT
    assert host.counters["nd_queue_overflow"] == 1
    assert host.counters["nd_resolution_failed"] == 1
    assert host.counters["nd_dropped_packets"] == 3
    assert host.neighbors.get(PEER) is None


def test_off_link_goes_to_default_router_mac_from_ra() -> None:
    host = attached_host()
    cn = IPv6Address("2001:db8:8::1001")
    host.send(_data(cn, 7), cn, 5.0)
    (frame,) = sent(host)
    assert frame.dst_mac == ROUTER_A_MAC  # learned from the RA's SLLA, no NS needed
    assert frame.packet.dst == cn


def test_multicast_needs_no_resolution() -> None:
    host = attached_host()
    group = IPv6Address("ff02::16")
    host.send(_data(group, 3), group, 5.0)
    assert [f.dst_mac for f in sent(host)] == [bytes.fromhex("333300000016")]


def test_no_route_without_router() -> None:
    host = make_host()
    host.link_up(0.0)
    sent(host)
    host.send(_data(IPv6Address("2001:db8:8::1"), 1), IPv6Address("2001:db8:8::1"), 1.0)
    assert host.counters["no_route"] == 1
    host.set_default_router(ROUTER_A)
    assert RouterChanged(ROUTER_A, None) in events(host)
    assert host.next_hop(IPv6Address("2001:db8:8::1")) == ROUTER_A


# ---------------------------------------------------------------- movement


def test_movement_between_two_routers_and_prefixes() -> None:
    host = attached_host()
    assert host.care_of_address == COA_A
    host.link_down(10.0)
    host.link_up(11.0)
    rs = messages_of(sent(host), RouterSolicitation)
    assert len(rs) == 1  # re-solicit at once on the new link
    deliver(host, ROUTER_B, ALL_NODES, router_advertisement((PREFIX_B,), router_mac=ROUTER_B_MAC), ROUTER_B_MAC, 11.2)
    evs = events(host)
    assert evs[0] == MovementDetected((PREFIX_B,), ROUTER_B)
    assert AddressExpired(COA_A) in evs
    assert AddressReady(COA_B, PREFIX_B, 11.2 + 86400, 11.2 + 14400) in evs
    assert RouterChanged(ROUTER_B, ROUTER_B_MAC) in evs
    assert evs.index(AddressExpired(COA_A)) < evs.index(
        AddressReady(COA_B, PREFIX_B, 11.2 + 86400, 11.2 + 14400)
    )
    assert host.care_of_address == COA_B
    assert not host.owns(COA_A)
    assert list(host.default_routers) == [ROUTER_B]
    assert PREFIX_A not in host.prefixes


def test_movement_with_same_router_address_but_new_prefix() -> None:
    host = attached_host()
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement((PREFIX_B,)), ROUTER_A_MAC, 20.0)
    assert MovementDetected((PREFIX_B,), ROUTER_A) in events(host)
    assert host.care_of_address == COA_B


def test_second_router_on_same_link_is_not_movement() -> None:
    host = attached_host()
    deliver(host, ROUTER_B, ALL_NODES, router_advertisement((PREFIX_A,), router_mac=ROUTER_B_MAC), ROUTER_B_MAC, 5.0)
    deliver(host, ROUTER_B, ALL_NODES, router_advertisement((), router_mac=ROUTER_B_MAC), ROUTER_B_MAC, 6.0)
    assert not any(isinstance(e, MovementDetected) for e in events(host))
    assert host.care_of_address == COA_A
    assert list(host.default_routers) == [ROUTER_A, ROUTER_B]


def test_back_to_same_link_is_not_movement() -> None:
    host = attached_host()
    host.link_down(10.0)
    host.link_up(12.0)
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(), ROUTER_A_MAC, 12.5)
    assert not any(isinstance(e, MovementDetected) for e in events(host))
    assert host.owns(COA_A)


def test_map_option_discovered_once() -> None:
    host = attached_host()
    map_option = MapOption(1, 10, 600, IPv6Address("2001:db8:7::1"))
    ra = router_advertisement(extra=(map_option,))
    deliver(host, ROUTER_A, ALL_NODES, ra, ROUTER_A_MAC, 5.0)
    deliver(host, ROUTER_A, ALL_NODES, ra, ROUTER_A_MAC, 6.0)
    assert [e for e in events(host) if isinstance(e, MapDiscovered)] == [
        MapDiscovered(map_option, ROUTER_A)
    ]


def test_mtu_option_applies_within_bounds() -> None:
    host = attached_host()
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(extra=(Mtu(1400),)), ROUTER_A_MAC, 5.0)
    assert host.mtu == 1400
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(extra=(Mtu(1000),)), ROUTER_A_MAC, 6.0)
    assert host.mtu == 1400


# ---------------------------------------------------------------- expiry


def test_address_deprecates_then_expires() -> None:
    host = make_host()
    host.link_up(0.0)
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(valid=100, preferred=50), ROUTER_A_MAC, 0.0)
    events(host)
    run_until(host, 60.0)
    assert host.addresses[COA_A].state == "deprecated"
    assert host.owns(COA_A)
    run_until(host, 101.0, 60.0)
    assert AddressExpired(COA_A) in events(host)
    assert not host.owns(COA_A)
    assert host.care_of_address is None
    assert PREFIX_A not in host.prefixes


def test_ra_refreshes_lifetimes() -> None:
    host = make_host()
    host.link_up(0.0)
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(valid=100, preferred=50), ROUTER_A_MAC, 0.0)
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(valid=100, preferred=50), ROUTER_A_MAC, 90.0)
    run_until(host, 150.0)
    assert host.owns(COA_A)
    assert host.addresses[COA_A].valid_until == 190.0


def test_default_router_expiry() -> None:
    host = make_host()
    host.link_up(0.0)
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(router_lifetime=30), ROUTER_A_MAC, 0.0)
    assert RouterChanged(ROUTER_A, ROUTER_A_MAC) in events(host)
    run_until(host, 31.0)
    assert list(host.default_routers) == []
    assert RouterChanged(None, None) in events(host)
    assert host.next_hop(IPv6Address("2001:db8:8::1")) is None


def test_router_lifetime_zero_removes_router() -> None:
    host = attached_host()
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(router_lifetime=0), ROUTER_A_MAC, 5.0)
    assert list(host.default_routers) == []
    assert RouterChanged(None, None) in events(host)


def test_status_dict_is_json_serialisable() -> None:
    import json

    host = attached_host()
    text = json.dumps(host.as_dict())
    assert str(COA_A) in text
    status = host.as_dict()
    assert status["care_of_address"] == str(COA_A)
    assert status["default_router"] == str(ROUTER_A)


def test_reattach_reruns_dad_keeping_autoconfigured_addresses_usable() -> None:
    host = attached_host()
    static = IPv6Address("2001:db8:6::1")
    host.add_static_address(static, 64, 2.0)
    host.handle_timer(3.0)
    assert host.addresses[static].state == "preferred"
    sent(host)
    events(host)
    host.link_down(10.0)
    host.link_up(12.0)
    dad_targets = {
        s.message.target for s in messages_of(sent(host), NeighborSolicitation)
        if s.packet.src == UNSPEC
    }
    assert dad_targets == {LINK_LOCAL, COA_A, static}
    assert host.addresses[COA_A].state == "optimistic" and host.owns(COA_A)
    assert host.addresses[static].state == "tentative" and not host.owns(static)
    host.handle_timer(13.0)
    assert host.addresses[static].state == "preferred"
    assert not any(isinstance(e, AddressReady) for e in events(host))  # nothing new


def test_packet_from_optimistic_address_goes_via_router_without_resolution() -> None:
    host = make_host()
    host.link_up(0.0)
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(), ROUTER_A_MAC, 0.5)
    sent(host)
    assert host.addresses[COA_A].state == "optimistic"
    host.send(_data(PEER, 9), PEER, 0.6)
    (frame,) = sent(host)
    assert frame.dst_mac == ROUTER_A_MAC and frame.packet.dst == PEER
    assert host.counters["optimistic_via_router"] == 1


def test_reachable_time_is_randomised_from_injected_rng() -> None:
    times = {
        NdHost(MAC, config=NdConfig(), rng=random.Random(seed)).neighbors.reachable_time
        for seed in range(5)
    }
    assert len(times) == 5
    assert all(15.0 <= t <= 45.0 for t in times)
    same = NdHost(MAC, rng=random.Random(3)).neighbors.reachable_time
    assert same == NdHost(MAC, rng=random.Random(3)).neighbors.reachable_time
