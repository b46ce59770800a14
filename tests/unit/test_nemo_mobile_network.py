"""The mobile router's host link (guest_agent.mobile_network): RAs, RS, neighbours, forwarding."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv6Address, IPv6Network

from scapy.layers.inet import TCP as _TCP
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import Ether

from guest_agent.config import NemoSection
from guest_agent.dataplane import GuestDataPlane
from guest_agent.mobile_network import MobileNetwork
from netstack.mobility.mobile_router import MobileRouter
from netstack.wire.ip6ip6 import Encapsulator
from tests.unit.test_host_link import HOST_MAC, OUR_MAC, FakePacketLink, mac, make

MNP = IPv6Network("2001:db8:6:100::/64")
HOST = "2001:db8:6:100::99"
VMN = "2001:db8:6:100::77"
CN = "2001:db8:8::1001"
HA = IPv6Address("2001:db8:6::1")
COA = IPv6Address("2001:db8:b::10")


def network() -> tuple[MobileNetwork, FakePacketLink]:
    link, fake = make()
    counters: Counter[str] = Counter()
    mnet = MobileNetwork(NemoSection(prefixes=[MNP]), link, counters)
    link.mobile_network = mnet
    return mnet, fake


def data(src: str, dst: str, hlim: int = 64) -> bytes:
    return bytes(IPv6(src=src, dst=dst, hlim=hlim) / _TCP(sport=1234, dport=80) / (b"x" * 20))


def test_start_advertises_the_prefix_from_the_gateway_address() -> None:
    mnet, fake = network()
    mnet.start(0.0)
    (frame,) = fake.sent
    ra = Ether(frame)
    assert ra.dst == "33:33:00:00:00:01" and ra.src == OUR_MAC
    assert ra[IPv6].src == "fe80::1" and ra[IPv6].hlim == 255
    assert ICMPv6ND_RA in ra and ra[ICMPv6NDOptPrefixInfo].prefix == str(MNP.network_address)
    assert ra[ICMPv6NDOptSrcLLAddr].lladdr == OUR_MAC
    assert mnet.get_timer() is not None


def test_router_solicitation_is_answered_through_the_host_link() -> None:
    mnet, fake = network()
    mnet.start(0.0)
    fake.sent.clear()
    rs = Ether(src=HOST_MAC, dst="33:33:00:00:00:02") / IPv6(src="::", dst="ff02::2", hlim=255) / ICMPv6ND_RS()
    fake.inbox.append(bytes(rs))
    ipv4, ipv6 = mnet.host_link.receive()
    assert (ipv4, ipv6) == ([], [])
    assert any(ICMPv6ND_RA in Ether(f) for f in fake.sent)


def test_host_packets_from_the_prefix_go_to_the_tunnel_with_hop_limit_decremented() -> None:
    mnet, fake = network()
    fake.inbox.append(bytes(Ether(src=HOST_MAC, dst=OUR_MAC) / IPv6(data(HOST, CN))))
    ipv4, ipv6 = mnet.host_link.receive()
    assert ipv6 == []  # not the home address's: HostLink never sees it
    (out,) = mnet.take_outbound()
    assert out[7] == 63 and IPv6(out).src == HOST
    assert mnet.neighbours[IPv6Address(HOST).packed] == mac(HOST_MAC)
    assert mnet.prefixes[0].counters["packets_out"] == 1
    # and the data plane accepts it as forwarded (its source is not the home address)
    plane = GuestDataPlane(IPv6Address("2001:db8:6::1000").packed, mac(OUR_MAC), Counter())
    plane.set_tunnel(COA.packed, HA.packed)
    plane.set_next_hop(mac("02:00:00:00:00:aa"))
    frames, unresolved = plane.outbound([out], forwarded=True)
    assert len(frames) == 1 and not unresolved
    assert IPv6(frames[0][14:]).src == str(COA)


def test_tunnelled_packets_for_the_prefix_are_resolved_and_delivered() -> None:
    mnet, fake = network()
    plane = GuestDataPlane(IPv6Address("2001:db8:6::1000").packed, mac(OUR_MAC), Counter())
    plane.mobile_network = mnet
    plane.set_tunnel(COA.packed, HA.packed)
    outer = Encapsulator(HA.packed, COA.packed).encapsulate(data(CN, VMN))
    inner = plane.detunnel(memoryview(bytes(outer)))
    assert inner is not None
    rest = mnet.route_inbound([inner], 0.0)
    assert rest == []
    (ns,) = fake.sent  # the neighbour is unknown: a solicitation, the packet waits
    assert ICMPv6ND_NS in Ether(ns) and Ether(ns)[ICMPv6ND_NS].tgt == VMN
    vmn_mac = "02:00:00:00:0f:55"
    na = Ether(src=vmn_mac, dst=OUR_MAC) / IPv6(src=VMN, dst="fe80::1", hlim=255) / ICMPv6ND_NA(tgt=VMN, S=1)
    fake.inbox.append(bytes(na))
    mnet.host_link.receive()
    mnet.flush()
    delivered = Ether(fake.sent[-1])
    assert delivered.dst == vmn_mac and delivered[IPv6].dst == VMN and delivered[IPv6].hlim == 63
    # the home address's packets are left to the receive routine
    home = memoryview(data(CN, "2001:db8:6::1000"))
    assert mnet.route_inbound([home], 1.0) == [home]


def test_status_joins_prefix_state_and_counters() -> None:
    mnet, _fake = network()
    router = MobileRouter(IPv6Address("2001:db8:6::1000"), HA, home_prefix=IPv6Network("2001:db8:6::/64"),
                          mobile_network_prefixes=(MNP,))
    status = mnet.status(router)
    assert status["mobile_network_prefixes"] == [
        {"prefix": str(MNP), "state": "idle", "mode": "explicit", "counters": {}}]
