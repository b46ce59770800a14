"""MobileNode (RFC 6275 section 11), driven by a fake clock: every test is a loop over `now`."""

from __future__ import annotations

import math
import random
from ipaddress import IPv6Address, IPv6Network

import pytest

from netstack.mobility.bul import (
    BindingState,
    BindingTrigger,
    BindingUpdateListEntry,
    ProtocolError,
)
from netstack.mobility.events import (
    BindingAccepted,
    BindingDeregistered,
    BindingExpired,
    BindingRefused,
    ReturnedHome,
)
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.mobility.mobile_node import MobileNode
from netstack.wire.mh import (
    BindingAck,
    BindingAckStatus,
    BindingError,
    BindingRefreshAdvice,
    BindingRefreshRequest,
    BindingUpdate,
    MobileNetworkPrefix,
)

HOME = IPv6Network("2001:db8:6::/64")
HA = IPv6Address("2001:db8:6::1")
HOA = IPv6Address("2001:db8:6::1000")
COA_A = IPv6Address("2001:db8:a::10")
COA_B = IPv6Address("2001:db8:b::10")
COA_C = IPv6Address("2001:db8:c::10")
COA_D = IPv6Address("2001:db8:d::10")
FOREVER = math.inf


class FixedStart(random.Random):
    """An rng whose first (and only) sequence draw is a chosen value."""

    def __init__(self, value: int) -> None:
        super().__init__(0)
        self.value = value

    def randrange(self, *args: object, **kwargs: object) -> int:  # type: ignore[override]
        return self.value


def make_mn(start: int = 100, **kwargs: object) -> MobileNode:
    return MobileNode(HOA, HA, home_prefix=HOME, rng=FixedStart(start), **kwargs)  # type: ignore[arg-type]


def only_bu(mn: MobileNode) -> OutgoingMobilityMessage:
    out = mn.messages_to_send()
    assert len(out) == 1, out
    assert isinstance(out[0].message, BindingUpdate)
    return out[0]


def events(mn: MobileNode) -> list[object]:
    result = []
    while (event := mn.next_event()) is not None:
        result.append(event)
    return result


def ack(bu: OutgoingMobilityMessage, status: int = 0, lifetime: int | None = None, **kw: object) -> BindingAck:
    assert isinstance(bu.message, BindingUpdate)
    return BindingAck(
        status=status,
        sequence=bu.message.sequence,
        lifetime=bu.message.lifetime if lifetime is None else lifetime,
        **kw,  # type: ignore[arg-type]
    )


def registered(start: int = 100, now: float = 0.0) -> tuple[MobileNode, OutgoingMobilityMessage]:
    mn = make_mn(start)
    mn.attach(COA_A, FOREVER, now)
    bu = only_bu(mn)
    mn.receive_binding_ack(HA, ack(bu), now + 0.1)
    assert mn.binding_update_list.get(HA).state is BindingState.REGISTERED
    events(mn)
    return mn, bu


# ------------------------------------------------------------ sending the BU


def test_first_bu_is_a_home_registration_from_the_coa_with_hao() -> None:
    mn = make_mn(start=100)
    mn.attach(COA_A, FOREVER, 0.0)
    bu = only_bu(mn)
    assert (bu.src, bu.dst, bu.home_address, bu.routing_type2) == (COA_A, HA, HOA, None)
    assert bu.message.ack and bu.message.home_registration
    assert bu.message.sequence == 100
    assert bu.message.lifetime == 420
    assert not bu.message.mobile_router
    assert mn.binding_update_list.get(HA).state is BindingState.REGISTERING
    assert mn.tunnel_endpoint() is None


def test_retransmission_schedule_doubles_to_32s_with_fresh_sequence_numbers() -> None:
    mn = make_mn(start=100)
    mn.attach(COA_A, FOREVER, 0.0)
    sent = [(0.0, only_bu(mn).message.sequence)]
    while len(sent) < 10:
        now = mn.get_timer()
        assert now is not None
        mn.handle_timer(now)
        sent.append((now, only_bu(mn).message.sequence))
    gaps = [b[0] - a[0] for a, b in zip(sent, sent[1:], strict=False)]
    assert gaps == [1.5, 3, 6, 12, 24, 32, 32, 32, 32]
    assert [s for _, s in sent] == list(range(100, 110))
    assert mn.binding_update_list.get(HA).retransmissions == 9


