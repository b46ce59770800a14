"""Property test: random ND traffic and timers never crash NdHost, every frame it emits
decodes with the real codec, and handle_timer(now) leaves no timer at or before now (a stale
timer would make the daemon's loop spin)."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.wire.icmpv6 import solicited_node_multicast
from netstack.wire.icmpv6_types import (
    NeighborAdvertisement,
    NeighborSolicitation,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
)
from netstack.wire.ipv6 import build_ipv6_packet
from tests.unit.test_nd_support import (
    COA_A,
    COA_B,
    PREFIX_A,
    PREFIX_B,
    ROUTER_A,
    ROUTER_A_MAC,
    ROUTER_B,
    ROUTER_B_MAC,
    deliver,
    events,
    make_host,
    router_advertisement,
    sent,
)

ADDRESSES = [COA_A, COA_B, IPv6Address("2001:db8:a::99"), ROUTER_A, ROUTER_B, IPv6Address("::")]
MACS = [ROUTER_A_MAC, ROUTER_B_MAC, bytes.fromhex("020000000099")]
PREFIXES = [PREFIX_A, PREFIX_B, IPv6Network("2001:db8:c::/64"), IPv6Network("2001:db8::/48")]

actions = st.one_of(
    st.tuples(
        st.just("ra"),
        st.sampled_from([0, 1]),
        st.lists(st.sampled_from(PREFIXES), max_size=3, unique=True),
        st.sampled_from([0, 5, 1800]),
        st.sampled_from([0, 3, 100, 0xFFFFFFFF]),
    ),
    st.tuples(st.just("ns"), st.sampled_from(ADDRESSES), st.sampled_from(ADDRESSES), st.booleans()),
    st.tuples(
        st.just("na"), st.sampled_from(ADDRESSES), st.booleans(), st.booleans(), st.booleans()
    ),
    st.tuples(st.just("send"), st.sampled_from(ADDRESSES[:5] + [IPv6Address("2001:db8:8::1")])),
    st.tuples(st.just("time"), st.floats(0.0, 50.0)),
    st.tuples(st.just("link"), st.booleans()),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(actions, max_size=40))
def test_random_traffic_keeps_invariants(script) -> None:
    host = make_host()
    host.link_up(0.0)
    now = 0.0
    for action in script:
        kind = action[0]
        if kind == "ra":
            _, which, prefixes, lifetime, valid = action
            router, mac = [(ROUTER_A, ROUTER_A_MAC), (ROUTER_B, ROUTER_B_MAC)][which]
            ra = router_advertisement(
                tuple(prefixes), router_mac=mac, router_lifetime=lifetime, valid=valid,
                preferred=min(valid, 50),
            )
            deliver(host, router, IPv6Address("ff02::1"), ra, mac, now)
        elif kind == "ns":
            _, src, target, with_slla = action
            options = (SourceLinkLayerAddress(MACS[2]),) if with_slla else ()
            deliver(host, src, solicited_node_multicast(target), NeighborSolicitation(target, options), MACS[2], now)
        elif kind == "na":
            _, target, solicited, override, router = action
            na = NeighborAdvertisement(target, router, solicited, override, (TargetLinkLayerAddress(MACS[2]),))
            deliver(host, target if target != IPv6Address("::") else ROUTER_A, COA_A, na, MACS[2], now)
        elif kind == "send":
            dst = action[1]
            host.send(build_ipv6_packet(COA_A, dst, 59, b"x"), dst, now)
        elif kind == "time":
            now += action[1]
            while (deadline := host.get_timer()) is not None and deadline <= now:
                host.handle_timer(deadline)
                after = host.get_timer()
                assert after is None or after > deadline
        elif action[1]:
            host.link_up(now)
        else:
            host.link_down(now)
        for item in sent(host):
            assert item.packet.hop_limit == 255 or item.message is None
        events(host)
        if host.care_of_address is not None:
            assert host.owns(host.care_of_address)
        for entry in host.neighbors.entries.values():
            assert len(entry.queue) <= host.config.max_queued_packets
