"""Returning home without the one-second wait (RFC 6275 11.5.5), fake clock.

Right after the link change the mobile node's link-local and SLAAC addresses are optimistic
(RFC 4429 3.3: no NS from them) and its home address is still the home agent's to defend, so an
ordinary resolution of the home agent waits for link-local DAD (one RetransTimer). RFC 6275
11.5.5 lets the node solicit the home agent from the unspecified address instead; the home agent
answers with a multicast NA and the de-registration BU leaves at once.
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

from netstack.nd import NdConfig, NdHost
from netstack.wire.icmpv6 import solicited_node_multicast
from netstack.wire.icmpv6_types import NeighborAdvertisement, NeighborSolicitation
from netstack.wire.ipv6 import build_ipv6_packet
from tests.unit.test_nd_support import (
    MAC,
    deliver,
    make_host,
    messages_of,
    router_advertisement,
    sent,
)

HOME = IPv6Network("2001:db8:6::/64")
HOME_AGENT = IPv6Address("2001:db8:6::1")
HOME_ADDRESS = IPv6Address("2001:db8:6::1000")
HA_MAC = bytes.fromhex("0200000000aa")
CORE = IPv6Address("fe80::1")
CORE_MAC = bytes.fromhex("0200000000c0")
UNSPEC = IPv6Address("::")


def _arrived_home(*, allowed: bool) -> NdHost:
    host = make_host()
    if allowed:
        host.unspecified_solicit_targets.add(HOME_AGENT)
    host.link_up(0.0)
    deliver(host, CORE, IPv6Address("ff02::1"), router_advertisement((HOME,), router_mac=CORE_MAC),
            CORE_MAC, 0.01)
    sent(host)
    return host


def _deregistration_bu() -> bytes:
    return build_ipv6_packet(HOME_ADDRESS, HOME_AGENT, 135, b"\x3b\x01\x05\x00" + bytes(4))


def test_home_agent_is_solicited_from_unspecified_at_once() -> None:
    host = _arrived_home(allowed=True)
    host.send(_deregistration_bu(), HOME_AGENT, 0.02)
    (ns,) = messages_of(sent(host), NeighborSolicitation)
    assert ns.packet.src == UNSPEC
    assert ns.packet.dst == solicited_node_multicast(HOME_AGENT)
    assert ns.message.target == HOME_AGENT and ns.message.options == ()  # no SLLAO from ::
    assert host.counters["ns_from_unspecified"] == 1

    # The home agent (a real NdHost owning its address) answers to all-nodes (RFC 4861 7.2.4) ...
    home_agent = NdHost(HA_MAC, config=NdConfig(is_router=True, slaac=False))
    home_agent.link_up(0.0)
    home_agent.add_static_address(HOME_AGENT, 64, 0.0, dad=False)
    home_agent.frames_to_send()
    deliver(home_agent, UNSPEC, ns.packet.dst, ns.message, MAC, 0.021)
    (na,) = messages_of(sent(home_agent), NeighborAdvertisement)
    assert na.packet.dst == IPv6Address("ff02::1") and na.message.solicited is False

    # ... and the queued BU leaves to the home agent's MAC, long before link-local DAD ends.
    deliver(host, na.packet.src, na.packet.dst, na.message, HA_MAC, 0.022)
    frames = [(mac, raw) for mac, raw in host.frames_to_send() if raw[6] == 135]
    assert frames == [(HA_MAC, _deregistration_bu())]
    entry = host.neighbors.get(HOME_AGENT)
    assert entry.mac == HA_MAC and entry.state == "REACHABLE"  # SHOULD of 11.5.5


def test_other_targets_still_wait_for_dad() -> None:
    """Only the home agent gets the RFC 6275 11.5.5 exception; RFC 4429 3.3 holds otherwise."""
    host = _arrived_home(allowed=False)
    host.send(_deregistration_bu(), HOME_AGENT, 0.02)
    assert messages_of(sent(host), NeighborSolicitation) == []
    assert host.counters.get("ns_from_unspecified", 0) == 0