def test_sequence_wraps_from_65535_to_0() -> None:
    mn = make_mn(start=65534)
    mn.attach(COA_A, FOREVER, 0.0)
    seqs = [only_bu(mn).message.sequence]
    for _ in range(3):
        mn.handle_timer(mn.get_timer())
        seqs.append(only_bu(mn).message.sequence)
    assert seqs == [65534, 65535, 0, 1]
    mn.receive_binding_ack(HA, BindingAck(status=0, sequence=1, lifetime=420), 20.0)
    assert mn.binding_update_list.get(HA).state is BindingState.REGISTERED


def test_random_initial_sequence_differs_between_rngs() -> None:
    starts = set()
    for seed in range(8):
        mn = MobileNode(HOA, HA, home_prefix=HOME, rng=random.Random(seed))
        mn.attach(COA_A, FOREVER, 0.0)
        starts.add(only_bu(mn).message.sequence)
    assert len(starts) > 4


# ------------------------------------------------------------ BA routine


@pytest.mark.parametrize("status", [0, 1])
def test_accepted_ba_sets_up_the_tunnel(status: int) -> None:
    mn = make_mn()
    mn.attach(COA_A, FOREVER, 0.0)
    bu = only_bu(mn)
    mn.receive_binding_ack(HA, ack(bu, status=status, lifetime=300), 0.2)
    assert events(mn) == [BindingAccepted(HA, HOA, COA_A, 300, bu.message.sequence, status)]
    entry = mn.binding_update_list.get(HA)
    assert entry.state is BindingState.REGISTERED
    assert entry.lifetime == 300
    assert entry.last_status == status
    assert mn.tunnel_endpoint() == (COA_A, HA)
    # lifetime counts from the BU's transmission (t=0), not the BA's arrival
    assert entry.expires_at == 300.0


def test_granted_lifetime_is_min_of_ba_and_requested() -> None:
    mn = make_mn()
    mn.attach(COA_A, FOREVER, 0.0)
    bu = only_bu(mn)
    mn.receive_binding_ack(HA, ack(bu, lifetime=5000), 0.2)
    (event,) = events(mn)
    assert isinstance(event, BindingAccepted)
    assert event.lifetime == 420


@pytest.mark.parametrize("status", [s for s in range(128, 144) if s != 135] + [200, 255])
def test_refused_ba_means_no_tunnel_and_no_retries(status: int) -> None:
    mn = make_mn()
    mn.attach(COA_A, FOREVER, 0.0)
    bu = only_bu(mn)
    mn.receive_binding_ack(HA, ack(bu, status=status, lifetime=0), 0.2)
    (event,) = events(mn)
    assert isinstance(event, BindingRefused)
    assert event.status == status
    entry = mn.binding_update_list.get(HA)
    assert entry.state is BindingState.REFUSED
    assert mn.tunnel_endpoint() is None
    assert mn.get_timer() is None
    mn.handle_timer(1000.0)
    assert mn.messages_to_send() == []
    try:
        expected = BindingAckStatus(status).name.lower().replace("_", " ")
    except ValueError:
        expected = f"status {status}"
    assert event.reason == expected == entry.reason


def test_refused_reason_is_human_readable() -> None:
    mn = make_mn()
    mn.attach(COA_A, FOREVER, 0.0)
    mn.receive_binding_ack(HA, ack(only_bu(mn), status=129, lifetime=0), 0.2)
    assert events(mn) == [BindingRefused(HA, 129, "administratively prohibited")]
    assert mn.as_dict(1.0)["binding_update_list"][0]["reason"] == "administratively prohibited"


