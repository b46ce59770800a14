"""HMIPv6 (RFC 5380): the MAP state machine and the terminal's MAP logic, fake clock.

Messages travel between the state machines in memory: a local BU from `HierarchicalMobility`
to `MobilityAnchorPoint`, the home BU (shaped by the registration type) to `HomeAgent`.
"""

from __future__ import annotations

import random
from ipaddress import IPv6Address, IPv6Network

import pytest

from netstack.mobility.events import BindingCreated, BindingUpdated, DadRequested
from netstack.mobility.hmip import (
    HierarchicalMobility,
    LocalTunnelDown,
    LocalTunnelUp,
    RegistrationType,
    regional_care_of_address,
    select_map,
)
from netstack.mobility.home_agent import HomeAgent
from netstack.mobility.map import MobilityAnchorPoint
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.mobility.mobile_node import MobileNode
from netstack.wire.icmpv6_types import MapOption
from netstack.wire.mh import AlternateCareOfAddress, BindingAck, BindingAckStatus, BindingUpdate

HOME = IPv6Network("2001:db8:6::/64")
HA = IPv6Address("2001:db8:6::1")
HOA = IPv6Address("2001:db8:6::1000")
MAP_ADDR = IPv6Address("2001:db8:d::1")
MAP_NET = IPv6Network("2001:db8:d::/64")
LCOA_A = IPv6Address("2001:db8:a::2:aaff:fe00:1")
LCOA_B = IPv6Address("2001:db8:b::2:aaff:fe00:1")
LCOA_C = IPv6Address("2001:db8:c::2:aaff:fe00:1")
RCOA = IPv6Address("2001:db8:d::2:aaff:fe00:1")
OPTION = MapOption(distance=1, preference=10, valid_lifetime=3600, map_address=MAP_ADDR)
INF = float("inf")


def drain(machine: object) -> list[object]:
    out = []
    while (event := machine.next_event()) is not None:  # type: ignore[attr-defined]
        out.append(event)
    return out


# ---------------------------------------------------------------- MAP selection


def test_select_map_preference_then_distance_and_unusable() -> None:
    near = MapOption(1, 5, 100, IPv6Address("2001:db8:d::2"))
    far_pref = MapOption(3, 9, 100, IPv6Address("2001:db8:e::1"))
    dead = MapOption(1, 15, 0, IPv6Address("2001:db8:f::1"))
    off = MapOption(1, 0, 100, IPv6Address("2001:db8:f::2"))
    assert select_map([near, far_pref, dead, off]) == far_pref
    assert select_map([near, MapOption(2, 5, 100, IPv6Address("2001:db8:d::3"))]) == near
    assert select_map([dead, off]) is None


def test_rcoa_uses_map_prefix_and_lcoa_interface_identifier() -> None:
    assert regional_care_of_address(MAP_ADDR, LCOA_A) == RCOA
    assert regional_care_of_address(MAP_ADDR, LCOA_B) == RCOA


# ---------------------------------------------------------------- the MAP


def mapbu(seq: int, **kw: object) -> BindingUpdate:
    base: dict[str, object] = dict(sequence=seq, lifetime=300, home_registration=False,
                                   map_registration=True)
    base.update(kw)
    return BindingUpdate(**base)  # type: ignore[arg-type]


def registered_map() -> MobilityAnchorPoint:
    m = MobilityAnchorPoint(MAP_ADDR, prefix=MAP_NET)
    m.receive_binding_update(LCOA_A, RCOA, mapbu(5), 0.0)
    assert drain(m) == [DadRequested(RCOA)]
    m.dad_result(RCOA, False, 0.5)
    assert drain(m) == [BindingCreated(RCOA, LCOA_A)]
    (ba,) = m.messages_to_send()
    assert ba.dst == LCOA_A and ba.routing_type2 == RCOA and ba.message.status == 0
    return m


