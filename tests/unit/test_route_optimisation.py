"""Return routability and correspondent registration (RFC 6275 5.2, 9, 11.6-11.7), sans-IO.

The mobile node's `CorrespondentRegistrations` and the `Correspondent` talk through real
packets (build_mobility_packet / parse_ipv6_packet), driven by a fake clock.
"""

from __future__ import annotations

import json
import random
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from netstack.mobility.correspondent import Correspondent
from netstack.mobility.correspondent_entry import RouteState
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.mobility.return_routability import (
    NonceTable,
    binding_management_key,
    care_of_keygen_token,
    home_keygen_token,
    sign,
    verify,
)
from netstack.mobility.route_optimisation import (
    CorrespondentRegistrations,
    RouteOptimised,
    RouteTunnelled,
)
from netstack.wire.ipv6 import parse_ipv6_packet
from netstack.wire.mh import (
    BindingAck,
    BindingError,
    BindingRefreshRequest,
    BindingUpdate,
    CareOfTest,
    HomeTest,
    NonceIndices,
)
from netstack.wire.mh_codec import (
    build_mobility_packet,
    decode_mobility_packet,
    encode_mobility_header,
)

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "rr_vectors.json"
if not VECTORS.exists():
    VECTORS = Path("/work/shared/testdata/rr_vectors.json")

HOA = IPv6Address("2001:db8:6::1000")
HA = IPv6Address("2001:db8:6::1")
HOME = IPv6Network("2001:db8:6::/64")
CN = IPv6Address("2001:db8:8::1001")
COA_B = IPv6Address("2001:db8:b::5")
COA_A = IPv6Address("2001:db8:a::7")


# ---------------------------------------------------------------- RFC 6275 5.2.5 / 5.2.6 vectors


def test_known_answer_vectors() -> None:
    for case in json.loads(VECTORS.read_text())["cases"]:
        kcn = bytes.fromhex(case["kcn"])
        hoa, coa = IPv6Address(case["home_address"]), IPv6Address(case["care_of_address"])
        cn = IPv6Address(case["correspondent"])
        home = home_keygen_token(kcn, hoa, bytes.fromhex(case["home_nonce"]))
        care_of = care_of_keygen_token(kcn, coa, bytes.fromhex(case["care_of_nonce"]))
        assert home.hex() == case["home_keygen_token"]
        assert care_of.hex() == case["care_of_keygen_token"]
        kbm = binding_management_key(home, care_of)
        assert kbm.hex() == case["kbm"]
        bu = BindingUpdate(sequence=1, lifetime=40, ack=True, home_registration=False,
                           options=(NonceIndices(1, 2),))
        signed = sign(bu, kbm, coa, cn)
        assert signed.options[-1].authenticator.hex() == case["authenticator"]
        mh = encode_mobility_header(signed, hoa, cn)
        assert mh[:-12].hex()[:8] == case["mh_data_for_authenticator"][:8]
        assert verify(mh, kbm, coa, cn)
        assert not verify(mh, bytes(20), coa, cn)


def test_nonce_table_expires_and_rotates() -> None:
    table = NonceTable(random.Random(1), size=4, lifetime=240)
    index, nonce = table.current(0.0)
    assert table.current(10.0) == (index, nonce)  # same nonce within the interval
    later, _ = table.current(61.0)
    assert later != index
    assert table.lookup(index, 200.0) == nonce
    assert table.lookup(index, 241.0) is None  # MAX_NONCE_LIFETIME
    assert table.lookup((index + 1000) & 0xFFFF, 1.0) is None


# ---------------------------------------------------------------- the two ends together


class Net:
    """Carries the messages of both ends as real packets; the CN sees them as the MN sends."""

    def __init__(self) -> None:
        self.mn = CorrespondentRegistrations(HOA, HA, HOME, rng=random.Random(7))
        self.cn = Correspondent(CN, rng=random.Random(9))
        self.events: list[object] = []
        self.drop_to_cn = False

    def pump(self, now: float) -> list[OutgoingMobilityMessage]:
        """Deliver everything in flight until quiet; returns what the CN sent."""
        from_cn: list[OutgoingMobilityMessage] = []
        for _ in range(10):
            out = self.mn.messages_to_send()
            back = self.cn.messages_to_send()
            if not out and not back:
                break
            for m in out:
                if not self.drop_to_cn:
                    self.cn.receive_mobility(_parse(m), now)
            for m in back:
                from_cn.append(m)
                parsed = _parse(m)
                self.mn.receive(parsed, decode_mobility_packet(parsed), now)
        while (event := self.mn.next_event()) is not None:
            self.events.append(event)
        return from_cn


def _parse(m: OutgoingMobilityMessage):
    return parse_ipv6_packet(build_mobility_packet(m.src, m.dst, m.message,
                                                   home_address=m.home_address,
                                                   routing_type2=m.routing_type2))