def test_refusal_of_a_refresh_tears_the_tunnel_down() -> None:
    mn, _ = registered()
    mn.receive_binding_refresh_request(HA, BindingRefreshRequest(), 10.0)
    bu = only_bu(mn)
    mn.receive_binding_ack(HA, ack(bu, status=129, lifetime=0), 10.1)
    assert mn.tunnel_endpoint() is None
    assert isinstance(events(mn)[0], BindingRefused)


def test_status_135_resynchronises_to_the_ha_sequence() -> None:
    mn = make_mn(start=100)
    mn.attach(COA_A, FOREVER, 0.0)
    only_bu(mn)
    mn.receive_binding_ack(HA, BindingAck(status=135, sequence=5000, lifetime=0), 0.2)
    bu = only_bu(mn)  # resent at once
    assert bu.message.sequence == 5001
    assert mn.binding_update_list.get(HA).state is BindingState.REGISTERING
    assert events(mn) == []
    mn.receive_binding_ack(HA, ack(bu), 0.3)
    assert isinstance(events(mn)[0], BindingAccepted)
    assert mn.counters["ba_resynchronised"] == 1


def test_status_135_across_the_wrap() -> None:
    mn = make_mn(start=10)
    mn.attach(COA_A, FOREVER, 0.0)
    only_bu(mn)
    mn.receive_binding_ack(HA, BindingAck(status=135, sequence=65535, lifetime=0), 0.2)
    assert only_bu(mn).message.sequence == 0


def test_ba_with_wrong_sequence_is_ignored_and_counted() -> None:
    mn = make_mn(start=100)
    mn.attach(COA_A, FOREVER, 0.0)
    bu = only_bu(mn)
    mn.receive_binding_ack(HA, BindingAck(status=0, sequence=99, lifetime=420), 0.2)
    mn.receive_binding_ack(HA, BindingAck(status=129, sequence=101, lifetime=0), 0.2)
    assert mn.counters["ba_sequence_mismatch"] == 2
    assert events(mn) == []
    assert mn.binding_update_list.get(HA).state is BindingState.REGISTERING
    mn.receive_binding_ack(HA, ack(bu), 0.3)
    assert mn.tunnel_endpoint() == (COA_A, HA)


def test_ba_for_an_earlier_transmission_of_the_same_attempt_is_accepted() -> None:
    mn = make_mn(start=100)
    mn.attach(COA_A, FOREVER, 0.0)
    first = only_bu(mn)
    mn.handle_timer(1.5)
    only_bu(mn)  # the retransmission, one sequence number later
    mn.receive_binding_ack(HA, ack(first), 1.6)  # late answer to the first BU
    assert mn.counters["ba_for_earlier_transmission"] == 1
    assert mn.binding_update_list.get(HA).state is BindingState.REGISTERED
    assert mn.tunnel_endpoint() == (COA_A, HA)


def test_ba_for_a_bu_of_a_previous_attempt_is_ignored() -> None:
    mn = make_mn(start=100)
    mn.attach(COA_A, FOREVER, 0.0)
    old = only_bu(mn)
    mn.attach(COA_B, FOREVER, 0.5)  # moved: a new attempt with the new CoA
    new = only_bu(mn)
    mn.receive_binding_ack(HA, ack(old), 0.6)
    assert mn.counters["ba_sequence_mismatch"] == 1
    assert mn.tunnel_endpoint() is None
    mn.receive_binding_ack(HA, ack(new), 0.7)
    assert mn.tunnel_endpoint() == (COA_B, HA)


def test_ba_from_unknown_source_or_when_nothing_outstanding_is_ignored() -> None:
    mn, bu = registered()
    mn.receive_binding_ack(IPv6Address("2001:db8:9::1"), ack(bu), 1.0)
    mn.receive_binding_ack(HA, ack(bu), 1.0)  # duplicate: nothing outstanding
    assert mn.counters["ba_unknown_source"] == 1
    assert mn.counters["ba_unexpected"] == 1
    assert events(mn) == []