def test_map_binds_rcoa_to_lcoa_and_moves() -> None:
    m = registered_map()
    assert m.lookup(RCOA.packed) == LCOA_A.packed
    m.receive_binding_update(LCOA_B, RCOA, mapbu(6), 1.0)
    assert drain(m) == [BindingUpdated(RCOA, LCOA_B)]
    assert m.lookup(RCOA.packed) == LCOA_B.packed
    assert m.as_dict(1.0)["binding_cache"][0]["lcoa"] == str(LCOA_B)


@pytest.mark.parametrize(("rcoa", "kw", "status"), [
    (IPv6Address("2001:db8:e::5"), {}, BindingAckStatus.NOT_HOME_SUBNET),
    (MAP_ADDR, {}, BindingAckStatus.NOT_HOME_SUBNET),
    (RCOA, {"home_registration": True}, BindingAckStatus.HOME_REGISTRATION_NOT_SUPPORTED),
    (RCOA, {"map_registration": False}, BindingAckStatus.ADMINISTRATIVELY_PROHIBITED),
])
def test_map_refuses(rcoa: IPv6Address, kw: dict[str, object], status: int) -> None:
    m = MobilityAnchorPoint(MAP_ADDR, prefix=MAP_NET)
    m.receive_binding_update(LCOA_A, rcoa, mapbu(5, **kw), 0.0)
    (ba,) = m.messages_to_send()
    assert ba.message.status == status and ba.dst == LCOA_A
    assert len(m.binding_cache) == 0


def test_map_old_sequence_gets_135_and_binding_kept() -> None:
    m = registered_map()
    m.receive_binding_update(LCOA_B, RCOA, mapbu(4), 2.0)
    (ba,) = m.messages_to_send()
    assert ba.message.status == BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW
    assert ba.message.sequence == 5
    assert m.lookup(RCOA.packed) == LCOA_A.packed
    assert m.counters["bu_stale_sequence"] == 1


def test_map_binding_expires() -> None:
    m = registered_map()
    m.handle_timer(0.0 + 300 + 1)
    assert m.lookup(RCOA.packed) is None


# ---------------------------------------------------------------- the terminal


class World:
    """MN (home MobileNode + HierarchicalMobility), MAP and HA wired in memory."""

    def __init__(self, rtype: RegistrationType = RegistrationType.TUNNELLED) -> None:
        rng = random.Random(7)
        self.home = MobileNode(HOA, HA, home_prefix=HOME, rng=rng)
        self.hmip = HierarchicalMobility(self.home, registration_type=rtype, rng=rng)
        self.map = MobilityAnchorPoint(MAP_ADDR, prefix=MAP_NET)
        self.ha = HomeAgent(HA, home_prefix=HOME)
        self.to_ha: list[tuple[OutgoingMobilityMessage, bool]] = []
        self.to_map: list[OutgoingMobilityMessage] = []
        self.tunnel_events: list[object] = []

    def arrive(self, lcoa: IPv6Address, now: float, *, with_map: bool = True) -> None:
        self.hmip.movement_detected(now)
        self.hmip.address_ready(lcoa, INF, now)
        if with_map:
            self.hmip.map_discovered(OPTION, now)
        self.hmip.resolve(now)
        self.pump(now)

    def pump(self, now: float) -> None:
        for _ in range(10):
            moved = False
            for m in self.hmip.messages_to_send():
                moved = True
                self.to_map.append(m)
                assert isinstance(m.message, BindingUpdate)
                self.map.receive_binding_update(m.src, m.home_address, m.message, now)
            for e in drain(self.map):
                if isinstance(e, DadRequested):
                    self.map.dad_result(e.home_address, False, now)
                    moved = True
            for ba in self.map.messages_to_send():
                moved = True
                assert ba.routing_type2 is not None
                if self.hmip.handles(ba.src, ba.routing_type2):
                    self.hmip.receive_binding_ack(ba.src, ba.message, now)
            for m in self.home.messages_to_send():
                moved = True
                shaped, via_map = self.hmip.route_home_message(m)
                self.to_ha.append((shaped, via_map))
                bu = shaped.message
                assert isinstance(bu, BindingUpdate)
                src, hoa = shaped.src, shaped.home_address
                alt = [o for o in bu.options if isinstance(o, AlternateCareOfAddress)]
                if alt:  # registration type 3, as the HA daemon unwraps it
                    src, hoa = hoa, alt[0].address
                self.ha.receive_binding_update(src, hoa, bu, now)
            for e in drain(self.ha):
                if isinstance(e, DadRequested):
                    self.ha.dad_result(e.home_address, False, now)
                    moved = True
            for ba in self.ha.messages_to_send():
                moved = True
                self.home.receive_binding_ack(ba.src, ba.message, now)
            drain(self.home)
            self.tunnel_events += drain(self.hmip)
            if not moved:
                return