def _registered(net: Net, now: float = 0.0) -> None:
    net.mn.home_registered(COA_B, now + 420, now)
    assert net.mn.want(CN, now)
    sent = net.mn.messages_to_send()
    # HoTI from the home address (through the tunnel), CoTI from the CoA, together
    assert {(m.src, type(m.message).__name__) for m in sent} == {
        (HOA, "HomeTestInit"), (COA_B, "CareOfTestInit")}
    for m in sent:
        net.cn.receive_mobility(_parse(m), now)
    net.pump(now)


def test_rr_then_bu_then_direct_path() -> None:
    net = Net()
    _registered(net)
    entry = net.mn.entries[CN]
    assert entry.state is RouteState.REGISTERED
    assert entry.direct and entry.lifetime == 420
    assert [type(e) for e in net.events] == [RouteOptimised]
    binding = net.cn.bindings[HOA.packed]
    assert binding.care_of_address == COA_B
    assert net.cn.counters["binding_created"] == 1
    row = net.mn.as_list(1.0)[0]
    assert row["destination"] == str(CN) and row["path"] == "direct"
    assert row["care_of_address"] == str(COA_B) and row["state"] == "registered"


def test_move_redoes_only_the_care_of_test() -> None:
    net = Net()
    _registered(net)
    net.mn.home_registered(COA_A, 500.0, 30.0)
    sent = net.mn.messages_to_send()
    assert [type(m.message).__name__ for m in sent] == ["CareOfTestInit"]  # token reuse
    assert isinstance(net.mn.next_event(), RouteTunnelled)  # tunnel at once
    for m in sent:
        net.cn.receive_mobility(_parse(m), 30.0)
    net.pump(30.0)
    assert net.cn.bindings[HOA.packed].care_of_address == COA_A
    assert isinstance(net.events[-1], RouteOptimised)
    assert net.events[-1].inserter.care_of_address == COA_A.packed


def test_stale_home_token_redoes_both_tests() -> None:
    net = Net()
    _registered(net)
    net.mn.home_registered(COA_A, 1000.0, 211.0)  # MAX_TOKEN_LIFETIME 210 s
    names = sorted(type(m.message).__name__ for m in net.mn.messages_to_send())
    assert names == ["CareOfTestInit", "HomeTestInit"]


def test_unanswered_tests_mark_unsupported_and_retry_later() -> None:
    net = Net()
    net.mn.home_registered(COA_B, 420.0, 0.0)
    net.mn.want(CN, 0.0)
    net.mn.messages_to_send()
    now = 0.0
    while (timer := net.mn.get_timer()) is not None and timer < 100:
        now = timer
        net.mn.handle_timer(now)
        net.mn.messages_to_send()
    entry = net.mn.entries[CN]
    assert entry.state is RouteState.UNSUPPORTED and entry.reason == "no answer"
    assert now == pytest.approx(7.0)  # sent at 0, 1, 3; given up at 7
    assert net.mn.want(CN, now)  # remembered: no new RR
    assert net.mn.messages_to_send() == []
    net.mn.handle_timer(now + 120.0)
    assert CN not in net.mn.entries


def test_parameter_problem_marks_unsupported() -> None:
    net = Net()
    net.mn.home_registered(COA_B, 420.0, 0.0)
    net.mn.want(CN, 0.0)
    net.mn.receive_parameter_problem(CN, 0.1)
    assert net.mn.entries[CN].state is RouteState.UNSUPPORTED


def test_binding_error_after_cn_restart_falls_back_and_recovers() -> None:
    net = Net()
    _registered(net)
    net.cn = Correspondent(CN, rng=random.Random(99))  # restart: new Kcn, no bindings
    net.cn.home_address_without_binding(COA_B.packed, HOA.packed, 5.0)
    (be,) = net.cn.messages_to_send()
    assert isinstance(be.message, BindingError) and be.message.status == 1 and be.dst == COA_B
    parsed = _parse(be)
    net.mn.receive(parsed, decode_mobility_packet(parsed), 5.0)
    net.pump(5.0)
    assert CN not in net.mn.entries
    assert isinstance(net.events[-1], RouteTunnelled)
    assert net.mn.want(CN, 5.1)  # the next packet: RR again (new Kcn: both tests)
    net.pump(5.1)
    assert net.mn.entries[CN].state is RouteState.REGISTERED


