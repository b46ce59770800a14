"""Correspondent node conformance, ported from TAHI ct-2.1.1 mip6-cn-20 (and RFC 6275 9).

Topology and testers: tests/conformance/cn_bed.py (NUT = our CN daemon; "mn" = the mobile
node at home on the home link, "mnp" = MN' / MN'' on visited link 5a). Each case uses a
home address of its own, so the cases share the bed without sharing bindings. TAHI judges a
binding by an Echo Request with a Home Address option from the care-of address: an Echo
Reply with a type 2 Routing Header means a binding, a Binding Error (status 1) means none.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from ipaddress import IPv6Address

import pytest

from netstack.mobility.constants import MAX_RR_BINDING_LIFETIME
from netstack.mobility.return_routability import binding_management_key
from netstack.wire.checksum import internet_checksum, pseudo_header_sum
from netstack.wire.mh import (
    BindingAck,
    BindingError,
    BindingRefreshRequest,
    CareOfTest,
    HomeTest,
    NonceIndices,
)
from tests.conformance.catalogue import case
from tests.conformance.cn_bed import CN, CnBed, Keys, bring_up, mh_with
from tests.conformance.conftest import fresh_home_address

pytestmark = pytest.mark.netns

QUIET = 1.5  # seconds both testers listen to conclude that the CN sent nothing


@pytest.fixture(scope="module")
def cn_bed() -> Iterator[CnBed]:
    yield from bring_up()


@pytest.fixture
def hoa(cn_bed: CnBed) -> str:
    address = fresh_home_address()
    cn_bed.own_home_address(address)
    cn_bed.drain()
    return address


def _parameter_problems(answers: list, to: str) -> list[int]:
    """Pointers of the ICMPv6 Parameter Problems (code 0) among the CN's answers to `to`."""
    out = []
    for parsed, _ in answers:
        if parsed.upper_protocol == 58 and parsed.dst == IPv6Address(to):
            body = parsed.payload  # type 4 code 0: Parameter Problem, erroneous header field
            if body[0] == 4 and body[1] == 0:
                out.append(int.from_bytes(body[4:8], "big"))
    return out


def _mh(answers: list, kind: type) -> list:
    return [m for _, m in answers if isinstance(m, kind)]


# ---------------------------------------------------------------- CN-1: return routability


@case("mip6-cn-20/HoTI_Valid", "9.4.1", "CN-1", "Receiving valid HoTI")
def test_hoti_gets_hot(cn_bed: CnBed, hoa: str) -> None:
    hot = cn_bed.home_test(hoa)  # to the home address, cookie echoed, no RH2
    assert len(hot.home_keygen_token) == 8
    again = cn_bed.home_test(hoa)  # same nonce while it is current: same token (5.2.5)
    if again.home_nonce_index == hot.home_nonce_index:
        assert again.home_keygen_token == hot.home_keygen_token


@case("mip6-cn-20/CoTI_Valid", "9.4.2", "CN-1", "Receiving valid CoTI")
def test_coti_gets_cot(cn_bed: CnBed) -> None:
    cot = cn_bed.care_of_test(cn_bed.coa)
    assert len(cot.care_of_keygen_token) == 8


@case("mip6-cn-20/RR_Valid", "9.4", "CN-1", "Receiving HoTI & CoTI")
def test_return_routability_tokens_make_a_valid_kbm(cn_bed: CnBed, hoa: str) -> None:
    keys = cn_bed.return_routability(hoa, cn_bed.coa)
    # tokens depend on the address they were sent to
    assert keys.hot.home_keygen_token != keys.cot.care_of_keygen_token
    cn_bed.send_bu(hoa, cn_bed.coa, 1, keys)
    ba = cn_bed.expect_ba(hoa, cn_bed.coa, keys)
    assert ba is not None and ba.status == 0


