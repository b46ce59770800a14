"""The guest's route optimisation unit (send routine 100 / receive routine 120 hooks), with a
real GuestDataPlane and a recording stand-in for the link, and the CN's sans-IO side."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv6Address, IPv6Network

from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

from guest_agent.dataplane import GuestDataPlane
from guest_agent.route_optimisation import RouteOptimisation, RouteOptimisationSection
from guest_agent.scenario import Scenario, ScenarioPolicy
from netstack.mobility.correspondent import Correspondent
from netstack.mobility.events import BindingAccepted, ReturnedHome
from netstack.wire.ipv6 import parse_ipv6_packet
from netstack.wire.ro_headers import RoutingHeaderInserter

HOA = IPv6Address("2001:db8:6::1000")
HA = IPv6Address("2001:db8:6::1")
COA = IPv6Address("2001:db8:b::5")
CN = IPv6Address("2001:db8:8::1001")
OWN_MAC = bytes.fromhex("020000000b05")
ROUTER_MAC = bytes.fromhex("020000000b01")


class FakeNode:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.packets: list[tuple[bytes, IPv6Address]] = []

    def send_frames(self, frames: list[bytes]) -> None:
        self.frames.extend(bytes(f) for f in frames)

    def send_packet(self, packet: bytes, destination: IPv6Address, now: float) -> None:
        self.packets.append((bytes(packet), destination))


def _unit(enabled: bool = True) -> tuple[RouteOptimisation, GuestDataPlane, FakeNode, ScenarioPolicy]:
    counters: Counter[str] = Counter()
    dp = GuestDataPlane(HOA.packed, OWN_MAC, counters)
    dp.set_tunnel(COA.packed, HA.packed)
    dp.set_next_hop(ROUTER_MAC)
    node = FakeNode()
    scenarios = ScenarioPolicy()
    ro = RouteOptimisation(RouteOptimisationSection(enabled=enabled), home_address=HOA,
                           home_agent=HA, home_prefix=IPv6Network("2001:db8:6::/64"),
                           dataplane=dp, node=node, counters=counters,  # type: ignore[arg-type]
                           scenarios=scenarios)
    return ro, dp, node, scenarios


def _data(src: IPv6Address, dst: IPv6Address) -> bytes:
    return bytes(IPv6(src=str(src), dst=str(dst)) / UDP(sport=1, dport=2) / Raw(b"data"))


def _deliver_to_cn(cn: Correspondent, node: FakeNode, now: float) -> None:
    """Everything the guest sent towards the CN (tunnelled HoTI unwrapped, as the HA would)."""
    for frame in node.frames:
        packet = frame[14:]
        if packet[6] == 41:
            packet = packet[40:]
        cn.receive_mobility(parse_ipv6_packet(packet), now)
    for packet, _ in node.packets:
        cn.receive_mobility(parse_ipv6_packet(packet), now)
    node.frames.clear()
    node.packets.clear()


def _answer(ro: RouteOptimisation, cn: Correspondent, now: float) -> None:
    from netstack.wire.mh_codec import build_mobility_packet

    for m in cn.messages_to_send():
        packet = build_mobility_packet(m.src, m.dst, m.message, home_address=m.home_address,
                                       routing_type2=m.routing_type2)
        tun_out: list[memoryview] = []
        if m.dst == HOA:  # the HoT comes through the tunnel
            assert ro.take_signalling([memoryview(packet)], 0.0) == []
        else:
            assert ro.receive(memoryview(packet), now, tun_out)
            assert tun_out == []


def test_traffic_starts_rr_then_goes_direct_with_hao_and_back_with_rh2() -> None:
    ro, dp, node, scenarios = _unit()
    cn = Correspondent(CN)
    ro.on_mobility_event(BindingAccepted(HA, HOA, COA, 420, 1, 0), 0.0)
    first = _data(HOA, CN)
    assert ro.outbound([first], 0.0) == [first]  # tunnelled meanwhile, never held
    assert ro.signalling_pending
    ro.flush(0.0)
    _deliver_to_cn(cn, node, 0.0)
    _answer(ro, cn, 0.0)  # HoT (via the tunnel) and CoT
    ro.flush(0.0)
    _deliver_to_cn(cn, node, 0.0)  # the BU
    _answer(ro, cn, 0.0)  # the BA
    ro.flush(0.0)
    assert ro.direct and HOA.packed in cn.bindings
    assert scenarios.is_on(Scenario.TRANSLATION_ON_ROUTE_OPTIMISATION)
    assert Scenario.TRANSLATION_OFF_ROUTE_OPTIMISATION in scenarios.active
    # send routine 100: direct, from the CoA, HAO carrying the home address
    assert ro.outbound([_data(HOA, CN)], 1.0) == []
    parsed = parse_ipv6_packet(node.frames[-1][14:])
    assert node.frames[-1][:6] == ROUTER_MAC
    assert parsed.src == COA and parsed.dst == CN and parsed.home_address == HOA
    # receive routine 120: RH2 stripped, delivered as addressed to the home address
    reply = RoutingHeaderInserter(COA.packed, HOA.packed).insert(_data(CN, HOA))
    tun_out: list[memoryview] = []
    assert ro.receive(memoryview(reply), 1.0, tun_out)
    assert bytes(tun_out[0]) == _data(CN, HOA)
    row = ro.rows(1.0)[0]
    assert row["path"] == "direct" and row["care_of_address"] == str(COA)


def test_disabled_or_other_traffic_is_left_alone() -> None:
    ro, _dp, node, _ = _unit(enabled=False)
    ro.on_mobility_event(BindingAccepted(HA, HOA, COA, 420, 1, 0), 0.0)
    packet = _data(HOA, CN)
    assert ro.outbound([packet], 0.0) == [packet] and not ro.signalling_pending
    ro.flush(0.0)
    assert node.frames == [] and node.packets == []
    # tunnelled data from the HA and MH from the HA are not ours
    assert not ro.receive(memoryview(bytes(IPv6(src=str(HA), dst=str(COA), nh=41) / Raw(packet))),
                          0.0, [])


def test_returning_home_sends_the_deregistration_natively() -> None:
    ro, dp, node, _ = _unit()
    cn = Correspondent(CN)
    ro.on_mobility_event(BindingAccepted(HA, HOA, COA, 420, 1, 0), 0.0)
    ro.outbound([_data(HOA, CN)], 0.0)
    for _ in range(2):
        ro.flush(0.0)
        _deliver_to_cn(cn, node, 0.0)
        _answer(ro, cn, 0.0)
    ro.flush(0.0)
    assert HOA.packed in cn.bindings
    dp.clear_tunnel()
    dp.at_home = True
    ro.on_mobility_event(ReturnedHome(HOA), 5.0)
    ro.flush(5.0)
    assert not ro.direct and node.frames == []
    [(packet, destination)] = node.packets
    assert destination == CN and parse_ipv6_packet(packet).src == HOA
    _deliver_to_cn(cn, node, 5.0)
    assert HOA.packed not in cn.bindings
    [ba] = cn.messages_to_send()
    from netstack.wire.mh_codec import build_mobility_packet

    back = build_mobility_packet(ba.src, ba.dst, ba.message)
    assert ro.receive(memoryview(back), 5.0, [])  # taken at home
    assert ro.rows(5.0) == []