def test_unprotected_ba_ignored_when_protection_required() -> None:
    mn = make_mn(require_protection=True)
    mn.attach(COA_A, FOREVER, 0.0)
    bu = only_bu(mn)
    mn.receive_binding_ack(HA, ack(bu), 0.1)
    assert mn.counters["ba_unprotected"] == 1
    mn.receive_binding_ack(HA, ack(bu), 0.1, protected=True)
    assert mn.tunnel_endpoint() == (COA_A, HA)


# ------------------------------------------------------------ lifetime, refresh


def test_refresh_before_expiry_keeps_the_tunnel() -> None:
    mn, _ = registered(now=0.0)
    entry = mn.binding_update_list.get(HA)
    assert mn.get_timer() == pytest.approx(420 * 0.85)
    now = mn.get_timer()
    mn.handle_timer(now)
    bu = only_bu(mn)
    assert bu.message.lifetime == 420
    assert entry.state is BindingState.REFRESHING
    assert mn.tunnel_endpoint() == (COA_A, HA)
    mn.receive_binding_ack(HA, ack(bu), now + 0.1)
    assert entry.state is BindingState.REGISTERED
    assert entry.expires_at == pytest.approx(now + 420)
    assert [type(e) for e in events(mn)] == [BindingAccepted]


def test_binding_refresh_advice_schedules_the_refresh() -> None:
    mn = make_mn()
    mn.attach(COA_A, FOREVER, 0.0)
    bu = only_bu(mn)
    mn.receive_binding_ack(HA, ack(bu, options=(BindingRefreshAdvice(100),)), 0.1)
    assert mn.get_timer() == 100.0
    mn.handle_timer(100.0)
    assert only_bu(mn).message.sequence == bu.message.sequence + 1


def test_lost_refresh_retries_then_expires_and_keeps_registering() -> None:
    mn, _ = registered(now=0.0)
    now = mn.get_timer()  # 357
    mn.handle_timer(now)
    sends = [now]
    only_bu(mn)
    expired_at = None
    while now < 500:
        now = mn.get_timer()
        mn.handle_timer(now)
        sends.extend(now for _ in mn.messages_to_send())
        for event in events(mn):
            assert event == BindingExpired(HA)
            expired_at = now
    assert expired_at == 420.0
    assert mn.binding_update_list.get(HA).state is BindingState.REGISTERING
    assert mn.tunnel_endpoint() is None
    # refresh timeouts start at INITIAL_BINDACK_TIMEOUT (1 s): 357, 358, 360, 364, 372, 388, 420...
    assert [round(b - a, 6) for a, b in zip(sends, sends[1:], strict=False)][:6] == [1, 2, 4, 8, 16, 32]


def test_lifetime_never_above_the_coa_valid_lifetime() -> None:
    mn = make_mn()
    mn.attach(COA_A, 103.0, 0.0)
    bu = only_bu(mn)
    assert bu.message.lifetime == 100  # 103 s left, rounded down to the 4 s wire unit
    mn.receive_binding_ack(HA, ack(bu, lifetime=420), 0.1)
    (event,) = events(mn)
    assert event.lifetime == 100
    assert mn.binding_update_list.get(HA).expires_at <= 103.0


def test_coa_lifetime_shrinking_below_binding_triggers_reregistration() -> None:
    mn, _ = registered(now=0.0)
    mn.attach(COA_A, 50.0, 10.0)
    bu = only_bu(mn)
    assert bu.message.lifetime == 40


def test_coa_with_no_lifetime_left_sends_nothing() -> None:
    mn = make_mn()
    mn.attach(COA_A, 2.0, 0.0)
    assert mn.messages_to_send() == []
    assert mn.counters["coa_lifetime_exhausted"] == 1


# ------------------------------------------------------------ moves, link loss, rate limit