def _piggyback(cn_bed: CnBed, hoa: str, kind: str) -> None:
    src = hoa if kind == "home" else cn_bed.coa
    cookie = cn_bed.cookie()
    mh = cn_bed.hoti_mh(hoa, cookie) if kind == "home" else cn_bed.coti_mh(src, cookie)
    cn_bed.drain()
    cn_bed.send_mh(src, mh_with(mh, payload_proto=58, src=IPv6Address(src)))
    answers = cn_bed.quiet(QUIET)
    assert not _mh(answers, HomeTest) and not _mh(answers, CareOfTest), "test for a bad init"
    assert _parameter_problems(answers, src) == [40], "no Parameter Problem at Payload Proto"


def _bad_checksum(cn_bed: CnBed, hoa: str, kind: str) -> None:
    src = hoa if kind == "home" else cn_bed.coa
    cookie = cn_bed.cookie()
    mh = cn_bed.hoti_mh(hoa, cookie) if kind == "home" else cn_bed.coti_mh(src, cookie)
    cn_bed.drain()
    cn_bed.send_mh(src, mh_with(mh, checksum=0x1234, src=IPv6Address(src)))
    assert cn_bed.quiet(QUIET) == [], "answer to an init with a bad checksum"


@case("mip6-cn-20/HoTI_Piggyback", "9.2", "CN-1", "Receiving invalid HoTI (piggybacking)")
def test_hoti_piggyback(cn_bed: CnBed, hoa: str) -> None:
    _piggyback(cn_bed, hoa, "home")


@case("mip6-cn-20/CoTI_Piggyback", "9.2", "CN-1", "Receiving invalid CoTI (piggybacking)")
def test_coti_piggyback(cn_bed: CnBed, hoa: str) -> None:
    _piggyback(cn_bed, hoa, "care_of")


@case("mip6-cn-20/HoTI_InvalidChecksum", "9.2", "CN-1", "Receiving invalid HoTI (invalid checksum)")
def test_hoti_bad_checksum(cn_bed: CnBed, hoa: str) -> None:
    _bad_checksum(cn_bed, hoa, "home")


@case("mip6-cn-20/CoTI_InvalidChecksum", "9.2", "CN-1", "Receiving invalid CoTI (invalid checksum)")
def test_coti_bad_checksum(cn_bed: CnBed, hoa: str) -> None:
    _bad_checksum(cn_bed, hoa, "care_of")


@case("mip6-cn-20/HoTI_BCE", "9.4.1", "CN-1", "HoTI w/ BCE")
def test_hoti_with_binding(cn_bed: CnBed, hoa: str) -> None:
    cn_bed.register(hoa, cn_bed.coa)
    cn_bed.home_test(hoa)
    assert cn_bed.echo(hoa, cn_bed.coa) == "reply"  # the binding is untouched


@case("mip6-cn-20/CoTI_BCE", "9.4.2", "CN-1", "CoTI w/ BCE")
def test_coti_with_binding(cn_bed: CnBed, hoa: str) -> None:
    cn_bed.register(hoa, cn_bed.coa)
    cn_bed.care_of_test(cn_bed.coa)
    assert cn_bed.echo(hoa, cn_bed.coa) == "reply"


@pytest.mark.parametrize("kind", [
    pytest.param("home", marks=case("mip6-cn-20/HoTI_HaO", "9.4.1", "CN-1",
                                    "Receiving invalid HoTI (include HaO)"), id="HoTI_HaO"),
    pytest.param("care_of", marks=case("mip6-cn-20/CoTI_HaO", "9.4.2", "CN-1",
                                       "Receiving invalid CoTI (include HaO)"), id="CoTI_HaO"),
])
def test_test_init_with_hao_is_ignored(cn_bed: CnBed, hoa: str, kind: str) -> None:
    cookie = cn_bed.cookie()
    coa = cn_bed.coa
    mh = cn_bed.hoti_mh(hoa, cookie) if kind == "home" else cn_bed.coti_mh(hoa, cookie)
    cn_bed.send_mh(coa, mh, home_address=hoa)
    assert cn_bed.quiet(QUIET) == []
    assert cn_bed.counters().get("rx_test_init_with_hao_ignored", 0) >= 1


