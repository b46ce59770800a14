"""The mobile router's registration (RFC 3963 5): R flag, prefixes, BA without R; fake clock."""

from __future__ import annotations

import random
from ipaddress import IPv6Address, IPv6Network

from netstack.mobility.events import BindingAccepted, BindingRefused
from netstack.mobility.home_agent import HomeAgent
from netstack.mobility.mobile_router import BA_WITHOUT_R, MobileRouter
from netstack.mobility.prefix_table import PrefixTable
from netstack.wire.ipv6 import parse_ipv6_packet
from netstack.wire.mh import BindingAck, BindingUpdate, MobileNetworkPrefix
from netstack.wire.mh_codec import build_mobility_packet, decode_mobility_packet

HOME = IPv6Network("2001:db8:6::/64")
HA = IPv6Address("2001:db8:6::1")
MR = IPv6Address("2001:db8:6::1000")
COA = IPv6Address("2001:db8:a::10")
MNP = IPv6Network("2001:db8:6:100::/64")


def router(implicit: bool = False, seed: int = 1) -> MobileRouter:
    return MobileRouter(MR, HA, home_prefix=HOME, mobile_network_prefixes=(MNP,),
                        implicit=implicit, rng=random.Random(seed))


def drain(node: object) -> list[object]:
    out = []
    while (e := node.next_event()) is not None:  # type: ignore[attr-defined]
        out.append(e)
    return out


def test_explicit_bu_carries_r_and_the_prefix_on_the_wire() -> None:
    mr = router()
    mr.attach(COA, float("inf"), 0.0)
    (bu,) = mr.messages_to_send()
    assert isinstance(bu.message, BindingUpdate)
    assert bu.message.mobile_router and bu.message.home_registration
    wire = build_mobility_packet(bu.src, bu.dst, bu.message, home_address=bu.home_address)
    decoded = decode_mobility_packet(parse_ipv6_packet(wire))
    assert decoded.mobile_router
    assert decoded.options == (MobileNetworkPrefix(MNP),)
    assert mr.prefix_rows() == [{"prefix": str(MNP), "state": "registering", "mode": "explicit"}]


def test_implicit_bu_has_r_and_no_option() -> None:
    mr = router(implicit=True)
    mr.attach(COA, float("inf"), 0.0)
    (bu,) = mr.messages_to_send()
    assert bu.message.mobile_router and bu.message.options == ()


def test_registration_end_to_end_with_the_home_agent() -> None:
    for implicit in (False, True):
        ha = HomeAgent(HA, home_prefix=HOME, prefix_table=PrefixTable({MR: [MNP]}, home_prefix=HOME))
        mr = router(implicit, seed=int(implicit) + 5)
        mr.attach(COA, float("inf"), 0.0)
        (bu,) = mr.messages_to_send()
        ha.receive_binding_update(bu.src, bu.home_address, bu.message, 0.0)
        if MR not in ha.binding_cache:
            drain(ha)
            ha.dad_result(MR, False, 0.0)
        drain(ha)
        (ba,) = ha.messages_to_send()
        mr.receive_binding_ack(HA, ba.message, 0.1)
        assert [type(e) for e in drain(mr)] == [BindingAccepted]
        assert mr.prefix_state() == "registered"
        assert ha.lookup(IPv6Address("2001:db8:6:100::5").packed) == COA.packed


def test_ba_without_r_deregisters_and_reports() -> None:
    mr = router()
    mr.attach(COA, float("inf"), 0.0)
    (bu,) = mr.messages_to_send()
    mr.receive_binding_ack(HA, BindingAck(status=0, sequence=bu.message.sequence, lifetime=420), 0.1)
    events = drain(mr)
    assert len(events) == 1 and isinstance(events[0], BindingRefused)
    assert (events[0].status, events[0].reason) == (140, BA_WITHOUT_R)
    (dereg,) = mr.messages_to_send()
    assert dereg.message.lifetime == 0 and dereg.home_address == MR and dereg.src == COA
    assert mr.prefix_state() == "refused"
    assert mr.counters["ba_without_r"] == 1
    assert mr.get_timer() is None  # no retransmission of anything


def test_139_replaces_a_plain_binding_once_then_registers_as_router() -> None:
    """The HA still holds a mobile node binding for our home address (before [nemo])."""
    ha = HomeAgent(HA, home_prefix=HOME, prefix_table=PrefixTable({MR: [MNP]}, home_prefix=HOME))
    plain = BindingUpdate(sequence=100, lifetime=400, ack=True, home_registration=True)
    ha.receive_binding_update(COA, MR, plain, 0.0)
    ha.dad_result(MR, False, 0.0)
    drain(ha)
    ha.messages_to_send()
    mr = router(seed=9)
    mr._last_sequence[HA] = 200  # carries on from the plain node's sequence numbers
    mr.attach(COA, float("inf"), 1.0)

    def exchange(now: float) -> list[object]:
        for bu in mr.messages_to_send():
            ha.receive_binding_update(bu.src, bu.home_address, bu.message, now)
            if MR not in ha.binding_cache:
                drain(ha)
                ha.dad_result(MR, False, now)
            drain(ha)
        for ba in ha.messages_to_send():
            mr.receive_binding_ack(HA, ba.message, now)
        return drain(mr)

    first = exchange(1.0)
    assert [type(e) for e in first] == [BindingRefused] and first[0].status == 139
    assert MR not in ha.binding_cache or not ha.binding_cache.get(MR).mobile_router
    exchange(1.1)  # the de-registration and the new registration
    exchange(1.2)
    entry = ha.binding_cache.get(MR)
    assert entry is not None and entry.mobile_router and entry.prefixes == (MNP,)
    assert mr.prefix_state() == "registered" and mr.counters["binding_type_replaced"] == 1


def test_139_replacement_is_bounded() -> None:
    mr = router(seed=4)
    mr.attach(COA, float("inf"), 0.0)
    refusals = 0
    for step in range(10):
        for bu in mr.messages_to_send():
            if bu.message.lifetime > 0:
                mr.receive_binding_ack(HA, BindingAck(status=139, sequence=bu.message.sequence, lifetime=0),
                                       step + 0.5)
        refusals += sum(isinstance(e, BindingRefused) for e in drain(mr))
    assert mr.counters["binding_type_replaced"] == 3 and refusals == 4
    assert mr.prefix_state() == "refused" and mr.messages_to_send() == []