def test_move_while_registering_sends_new_bu_and_restarts_backoff() -> None:
    mn = make_mn(start=100)
    mn.attach(COA_A, FOREVER, 0.0)
    only_bu(mn)
    mn.handle_timer(1.5)
    assert only_bu(mn).message.sequence == 101
    mn.attach(COA_B, FOREVER, 2.0)
    bu = only_bu(mn)
    assert (bu.src, bu.message.sequence) == (COA_B, 102)
    assert mn.get_timer() == 3.5  # backoff restarted at 1.5 s
    mn.receive_binding_ack(HA, BindingAck(status=0, sequence=101, lifetime=420), 2.1)
    assert mn.tunnel_endpoint() is None  # answer to the old CoA's BU is ignored
    mn.receive_binding_ack(HA, ack(bu), 2.2)
    assert mn.tunnel_endpoint() == (COA_B, HA)


def test_move_while_registered_uses_one_second_timeout_and_drops_old_tunnel() -> None:
    mn, _ = registered(now=0.0)
    mn.attach(COA_B, FOREVER, 50.0)
    bu = only_bu(mn)
    assert bu.src == COA_B
    assert mn.tunnel_endpoint() is None
    assert mn.get_timer() == 51.0
    mn.receive_binding_ack(HA, ack(bu), 50.1)
    assert mn.tunnel_endpoint() == (COA_B, HA)
    (event,) = events(mn)
    assert event.care_of_address == COA_B


def test_same_coa_attach_again_is_idempotent() -> None:
    mn, _ = registered(now=0.0)
    mn.attach(COA_A, FOREVER, 5.0)
    assert mn.messages_to_send() == []
    assert mn.binding_update_list.get(HA).state is BindingState.REGISTERED


def test_detach_stops_retransmission_until_attach() -> None:
    mn = make_mn()
    mn.attach(COA_A, FOREVER, 0.0)
    only_bu(mn)
    mn.detach(0.5)
    assert mn.get_timer() is None
    mn.handle_timer(100.0)
    assert mn.messages_to_send() == []
    assert len(mn.binding_update_list) == 1
    mn.attach(COA_A, FOREVER, 200.0)
    bu = only_bu(mn)
    assert bu.src == COA_A
    assert mn.get_timer() == 201.5


def test_rate_limit_defers_the_fourth_bu_within_a_second() -> None:
    mn = make_mn()
    for i, coa in enumerate((COA_A, COA_B, COA_C)):
        mn.attach(coa, FOREVER, i * 0.1)
        only_bu(mn)
    mn.attach(COA_D, FOREVER, 0.3)
    assert mn.messages_to_send() == []
    assert mn.counters["bu_rate_limited"] == 1
    assert mn.get_timer() == 1.0
    mn.handle_timer(1.0)
    assert only_bu(mn).src == COA_D


def test_binding_refresh_request_sends_bu_now() -> None:
    mn, first = registered(now=0.0)
    mn.receive_binding_refresh_request(HA, BindingRefreshRequest(), 30.0)
    bu = only_bu(mn)
    assert bu.message.sequence == first.message.sequence + 1
    assert mn.binding_update_list.get(HA).state is BindingState.REFRESHING
    mn.receive_binding_refresh_request(IPv6Address("2001:db8:9::9"), BindingRefreshRequest(), 30.0)
    assert mn.counters["brr_ignored"] == 1


# ------------------------------------------------------------ Binding Error


def test_binding_error_status_1_removes_the_bul_entry() -> None:
    mn, _ = registered()
    mn.receive_binding_error(HA, BindingError(status=1, home_address=HOA), 5.0)
    assert events(mn) == [BindingExpired(HA)]
    assert len(mn.binding_update_list) == 0
    assert mn.tunnel_endpoint() is None
    assert mn.get_timer() is None
    # the daemon re-registers by attaching again
    mn.attach(COA_A, FOREVER, 6.0)
    assert only_bu(mn).src == COA_A


def test_binding_error_for_other_binding_or_status_2_is_ignored() -> None:
    mn, _ = registered()
    mn.receive_binding_error(HA, BindingError(status=1, home_address=IPv6Address("2001:db8:6::99")), 5.0)
    mn.receive_binding_error(COA_B, BindingError(status=1, home_address=HOA), 5.0)
    mn.receive_binding_error(HA, BindingError(status=2, home_address=HOA), 5.0)
    assert mn.counters["be_unknown_binding"] == 2
    assert mn.counters["be_status_2"] == 1
    assert mn.tunnel_endpoint() == (COA_A, HA)