@pytest.mark.parametrize("kind", [
    pytest.param("home", marks=case("mip6-cn-20/HoTI_Piggyback_BCE", "9.2", "CN-1",
                                    "Receiving invalid HoTI (piggybacking) w/ BCE"), id="HoTI"),
    pytest.param("care_of", marks=case("mip6-cn-20/CoTI_Piggyback_BCE", "9.2", "CN-1",
                                       "Receiving invalid CoTI (piggybacking) w/ BCE"), id="CoTI"),
])
def test_test_init_piggyback_with_binding(cn_bed: CnBed, hoa: str, kind: str) -> None:
    cn_bed.register(hoa, cn_bed.coa)
    _piggyback(cn_bed, hoa, kind)
    assert cn_bed.echo(hoa, cn_bed.coa) == "reply"


# ---------------------------------------------------------------- CN-2: bindings


@pytest.mark.parametrize("ack", [
    pytest.param(True, marks=case("mip6-cn-20/BU_A1_H0", "9.5.1", "CN-2",
                                  "Receiving valid BU A=1"), id="A1"),
    pytest.param(False, marks=case("mip6-cn-20/BU_A0_H0", "9.5.1", "CN-2",
                                   "Receiving valid BU A=0"), id="A0"),
])
def test_valid_bu(cn_bed: CnBed, hoa: str, ack: bool) -> None:
    keys = cn_bed.return_routability(hoa, cn_bed.coa)
    cn_bed.drain()
    cn_bed.send_bu(hoa, cn_bed.coa, 7, keys, ack=ack)
    if ack:  # 9.5.4: BA to the CoA, RH2 with the home address, authenticated with Kbm
        ba = cn_bed.expect_ba(hoa, cn_bed.coa, keys)
        assert ba is not None and ba.status == 0 and ba.sequence == 7
        assert 0 < ba.lifetime <= 40
    else:
        assert not _mh(cn_bed.quiet(QUIET), BindingAck), "BA for a valid BU with A=0"
    assert cn_bed.echo(hoa, cn_bed.coa) == "reply"


@pytest.mark.parametrize("ack", [
    pytest.param(True, marks=case("mip6-cn-20/BU_A1_H1", "9.5.1", "CN-2",
                                  "Receiving invalid BU A=1 (H=1 when using Kbm)"), id="A1"),
    pytest.param(False, marks=case("mip6-cn-20/BU_A0_H1", "9.5.1", "CN-2",
                                   "Receiving invalid BU A=0 (H=1 when using Kbm)"), id="A0"),
])
def test_home_registration_with_kbm_is_dropped(cn_bed: CnBed, hoa: str, ack: bool) -> None:
    keys = cn_bed.return_routability(hoa, cn_bed.coa)
    cn_bed.drain()
    cn_bed.send_bu(hoa, cn_bed.coa, 7, keys, ack=ack, home_registration=True)
    assert cn_bed.quiet(QUIET) == [], "TAHI: no response"
    assert cn_bed.echo(hoa, cn_bed.coa) == "be1"


def _bu_variant(cn_bed: CnBed, hoa: str, keys: Keys, ack: bool, **change: int) -> list:
    mh = cn_bed.bu_mh(hoa, cn_bed.coa, 9, keys, ack=ack)
    cn_bed.drain()
    cn_bed.send_mh(cn_bed.coa, mh_with(mh, src=IPv6Address(hoa), **change), home_address=hoa)
    return cn_bed.quiet(QUIET)


def _params(name: str, title: str, rfc: str = "9.2") -> list:
    return [pytest.param(a, marks=case(f"mip6-cn-20/{name.format(a=a)}", rfc, "CN-2",
                                       title.format(a=a)), id=f"A{a}") for a in (1, 0)]


@pytest.mark.parametrize("a", _params("BU_Piggyback_A{a}", "Receiving invalid BU A={a} (piggybacking)"))
def test_bu_piggyback(cn_bed: CnBed, hoa: str, a: int) -> None:
    keys = cn_bed.return_routability(hoa, cn_bed.coa)
    answers = _bu_variant(cn_bed, hoa, keys, bool(a), payload_proto=58)
    assert not _mh(answers, BindingAck)
    assert _parameter_problems(answers, cn_bed.coa) == [40 + 24]  # after the HAO
    assert cn_bed.echo(hoa, cn_bed.coa) == "be1"


