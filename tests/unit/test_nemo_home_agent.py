"""NEMO at the home agent (RFC 3963 6.1-6.2): the prefix table and statuses 139-143, fake clock."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

import pytest

from netstack.mobility.home_agent import HomeAgent
from netstack.mobility.prefix_table import PrefixTable, invalid_prefix_reason
from netstack.wire.mh import BindingAck, BindingAckStatus, BindingUpdate, MobileNetworkPrefix

HOME = IPv6Network("2001:db8:6::/64")
HA = IPv6Address("2001:db8:6::1")
MR = IPv6Address("2001:db8:6::1000")
VMN = IPv6Address("2001:db8:6::2000")
COA = IPv6Address("2001:db8:a::10")
COA_B = IPv6Address("2001:db8:b::10")
MNP = IPv6Network("2001:db8:6:100::/64")
OTHER = IPv6Network("2001:db8:6:200::/64")


def mr_bu(seq: int, *prefixes: IPv6Network, lifetime: int = 420, **kw: object) -> BindingUpdate:
    fields: dict[str, object] = {"ack": True, "home_registration": True, "mobile_router": True}
    fields.update(kw)
    return BindingUpdate(sequence=seq, lifetime=lifetime,
                         options=tuple(MobileNetworkPrefix(p) for p in prefixes), **fields)  # type: ignore[arg-type]


def home_agent() -> HomeAgent:
    return HomeAgent(HA, home_prefix=HOME, prefix_table=PrefixTable({MR: [MNP]}, home_prefix=HOME))


def answer(ha: HomeAgent) -> BindingAck:
    out = ha.messages_to_send()
    assert len(out) == 1, out
    assert isinstance(out[0].message, BindingAck)
    return out[0].message


def register(ha: HomeAgent, bu: BindingUpdate, hoa: IPv6Address = MR, coa: IPv6Address = COA,
             now: float = 0.0) -> BindingAck:
    ha.receive_binding_update(coa, hoa, bu, now)
    while ha.next_event() is not None:
        pass
    if hoa not in ha.binding_cache:
        ha.dad_result(hoa, False, now)
        while ha.next_event() is not None:
            pass
    return answer(ha)


def test_explicit_registration_routes_the_prefix_and_answers_with_r() -> None:
    ha = home_agent()
    ba = register(ha, mr_bu(1, MNP))
    assert (ba.status, ba.mobile_router) == (0, True)
    host = IPv6Address("2001:db8:6:100::42")
    assert ha.lookup(host.packed) == COA.packed
    assert ha.lookup(IPv6Address("2001:db8:6:200::1").packed) is None
    assert ha.as_dict(0.0)["prefix_table"] == [
        {"home_address": str(MR), "prefix": str(MNP), "registered": True, "care_of_address": str(COA)}
    ]


def test_implicit_mode_uses_the_configured_prefixes() -> None:
    ha = home_agent()
    ba = register(ha, mr_bu(1))
    assert (ba.status, ba.mobile_router) == (0, True)
    assert ha.binding_cache.get(MR).prefixes == (MNP,)
    assert ha.prefix_table.counters["implicit_registrations"] == 1


def test_implicit_mode_without_configured_prefix_is_143() -> None:
    ha = home_agent()
    ba = register(ha, mr_bu(1), hoa=VMN)
    assert ba.status == BindingAckStatus.FORWARDING_SETUP_FAILED == 143
    assert VMN not in ha.binding_cache
    assert ha.counters["ba_status_143"] == 1


@pytest.mark.parametrize(("prefix", "status"), [
    (OTHER, 142),
    (IPv6Network("fe80::/64"), 141),
    (IPv6Network("ff0e::/64"), 141),
    (IPv6Network("2001:db8:6:100::/120"), 141),
    (IPv6Network("2001:db8:6::/64"), 141),  # the home link itself
])
def test_bad_prefixes_are_refused_and_nothing_is_routed(prefix: IPv6Network, status: int) -> None:
    ha = home_agent()
    ha.receive_binding_update(COA, MR, mr_bu(1, prefix), 0.0)
    ba = answer(ha)
    assert (ba.status, ba.lifetime) == (status, 0)
    assert MR not in ha.binding_cache
    assert ha.lookup(prefix.network_address.packed) is None
    assert ha.counters[f"ba_status_{status}"] == 1


def test_one_unauthorised_prefix_refuses_the_whole_bu() -> None:
    ha = home_agent()
    ha.receive_binding_update(COA, MR, mr_bu(1, MNP, OTHER), 0.0)
    assert answer(ha).status == 142
    assert ha.lookup(IPv6Address("2001:db8:6:100::1").packed) is None


def test_r_without_h_is_140() -> None:
    ha = home_agent()
    ha.receive_binding_update(COA, MR, mr_bu(1, MNP, home_registration=False), 0.0)
    assert answer(ha).status == BindingAckStatus.MOBILE_ROUTER_OPERATION_NOT_PERMITTED == 140
    assert MR not in ha.binding_cache


def test_flag_change_on_an_existing_binding_is_139_and_keeps_the_binding() -> None:
    ha = home_agent()
    register(ha, mr_bu(1, MNP))
    ha.receive_binding_update(COA_B, MR, mr_bu(2, mobile_router=False), 1.0)
    ba = answer(ha)
    assert ba.status == BindingAckStatus.REGISTRATION_TYPE_CHANGE_DISALLOWED == 139
    assert ha.binding_cache.get(MR).care_of_address == COA  # unchanged
    # and the other way: a host binding may not become a mobile router one
    ha.receive_binding_update(COA, VMN, mr_bu(1, mobile_router=False), 0.0)
    ha.dad_result(VMN, False, 0.0)
    answer(ha)
    ha.receive_binding_update(COA, VMN, mr_bu(2), 1.0)
    assert answer(ha).status == 139


def test_deregistration_and_expiry_remove_the_prefix_routes() -> None:
    ha = home_agent()
    register(ha, mr_bu(1, MNP))
    host = IPv6Address("2001:db8:6:100::42").packed
    ha.receive_binding_update(COA, MR, mr_bu(2, lifetime=0), 1.0)
    assert answer(ha).status == 0
    assert ha.lookup(host) is None
    register(ha, mr_bu(3, MNP), now=2.0)
    assert ha.lookup(host) == COA.packed
    ha.handle_timer(2.0 + 421)
    assert ha.lookup(host) is None
    assert ha.as_dict(500.0)["prefix_table"][0]["registered"] is False


def test_refresh_from_a_new_care_of_address_moves_the_prefix() -> None:
    ha = home_agent()
    register(ha, mr_bu(1, MNP))
    register(ha, mr_bu(2, MNP), coa=COA_B, now=5.0)
    assert ha.lookup(IPv6Address("2001:db8:6:100::42").packed) == COA_B.packed


def test_invalid_prefix_in_the_configuration_is_an_error() -> None:
    assert invalid_prefix_reason(MNP) is None
    with pytest.raises(ValueError, match="link-local"):
        PrefixTable({MR: [IPv6Network("fe80::/64")]})
    with pytest.raises(ValueError, match="home prefix"):
        PrefixTable({MR: [HOME]}, home_prefix=HOME)