def test_refresh_when_used_and_brr_answered() -> None:
    net = Net()
    _registered(net)
    entry = net.mn.entries[CN]
    assert entry.refresh_at == pytest.approx(420 * 0.85)
    entry.inserter.packets += 5  # the data path used it
    net.mn.handle_timer(entry.refresh_at)
    # tokens older than MAX_TOKEN_LIFETIME: both tests again, the direct path stays meanwhile
    names = sorted(type(m.message).__name__ for m in net.mn.messages_to_send())
    assert names == ["CareOfTestInit", "HomeTestInit"]
    assert entry.direct and entry.state is RouteState.REGISTERED
    # a BRR from the CN while registered: a new BU (tokens refreshed as needed)
    net2 = Net()
    _registered(net2)
    brr = OutgoingMobilityMessage(CN, COA_B, BindingRefreshRequest(), routing_type2=HOA)
    parsed = _parse(brr)
    net2.mn.receive(parsed, decode_mobility_packet(parsed), 10.0)
    (bu,) = net2.mn.messages_to_send()
    assert isinstance(bu.message, BindingUpdate) and bu.home_address == HOA


def test_unused_binding_lapses() -> None:
    net = Net()
    _registered(net)
    entry = net.mn.entries[CN]
    net.mn.handle_timer(entry.refresh_at)
    assert net.mn.messages_to_send() == []
    net.mn.handle_timer(entry.expires_at)
    assert CN not in net.mn.entries


def test_returning_home_deregisters_with_home_token_only() -> None:
    net = Net()
    _registered(net)
    net.mn.returned_home(20.0)
    (bu,) = net.mn.messages_to_send()
    assert bu.src == HOA and bu.home_address is None and bu.message.lifetime == 0
    net.cn.receive_mobility(_parse(bu), 20.0)
    assert HOA.packed not in net.cn.bindings
    (ba,) = net.cn.messages_to_send()
    assert ba.dst == HOA and ba.routing_type2 is None
    parsed = _parse(ba)
    net.mn.receive(parsed, decode_mobility_packet(parsed), 20.0)
    assert CN not in net.mn.entries


# ---------------------------------------------------------------- correspondent checks (9.5.1)


def _tokens(cn: Correspondent, now: float) -> tuple[int, bytes, int, bytes]:
    index, nonce = cn.nonces.current(now)
    return (index, home_keygen_token(cn.kcn, HOA, nonce), index,
            care_of_keygen_token(cn.kcn, COA_B, nonce))


def _bu(cn: Correspondent, sequence: int, *, kbm: bytes | None = None,
        indices: tuple[int, int] | None = None, now: float = 0.0) -> list[OutgoingMobilityMessage]:
    hi, ht, ci, ct = _tokens(cn, now)
    if indices is not None:
        hi, ci = indices
    key = kbm if kbm is not None else binding_management_key(ht, ct)
    bu = BindingUpdate(sequence=sequence, lifetime=1000, ack=True, home_registration=False,
                       options=(NonceIndices(hi, ci),))
    m = OutgoingMobilityMessage(COA_B, CN, sign(bu, key, COA_B, CN), home_address=HOA)
    cn.receive_mobility(_parse(m), now)
    return cn.messages_to_send()


def test_cn_accepts_caps_lifetime_and_signs_ba() -> None:
    cn = Correspondent(CN, rng=random.Random(3))
    (ba,) = _bu(cn, 10)
    assert isinstance(ba.message, BindingAck) and ba.message.status == 0
    assert ba.message.lifetime == 420  # MAX_RR_BINDING_LIFETIME
    assert ba.dst == COA_B and ba.routing_type2 == HOA


def test_cn_drops_wrong_authenticator_silently() -> None:
    cn = Correspondent(CN, rng=random.Random(3))
    assert _bu(cn, 10, kbm=bytes(20)) == []
    assert cn.counters["bu_bad_authenticator"] == 1 and not cn.bindings


@pytest.mark.parametrize(("which", "status"), [("home", 136), ("care_of", 137), ("both", 138)])
def test_cn_expired_nonces(which: str, status: int) -> None:
    cn = Correspondent(CN, rng=random.Random(3))
    index, _ = cn.nonces.current(0.0)
    stale = (index + 5000) & 0xFFFF
    indices = {"home": (stale, index), "care_of": (index, stale), "both": (stale, stale)}[which]
    (ba,) = _bu(cn, 10, indices=indices)
    assert ba.message.status == status
    assert cn.counters[f"bu_refused_{status}"] == 1


def test_cn_old_sequence_gets_135() -> None:
    cn = Correspondent(CN, rng=random.Random(3))
    _bu(cn, 10)
    (ba,) = _bu(cn, 9)
    assert ba.message.status == 135 and ba.message.sequence == 10