@pytest.mark.parametrize("a", _params("BU_InvalidChecksum_A{a}",
                                      "Receiving invalid BU A={a} (invalid checksum)"))
def test_bu_bad_checksum(cn_bed: CnBed, hoa: str, a: int) -> None:
    keys = cn_bed.return_routability(hoa, cn_bed.coa)
    assert _bu_variant(cn_bed, hoa, keys, bool(a), checksum=0x1234) == []
    assert cn_bed.echo(hoa, cn_bed.coa) == "be1"


@pytest.mark.parametrize("a", _params("BU_Piggyback_A{a}_BCE",
                                      "Receiving invalid BU A={a} (piggybacking) w/ BCE"))
def test_bu_piggyback_with_binding(cn_bed: CnBed, hoa: str, a: int) -> None:
    keys = cn_bed.register(hoa, cn_bed.coa, seq=5)
    answers = _bu_variant(cn_bed, hoa, keys, bool(a), payload_proto=58)
    assert not _mh(answers, BindingAck)
    assert _parameter_problems(answers, cn_bed.coa) == [40 + 24]
    assert cn_bed.echo(hoa, cn_bed.coa) == "reply"
    assert cn_bed.binding(hoa)["sequence"] == 5


# TAHI's sequence cases: (name, 1st, 2nd, valid?). The 2nd BU comes from MN'' (another CoA).
_SEQUENCES = [
    ("BU_SEQ_A{a}", 15, 16, True),
    ("BU_SEQ_A{a}_MAX", 15, 32783, True),
    ("BU_SEQ_LESS_A{a}", 15, 14, False),
    ("BU_SEQ_EQ_A{a}", 15, 15, False),
    ("BU_SEQ_MORE_A{a}", 15, 32784, False),
    ("BU_SEQ_OVERFLOW_A{a}", 32783, 32784, True),
    ("BU_SEQ_OVERFLOW_A{a}_MAX", 32783, 15, True),
    ("BU_SEQ_OVERFLOW_LESS_A{a}", 32783, 32782, False),
    ("BU_SEQ_OVERFLOW_EQ_A{a}", 32783, 32783, False),
    ("BU_SEQ_OVERFLOW_MORE_A{a}", 32783, 16, False),
]


@pytest.mark.parametrize(("a", "first", "second", "valid"), [
    pytest.param(a, first, second, valid, id=name.format(a=a), marks=case(
        f"mip6-cn-20/{name.format(a=a)}", "9.5.1", "CN-2",
        f"{'Valid' if valid else 'Invalid'} sequence number A={a} SN(1st={first}, 2nd={second})"))
    for name, first, second, valid in _SEQUENCES for a in (1, 0)
])
def test_sequence_numbers(cn_bed: CnBed, hoa: str, a: int, first: int, second: int,
                          valid: bool) -> None:
    keys = cn_bed.register(hoa, cn_bed.coa, seq=first, ack=bool(a))
    cot2 = cn_bed.care_of_test(cn_bed.coa2)
    keys2 = Keys(keys.hot, cot2)
    cn_bed.drain()
    cn_bed.send_bu(hoa, cn_bed.coa2, second, keys2, ack=bool(a))
    if valid:
        if a:
            ba = cn_bed.expect_ba(hoa, cn_bed.coa2, keys2)
            assert ba is not None and ba.status == 0 and ba.sequence == second
        else:
            assert not _mh(cn_bed.quiet(QUIET), BindingAck)
        assert cn_bed.echo(hoa, cn_bed.coa2) == "reply"
    else:  # 9.5.1: BA 135 with the last accepted sequence number, even with A=0
        ba = cn_bed.expect_ba(hoa, cn_bed.coa2, keys2)
        assert ba is not None and ba.status == 135 and ba.sequence == first
        assert cn_bed.echo(hoa, cn_bed.coa) == "reply"  # the binding stays at MN'


@case("mip6-cn-20/Delete_LT0_FOREIGN", "9.5.3", "CN-2",
      "Delete a Binding A=1 (Lifetime=0 & CoA!=HoA)")