@pytest.mark.parametrize("rtype", list(RegistrationType))
def test_registration_through_the_map(rtype: RegistrationType) -> None:
    w = World(rtype)
    w.arrive(LCOA_A, 0.0)
    assert w.to_map and w.to_map[0].src == LCOA_A and w.to_map[0].home_address == RCOA
    assert w.to_map[0].message.map_registration and not w.to_map[0].message.home_registration
    assert w.map.lookup(RCOA.packed) == LCOA_A.packed
    assert w.ha.lookup(HOA.packed) == RCOA.packed  # the HA binds the RCoA
    assert w.tunnel_events == [LocalTunnelUp(LCOA_A, MAP_ADDR, RCOA)]
    shaped, via_map = w.to_ha[0]
    assert via_map is (rtype is RegistrationType.TUNNELLED)
    if rtype is RegistrationType.DIRECT:
        assert shaped.src == LCOA_A and shaped.home_address == RCOA
    else:
        assert shaped.src == RCOA and shaped.home_address == HOA
    assert w.home.tunnel_endpoint() == (RCOA, HA)
    status = w.hmip.as_dict(0.0)
    assert status["rcoa"] == str(RCOA) and status["map"] == str(MAP_ADDR)
    assert status["scenario"] == rtype.scenario


def test_intra_map_move_sends_only_a_local_bu() -> None:
    w = World()
    w.arrive(LCOA_A, 0.0)
    home_bus = len(w.to_ha)
    w.hmip.link_down(5.0)
    w.home.detach(5.0)
    w.arrive(LCOA_B, 5.1)
    assert len(w.to_ha) == home_bus  # no BU to the HA
    assert w.to_map[-1].src == LCOA_B and w.to_map[-1].home_address == RCOA
    assert w.map.lookup(RCOA.packed) == LCOA_B.packed
    assert w.ha.lookup(HOA.packed) == RCOA.packed
    assert w.tunnel_events[-1] == LocalTunnelUp(LCOA_B, MAP_ADDR, RCOA)


def test_leaving_the_domain_registers_the_lcoa_and_coming_back_the_rcoa() -> None:
    w = World()
    w.arrive(LCOA_A, 0.0)
    w.arrive(LCOA_C, 10.0, with_map=False)
    assert w.ha.lookup(HOA.packed) == LCOA_C.packed
    assert isinstance(w.tunnel_events[-1], LocalTunnelDown)
    assert w.hmip.as_dict(10.0)["map"] is None
    w.arrive(LCOA_A, 20.0)
    assert w.ha.lookup(HOA.packed) == RCOA.packed
    assert w.tunnel_events[-1] == LocalTunnelUp(LCOA_A, MAP_ADDR, RCOA)


def test_refused_by_the_map_falls_back_to_plain_mobile_ipv6() -> None:
    w = World()
    w.map.policy = w.map.policy.__class__(refused_home_addresses=frozenset({RCOA}),
                                          allow_mobile_routers=False)
    w.map._policy_status = lambda hoa, m: BindingAckStatus.ADMINISTRATIVELY_PROHIBITED  # type: ignore[method-assign]
    w.arrive(LCOA_A, 0.0)
    assert w.ha.lookup(HOA.packed) == LCOA_A.packed
    assert w.hmip.counters["local_binding_refused"] == 1


