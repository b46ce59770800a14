"""HomeAgent (RFC 6275 section 10, RFC 3963 prefixes), fake clock."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

import pytest

from netstack.mobility.events import (
    BindingCreated,
    BindingDeleted,
    BindingUpdated,
    DadRequested,
)
from netstack.mobility.home_agent import DEFAULT_POLICY, HomeAgent, HomeAgentPolicy
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.wire.mh import (
    BindingAck,
    BindingRefreshAdvice,
    BindingUpdate,
    MobileNetworkPrefix,
)

HOME = IPv6Network("2001:db8:6::/64")
HA = IPv6Address("2001:db8:6::1")
HOA = IPv6Address("2001:db8:6::1000")
HOA2 = IPv6Address("2001:db8:6::2000")
COA_A = IPv6Address("2001:db8:a::10")
COA_B = IPv6Address("2001:db8:b::10")
MNP = IPv6Network("2001:db8:6:100::/64")


def bu(seq: int, lifetime: int = 420, **kw: object) -> BindingUpdate:
    return BindingUpdate(sequence=seq, lifetime=lifetime, **kw)  # type: ignore[arg-type]


def events(ha: HomeAgent) -> list[object]:
    result = []
    while (event := ha.next_event()) is not None:
        result.append(event)
    return result


def only_ba(ha: HomeAgent) -> tuple[OutgoingMobilityMessage, BindingAck]:
    out = ha.messages_to_send()
    assert len(out) == 1, out
    assert isinstance(out[0].message, BindingAck)
    return out[0], out[0].message


def bound(policy: HomeAgentPolicy = DEFAULT_POLICY, seq: int = 10, now: float = 0.0) -> HomeAgent:
    ha = HomeAgent(HA, home_prefix=HOME, policy=policy)
    ha.receive_binding_update(COA_A, HOA, bu(seq), now)
    assert events(ha) == [DadRequested(HOA)]
    ha.dad_result(HOA, False, now + 1.0)
    assert events(ha) == [BindingCreated(HOA, COA_A)]
    only_ba(ha)
    return ha


def test_new_home_address_waits_for_dad_then_acks() -> None:
    ha = HomeAgent(HA, home_prefix=HOME)
    ha.receive_binding_update(COA_A, HOA, bu(10), 0.0)
    assert events(ha) == [DadRequested(HOA)]
    assert ha.messages_to_send() == []
    assert ha.lookup(HOA.packed) is None
    ha.dad_result(HOA, False, 1.0)
    assert events(ha) == [BindingCreated(HOA, COA_A)]
    out, ba = only_ba(ha)
    assert (out.src, out.dst, out.routing_type2, out.home_address) == (HA, COA_A, HOA, None)
    assert (ba.status, ba.sequence, ba.lifetime) == (0, 10, 420)
    assert ha.lookup(HOA.packed) == COA_A.packed
    entry = ha.binding_cache.get(HOA)
    assert (entry.care_of_address, entry.sequence, entry.expires_at) == (COA_A, 10, 420.0)


def test_duplicate_home_address_gets_134_and_no_binding() -> None:
    ha = HomeAgent(HA, home_prefix=HOME)
    ha.receive_binding_update(COA_A, HOA, bu(10), 0.0)
    events(ha)
    ha.dad_result(HOA, True, 1.0)
    _, ba = only_ba(ha)
    assert ba.status == 134
    assert len(ha.binding_cache) == 0
    assert events(ha) == []


def test_repeated_bu_during_dad_keeps_newest_and_asks_dad_once() -> None:
    ha = HomeAgent(HA, home_prefix=HOME)
    ha.receive_binding_update(COA_A, HOA, bu(10), 0.0)
    ha.receive_binding_update(COA_A, HOA, bu(11), 0.5)
    assert events(ha) == [DadRequested(HOA)]
    ha.dad_result(HOA, False, 1.0)
    _, ba = only_ba(ha)
    assert ba.sequence == 11


def test_unexpected_dad_result_is_counted() -> None:
    ha = HomeAgent(HA, home_prefix=HOME)
    ha.dad_result(HOA, False, 1.0)
    assert ha.counters["dad_result_unexpected"] == 1
    assert ha.messages_to_send() == []


def test_update_existing_binding_answers_at_once() -> None:
    ha = bound()
    ha.receive_binding_update(COA_B, HOA, bu(11), 50.0)
    assert events(ha) == [BindingUpdated(HOA, COA_B)]
    out, ba = only_ba(ha)
    assert (out.dst, ba.status, ba.sequence) == (COA_B, 0, 11)
    assert ha.lookup(HOA.packed) == COA_B.packed


# 10 + 32768 is newer per RFC 6275 9.5.1 (TAHI BU_SEQ_MAX_A1); 10 + 32769 is the first old one
@pytest.mark.parametrize("seq", [10, 9, 10 - 1000, 10 + 32769])
def test_stale_sequence_gets_135_with_cached_sequence(seq: int) -> None:
    ha = bound(seq=10)
    ha.receive_binding_update(COA_B, HOA, bu(seq % 65536), 5.0)
    _, ba = only_ba(ha)
    assert (ba.status, ba.sequence) == (135, 10)
    assert ha.lookup(HOA.packed) == COA_A.packed


def test_sequence_wrap_around_is_accepted() -> None:
    ha = bound(seq=65535)
    ha.receive_binding_update(COA_B, HOA, bu(0), 5.0)
    _, ba = only_ba(ha)
    assert (ba.status, ba.sequence) == (0, 0)
    assert ha.binding_cache.get(HOA).sequence == 0


def test_lifetime_capped_by_policy() -> None:
    ha = HomeAgent(HA, home_prefix=HOME, policy=HomeAgentPolicy(max_lifetime=202))
    ha.receive_binding_update(COA_A, HOA, bu(1, lifetime=1000), 0.0)
    ha.dad_result(HOA, False, 0.0)
    _, ba = only_ba(ha)
    assert ba.lifetime == 200  # capped, rounded to the 4 s wire unit


def test_binding_refresh_advice_option() -> None:
    ha = HomeAgent(HA, home_prefix=HOME, policy=HomeAgentPolicy(refresh_interval=60))
    ha.receive_binding_update(COA_A, HOA, bu(1), 0.0)
    ha.dad_result(HOA, False, 0.0)
    _, ba = only_ba(ha)
    assert ba.options == (BindingRefreshAdvice(60),)


def test_missing_h_flag_gets_131() -> None:
    ha = HomeAgent(HA, home_prefix=HOME)
    ha.receive_binding_update(COA_A, HOA, bu(1, home_registration=False), 0.0)
    _, ba = only_ba(ha)
    assert ba.status == 131
    assert events(ha) == []


def test_home_address_outside_prefix_gets_132() -> None:
    ha = HomeAgent(HA, home_prefix=HOME)
    foreign = IPv6Address("2001:db8:7::1000")
    ha.receive_binding_update(COA_A, foreign, bu(1), 0.0)
    out, ba = only_ba(ha)
    assert ba.status == 132
    assert out.routing_type2 == foreign


@pytest.mark.parametrize(
    "policy",
    [
        HomeAgentPolicy(refused_home_addresses=frozenset({HOA})),
        HomeAgentPolicy(allowed_home_addresses=frozenset({HOA2})),
    ],
)
def test_policy_refusal_gets_129(policy: HomeAgentPolicy) -> None:
    ha = HomeAgent(HA, home_prefix=HOME, policy=policy)
    ha.receive_binding_update(COA_A, HOA, bu(1), 0.0)
    _, ba = only_ba(ha)
    assert ba.status == 129
    assert len(ha.binding_cache) == 0


def test_allowed_list_admits_listed_address() -> None:
    ha = HomeAgent(HA, home_prefix=HOME, policy=HomeAgentPolicy(allowed_home_addresses=frozenset({HOA})))
    ha.receive_binding_update(COA_A, HOA, bu(1), 0.0)
    assert events(ha) == [DadRequested(HOA)]


def test_require_protection_drops_unprotected_silently() -> None:
    ha = HomeAgent(HA, home_prefix=HOME, policy=HomeAgentPolicy(require_protection=True))
    ha.receive_binding_update(COA_A, HOA, bu(1), 0.0)
    assert ha.messages_to_send() == []
    assert events(ha) == []
    assert ha.counters["bu_unprotected_dropped"] == 1
    ha.receive_binding_update(COA_A, HOA, bu(1), 0.0, protected=True)
    assert events(ha) == [DadRequested(HOA)]


def test_binding_expires_via_timer() -> None:
    ha = bound(now=0.0)
    assert ha.get_timer() == 420.0
    ha.handle_timer(419.9)
    assert ha.lookup(HOA.packed) == COA_A.packed
    ha.handle_timer(420.0)
    assert events(ha) == [BindingDeleted(HOA)]
    assert ha.lookup(HOA.packed) is None
    assert ha.get_timer() is None


def test_refresh_moves_expiry_and_old_deadline_is_stale() -> None:
    ha = bound(now=0.0)
    ha.receive_binding_update(COA_A, HOA, bu(11), 300.0)
    events(ha)
    only_ba(ha)
    assert ha.get_timer() == 720.0
    ha.handle_timer(420.0)
    assert events(ha) == []
    assert ha.lookup(HOA.packed) == COA_A.packed


def test_deregistration_with_lifetime_zero() -> None:
    ha = bound()
    ha.receive_binding_update(COA_A, HOA, bu(11, lifetime=0), 10.0)
    assert events(ha) == [BindingDeleted(HOA)]
    _, ba = only_ba(ha)
    assert (ba.status, ba.sequence, ba.lifetime) == (0, 11, 0)
    assert ha.lookup(HOA.packed) is None
    assert ha.get_timer() is None


def test_deregistration_from_home_coa_equals_hoa() -> None:
    ha = bound()
    ha.receive_binding_update(HOA, None, bu(11, lifetime=0), 10.0)
    assert events(ha) == [BindingDeleted(HOA)]
    out, ba = only_ba(ha)
    assert (out.dst, out.routing_type2, ba.status) == (HOA, None, 0)


def test_deregistration_without_binding_gets_133() -> None:
    ha = HomeAgent(HA, home_prefix=HOME)
    ha.receive_binding_update(HOA, None, bu(5, lifetime=0), 0.0)
    _, ba = only_ba(ha)
    assert ba.status == 133


def test_deregistration_with_stale_sequence_gets_135() -> None:
    ha = bound(seq=10)
    ha.receive_binding_update(HOA, None, bu(10, lifetime=0), 1.0)
    _, ba = only_ba(ha)
    assert (ba.status, ba.sequence) == (135, 10)
    assert HOA in ha.binding_cache


def test_no_ack_flag_means_no_ba_on_success() -> None:
    ha = bound(seq=10)
    ha.receive_binding_update(COA_B, HOA, bu(11, ack=False), 1.0)
    assert ha.messages_to_send() == []
    assert ha.lookup(HOA.packed) == COA_B.packed


def test_mobile_router_prefixes_are_routed() -> None:
    ha = HomeAgent(HA, home_prefix=HOME)
    ha.receive_binding_update(
        COA_A, HOA, bu(1, mobile_router=True, options=(MobileNetworkPrefix(MNP),)), 0.0
    )
    ha.dad_result(HOA, False, 0.0)
    _, ba = only_ba(ha)
    assert ba.mobile_router and ba.status == 0
    assert ha.binding_cache.get(HOA).prefixes == (MNP,)
    inside = IPv6Address("2001:db8:6:100::42").packed
    assert ha.lookup(inside) == COA_A.packed
    assert ha.lookup(IPv6Address("2001:db8:6:101::42").packed) is None
    ha.receive_binding_update(COA_A, HOA, bu(2, lifetime=0), 1.0)
    assert ha.lookup(inside) is None


def test_mobile_router_refusals_140_and_142() -> None:
    ha = HomeAgent(HA, home_prefix=HOME, policy=HomeAgentPolicy(allow_mobile_routers=False))
    ha.receive_binding_update(COA_A, HOA, bu(1, mobile_router=True), 0.0)
    assert only_ba(ha)[1].status == 140
    ha = HomeAgent(HA, home_prefix=HOME, policy=HomeAgentPolicy(authorized_prefixes={HOA: frozenset()}))
    ha.receive_binding_update(COA_A, HOA, bu(1, mobile_router=True, options=(MobileNetworkPrefix(MNP),)), 0.0)
    assert only_ba(ha)[1].status == 142


def test_as_dict_lists_bindings() -> None:
    ha = bound()
    status = ha.as_dict(100.0)
    (row,) = status["binding_cache"]
    assert row["home_address"] == str(HOA)
    assert row["care_of_address"] == str(COA_A)
    assert row["lifetime"] == 320
    assert row["sequence"] == 10