# ------------------------------------------------------------ returning home


def test_returning_home_deregisters_from_the_home_address() -> None:
    mn, _ = registered(now=0.0)
    mn.attach(HOA, FOREVER, 100.0)
    bu = only_bu(mn)
    assert (bu.src, bu.dst, bu.home_address) == (HOA, HA, None)
    assert bu.message.lifetime == 0
    assert mn.at_home
    assert mn.tunnel_endpoint() is None
    assert mn.binding_update_list.get(HA).state is BindingState.DEREGISTERING
    mn.receive_binding_ack(HA, ack(bu, lifetime=0), 100.1)
    assert events(mn) == [BindingDeregistered(HA), ReturnedHome(HOA)]
    assert len(mn.binding_update_list) == 0
    assert mn.get_timer() is None


def test_returning_home_gives_up_after_deregistration_retries() -> None:
    mn, _ = registered(now=0.0)
    mn.attach(HOA, FOREVER, 100.0)
    sends = [100.0]
    only_bu(mn)
    while (now := mn.get_timer()) is not None:
        mn.handle_timer(now)
        sends.extend(now for _ in mn.messages_to_send())
        if (evs := events(mn)):
            assert evs == [ReturnedHome(HOA)]
            assert now == 115.0  # 1 + 2 + 4 + 8
    assert sends == [100.0, 101.0, 103.0, 107.0]
    assert mn.counters["deregistration_gave_up"] == 1
    assert len(mn.binding_update_list) == 0


def test_attach_at_home_without_binding_returns_home_at_once() -> None:
    mn = make_mn()
    mn.attach(IPv6Address("2001:db8:6::abcd"), FOREVER, 0.0)
    assert mn.messages_to_send() == []
    assert events(mn) == [ReturnedHome(HOA)]
    assert mn.at_home


def test_leaving_home_again_during_deregistration_registers() -> None:
    mn, _ = registered(now=0.0)
    mn.attach(HOA, FOREVER, 100.0)
    only_bu(mn)
    mn.attach(COA_B, FOREVER, 100.5)
    bu = only_bu(mn)
    assert bu.message.lifetime == 420 and bu.src == COA_B
    assert mn.binding_update_list.get(HA).state is BindingState.REGISTERING


# ------------------------------------------------------------ table 210, NEMO, errors


def test_as_dict_has_the_table_210_columns() -> None:
    mn, bu = registered(now=0.0)
    status = mn.as_dict(100.0)
    (row,) = status["binding_update_list"]
    assert row["destination"] == str(HA)
    assert row["home_address"] == str(HOA)
    assert row["care_of_address"] == str(COA_A)
    assert row["lifetime"] == 320
    assert row["sequence"] == bu.message.sequence
    assert row["state"] == "registered"
    assert row["last_status"] == 0
    assert row["reason"] == "accepted"
    assert status["at_home"] is False


def test_mobile_router_sends_r_flag_and_prefixes() -> None:
    prefix = IPv6Network("2001:db8:6:100::/64")
    mn = make_mn(mobile_network_prefixes=(prefix,))
    mn.attach(COA_A, FOREVER, 0.0)
    bu = only_bu(mn)
    assert bu.message.mobile_router
    assert bu.message.options == (MobileNetworkPrefix(prefix),)


def test_disallowed_transition_is_a_protocol_error() -> None:
    entry = BindingUpdateListEntry(HA, HOA, COA_A)
    with pytest.raises(ProtocolError, match="not allowed in state 'idle'"):
        entry.transition(BindingTrigger.ACCEPTED)
    assert entry.state is BindingState.IDLE


def test_home_address_outside_home_prefix_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        MobileNode(IPv6Address("2001:db8:7::1"), HA, home_prefix=HOME)