def test_delete_from_foreign_link(cn_bed: CnBed, hoa: str) -> None:
    keys = cn_bed.register(hoa, cn_bed.coa, seq=20)
    cn_bed.drain()
    cn_bed.send_bu(hoa, cn_bed.coa, 21, keys, lifetime=0)
    ba = cn_bed.expect_ba(hoa, cn_bed.coa, keys)
    assert ba is not None and ba.status == 0
    assert cn_bed.echo(hoa, cn_bed.coa) == "be1"


@pytest.mark.parametrize(("lifetime", "hao"), [
    pytest.param(0, True, id="LT0_HOME", marks=case(
        "mip6-cn-20/Delete_LT0_HOME", "9.5.3", "CN-2",
        "Delete a Binding A=1 (Lifetime=0 & CoA=HoA) w/ HaO")),
    pytest.param(0, False, id="LT0_HOME_without_HaO", marks=case(
        "mip6-cn-20/Delete_LT0_HOME_without_HaO", "9.5.3", "CN-2",
        "Delete a Binding (Lifetime=0 & CoA=HoA) w/o HaO")),
    pytest.param(40, True, id="LT1_HOME", marks=case(
        "mip6-cn-20/Delete_LT1_HOME", "9.5.3", "CN-2",
        "Delete a Binding A=1 (Lifetime!=0 & CoA=HoA) w/ HaO")),
    pytest.param(40, False, id="LT1_HOME_without_HaO", marks=case(
        "mip6-cn-20/Delete_LT1_HOME_without_HaO", "9.5.3", "CN-2",
        "Delete a Binding (Lifetime!=0 & CoA=HoA) w/o HaO")),
])
def test_delete_from_home(cn_bed: CnBed, hoa: str, lifetime: int, hao: bool) -> None:
    cn_bed.register(hoa, cn_bed.coa, seq=30)
    hot = cn_bed.home_test(hoa)  # at home: Kbm = SHA1(home keygen token) (5.2.5)
    home_keys = Keys(hot, None)
    kbm = binding_management_key(hot.home_keygen_token, None)
    cn_bed.drain()
    cn_bed.send_bu(hoa, hoa, 31, home_keys, hao=hao, lifetime=lifetime)
    ba = cn_bed.expect_ba(hoa, hoa, kbm=kbm)
    assert ba is not None and ba.status == 0 and ba.lifetime == 0
    assert cn_bed.echo(hoa, cn_bed.coa) == "be1"


# RFC 6275 rules TAHI's CN package does not test separately.


@pytest.mark.parametrize(("which", "status"), [
    pytest.param("home", 136, id="136", marks=case(
        "rfc6275/9.5.1-expired-home-nonce", "9.5.1", "CN-2", "Expired home nonce index: BA 136")),
    pytest.param("care_of", 137, id="137", marks=case(
        "rfc6275/9.5.1-expired-care-of-nonce", "9.5.1", "CN-2",
        "Expired care-of nonce index: BA 137")),
    pytest.param("both", 138, id="138", marks=case(
        "rfc6275/9.5.1-expired-nonces", "9.5.1", "CN-2", "Both nonce indices expired: BA 138")),
])
def test_expired_nonce_indices(cn_bed: CnBed, hoa: str, which: str, status: int) -> None:
    keys = cn_bed.return_routability(hoa, cn_bed.coa)
    hi, ci = keys.indices.home_nonce_index, keys.indices.care_of_nonce_index
    stale_h, stale_c = (hi + 5000) & 0xFFFF, (ci + 5000) & 0xFFFF  # never issued = expired
    indices = {"home": NonceIndices(stale_h, ci), "care_of": NonceIndices(hi, stale_c),
               "both": NonceIndices(stale_h, stale_c)}[which]
    cn_bed.drain()
    cn_bed.send_bu(hoa, cn_bed.coa, 3, keys, ack=False, indices=indices)
    ba = cn_bed.expect_ba(hoa, cn_bed.coa)  # sent even with A=0, without BAD (9.5.4)
    assert ba is not None and ba.status == status
    assert cn_bed.echo(hoa, cn_bed.coa) == "be1"