def test_local_bu_retransmitted_on_fake_clock() -> None:
    rng = random.Random(1)
    home = MobileNode(HOA, HA, home_prefix=HOME, rng=rng)
    hmip = HierarchicalMobility(home, rng=rng)
    hmip.address_ready(LCOA_A, INF, 0.0)
    hmip.map_discovered(OPTION, 0.0)
    hmip.resolve(0.0)
    first = hmip.messages_to_send()
    assert len(first) == 1 and first[0].dst == MAP_ADDR
    timer = hmip.get_timer()
    assert timer == pytest.approx(1.5)  # InitialBindackTimeoutFirstReg
    hmip.handle_timer(timer)
    again = hmip.messages_to_send()
    assert len(again) == 1 and again[0].message.sequence != first[0].message.sequence
    assert home.messages_to_send() == []  # nothing to the HA before the MAP accepts


def test_map_lifetime_zero_is_unusable() -> None:
    rng = random.Random(1)
    home = MobileNode(HOA, HA, home_prefix=HOME, rng=rng)
    hmip = HierarchicalMobility(home, rng=rng)
    hmip.address_ready(LCOA_A, INF, 0.0)
    hmip.map_discovered(MapOption(1, 10, 0, MAP_ADDR), 0.0)
    hmip.resolve(0.0)
    assert hmip.messages_to_send() == []
    (bu,) = home.messages_to_send()
    assert bu.src == LCOA_A


def test_ba_from_elsewhere_is_not_the_maps() -> None:
    w = World()
    w.arrive(LCOA_A, 0.0)
    assert not w.hmip.handles(HA, RCOA)
    assert w.hmip.handles(MAP_ADDR, RCOA)
    w.hmip.receive_binding_ack(MAP_ADDR, BindingAck(0, 1, 300), 1.0)  # unexpected: ignored
    assert w.map.lookup(RCOA.packed) == LCOA_A.packed


def test_map_withdrawn_with_lifetime_zero_falls_back_to_the_lcoa() -> None:
    w = World()
    w.arrive(LCOA_A, 0.0)
    # hours later, without movement, the AR withdraws the MAP
    w.hmip.map_discovered(MapOption(1, 10, 0, MAP_ADDR), 7200.0)
    w.hmip.resolve(7200.0)
    w.pump(7200.0)
    assert w.ha.lookup(HOA.packed) == LCOA_A.packed
    assert isinstance(w.tunnel_events[-1], LocalTunnelDown)


def test_map_stays_usable_past_its_advertised_lifetime_while_advertised() -> None:
    w = World()
    w.arrive(LCOA_A, 0.0)
    w.hmip.link_down(5000.0)
    w.arrive(LCOA_B, 5000.0)  # the same option again (5000 s > its 3600 s lifetime)
    assert w.hmip.as_dict(5000.0)["map"] == str(MAP_ADDR)
    assert w.map.lookup(RCOA.packed) == LCOA_B.packed


def test_inter_map_move_registers_the_new_rcoa_with_the_ha() -> None:
    w = World()
    w.arrive(LCOA_A, 0.0)
    map2 = IPv6Address("2001:db8:e::1")
    second = MobilityAnchorPoint(map2, prefix=IPv6Network("2001:db8:e::/64"))
    w.hmip.link_down(5.0)
    w.hmip.movement_detected(5.0)
    w.hmip.address_ready(LCOA_B, INF, 5.0)
    w.hmip.map_discovered(MapOption(1, 10, 3600, map2), 5.0)
    w.hmip.resolve(5.0)
    (bu,) = w.hmip.messages_to_send()
    rcoa2 = regional_care_of_address(map2, LCOA_B)
    assert bu.dst == map2 and bu.src == LCOA_B and bu.home_address == rcoa2
    second.receive_binding_update(bu.src, bu.home_address, bu.message, 5.0)
    drain(second)
    second.dad_result(rcoa2, False, 5.0)
    (ba,) = second.messages_to_send()
    assert w.hmip.handles(ba.src, ba.routing_type2)
    w.hmip.receive_binding_ack(ba.src, ba.message, 5.0)
    w.pump(5.0)
    assert w.ha.lookup(HOA.packed) == rcoa2.packed  # a full registration with the new RCoA
    assert w.tunnel_events[-1] == LocalTunnelUp(LCOA_B, map2, rcoa2)
    assert w.hmip.counters["map_left"] == 1