def test_cn_ignores_test_init_with_hao_and_refuses_home_registration() -> None:
    cn = Correspondent(CN, rng=random.Random(3))
    from netstack.wire.mh import HomeTestInit

    m = OutgoingMobilityMessage(COA_B, CN, HomeTestInit(b"12345678"), home_address=HOA)
    cn.receive_mobility(_parse(m), 0.0)
    assert cn.messages_to_send() == [] and cn.counters["rx_test_init_with_hao_ignored"] == 1
    m = OutgoingMobilityMessage(COA_B, CN, BindingUpdate(sequence=1, lifetime=8), home_address=HOA)
    cn.receive_mobility(_parse(m), 0.0)
    (ba,) = cn.messages_to_send()
    assert ba.message.status == 131


def test_cn_unknown_mh_type_gets_binding_error_2() -> None:
    cn = Correspondent(CN, rng=random.Random(3))
    from netstack.wire.checksum import internet_checksum, pseudo_header_sum
    from netstack.wire.ipv6 import build_ipv6_packet

    mh = bytearray(bytes((59, 0, 42, 0, 0, 0, 0, 0)))
    mh[4:6] = internet_checksum(mh, pseudo_header_sum(COA_B.packed, CN.packed, 8, 135)).to_bytes(2, "big")
    cn.receive_mobility(parse_ipv6_packet(build_ipv6_packet(COA_B, CN, 135, bytes(mh))), 0.0)
    (be,) = cn.messages_to_send()
    assert be.message.status == 2 and be.dst == COA_B


def test_cn_binding_refresh_request_when_in_use_then_expiry() -> None:
    cn = Correspondent(CN, rng=random.Random(3))
    _bu(cn, 10)
    binding = cn.bindings[HOA.packed]
    binding.last_used = 370.0
    cn.handle_timer(cn.get_timer())
    (brr,) = cn.messages_to_send()
    assert isinstance(brr.message, BindingRefreshRequest) and brr.routing_type2 == HOA
    cn.handle_timer(420.0)
    assert not cn.bindings


def test_cn_binding_error_rate_limited() -> None:
    cn = Correspondent(CN, rng=random.Random(3), binding_error_rate=2)
    for _ in range(5):
        cn.home_address_without_binding(COA_B.packed, HOA.packed, 1.0)
    assert len(cn.messages_to_send()) == 2 and cn.counters["be_rate_limited"] == 3


def test_tokens_in_hot_cot_are_the_cns() -> None:
    net = Net()
    net.mn.home_registered(COA_B, 420.0, 0.0)
    net.mn.want(CN, 0.0)
    for m in net.mn.messages_to_send():
        net.cn.receive_mobility(_parse(m), 0.0)
    answers = net.cn.messages_to_send()
    hot = next(m.message for m in answers if isinstance(m.message, HomeTest))
    cot = next(m.message for m in answers if isinstance(m.message, CareOfTest))
    nonce = net.cn.nonces.lookup(hot.home_nonce_index, 0.0)
    assert hot.home_keygen_token == home_keygen_token(net.cn.kcn, HOA, nonce)
    assert cot.care_of_keygen_token == care_of_keygen_token(net.cn.kcn, COA_B, nonce)


# ---------------------------------------------------------------- policy (table 220, config)


def test_scenarios_follow_route_optimisation() -> None:
    from guest_agent.scenario import Scenario, ScenarioPolicy

    policy = ScenarioPolicy()
    policy.set(Scenario.TRANSLATION_ON_ROUTE_OPTIMISATION, True)
    policy.select(from_home_agent=True, protected=False)
    policy.route_optimised(True)
    assert Scenario.TRANSLATION_ON_ROUTE_OPTIMISATION in policy.active
    assert Scenario.TRANSLATION_OFF_ROUTE_OPTIMISATION not in policy.active  # switched off
    policy.select(from_home_agent=True, protected=False)  # a home refresh keeps it
    assert Scenario.TRANSLATION_ON_ROUTE_OPTIMISATION in policy.active and policy.translating
    policy.route_optimised(False)
    assert Scenario.TRANSLATION_ON_ROUTE_OPTIMISATION not in policy.active
    assert Scenario.TRANSLATION_ON in policy.active


def test_config_section_all_or_prefixes() -> None:
    from guest_agent.route_optimisation import RouteOptimisationSection

    assert RouteOptimisationSection().networks() is None
    section = RouteOptimisationSection(enabled=True, correspondents=["2001:db8:8::/64"])
    assert section.networks() == (IPv6Network("2001:db8:8::/64"),)
    with pytest.raises(ValueError):
        RouteOptimisationSection(correspondents=["not-a-prefix"])
    mn = CorrespondentRegistrations(HOA, HA, HOME, correspondents=section.networks())
    mn.home_registered(COA_B, 420.0, 0.0)
    assert not mn.want(IPv6Address("2001:db8:9::1"), 0.0)  # not in the list
    assert not mn.want(HA, 0.0) and not mn.want(IPv6Address("2001:db8:6::77"), 0.0)
    assert mn.want(CN, 0.0)