@case("rfc6275/9.5.1-authenticator", "9.5.1", "CN-2",
      "BU with a wrong authenticator is silently discarded")
def test_wrong_authenticator(cn_bed: CnBed, hoa: str) -> None:
    keys = cn_bed.return_routability(hoa, cn_bed.coa)
    cn_bed.drain()
    cn_bed.send_bu(hoa, cn_bed.coa, 3, keys, kbm=bytes(20))
    assert cn_bed.quiet(QUIET) == []
    assert cn_bed.echo(hoa, cn_bed.coa) == "be1"
    assert cn_bed.counters().get("bu_bad_authenticator", 0) >= 1


@case("rfc6275/5.2.6-lifetime", "5.2.6", "CN-2",
      "Lifetime granted at most MAX_RR_BINDING_LIFETIME")
def test_lifetime_capped(cn_bed: CnBed, hoa: str) -> None:
    keys = cn_bed.return_routability(hoa, cn_bed.coa)
    cn_bed.drain()
    cn_bed.send_bu(hoa, cn_bed.coa, 3, keys, lifetime=4 * 60000)
    ba = cn_bed.expect_ba(hoa, cn_bed.coa, keys)
    assert ba is not None and ba.status == 0
    assert 0 < ba.lifetime <= MAX_RR_BINDING_LIFETIME


# ---------------------------------------------------------------- CN-3: BE, BRR


@case("mip6-cn-20/BE_UnknownType", "9.2", "CN-3", "BE - Unrecognized MH Type value")
def test_unknown_mh_type_binding_error(cn_bed: CnBed, hoa: str) -> None:
    mh = bytearray(struct.pack("!BBBBH", 59, 0, 42, 0, 0) + bytes(2))
    mh[4:6] = internet_checksum(mh, pseudo_header_sum(
        IPv6Address(hoa).packed, IPv6Address(CN).packed, len(mh), 135)).to_bytes(2, "big")
    cn_bed.drain()
    cn_bed.send_mh(cn_bed.coa, bytes(mh), home_address=hoa)
    got = cn_bed.expect_mh(cn_bed.mnp, BindingError)
    assert got is not None, "no Binding Error"
    parsed, be = got
    assert be.status == 2 and parsed.dst == IPv6Address(cn_bed.coa)
    assert be.home_address == IPv6Address(hoa)  # the HAO's address (9.3.3, 6.1.9)


@case("mip6-cn-20/BE_NoBinding", "9.3.1", "CN-3", "BE - Unknown binding for HaO")
def test_hao_without_binding(cn_bed: CnBed, hoa: str) -> None:
    assert cn_bed.echo(hoa, cn_bed.coa) == "be1"


@case("rfc6275/9.5.5-BRR", "9.5.5", "CN-3",
      "Binding Refresh Request before an active binding expires")
def test_binding_refresh_request(cn_bed: CnBed, hoa: str) -> None:
    keys = cn_bed.return_routability(hoa, cn_bed.coa)
    cn_bed.drain()
    cn_bed.send_bu(hoa, cn_bed.coa, 3, keys, lifetime=8)
    ba = cn_bed.expect_ba(hoa, cn_bed.coa, keys)
    assert ba is not None and ba.status == 0 and ba.lifetime == 8
    assert cn_bed.echo(hoa, cn_bed.coa) == "reply"  # in use
    end = time.monotonic() + 15
    got = None
    while got is None and (left := end - time.monotonic()) > 0:
        got = cn_bed.expect_mh(cn_bed.mnp, BindingRefreshRequest, timeout=left)
        if got is not None and got[0].routing_type2 != IPv6Address(hoa):
            got = None  # another case's binding (still in use) asks too
    assert got is not None, "no Binding Refresh Request"
    assert got[0].dst == IPv6Address(cn_bed.coa)  # to the care-of address, RH2 to hoa
    end = time.monotonic() + 15
    while cn_bed.binding(hoa) is not None and time.monotonic() < end:
        time.sleep(0.2)
    assert cn_bed.echo(hoa, cn_bed.coa) == "be1"  # expired, not refreshed
