"""Correspondent fixes found by the TAHI CN suite (tests/conformance/test_cn.py), sans-IO."""

from __future__ import annotations

import random

from netstack.mobility.correspondent import Correspondent
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.mobility.return_routability import binding_management_key, sign
from netstack.wire.checksum import internet_checksum, pseudo_header_sum
from netstack.wire.ipv6 import build_ipv6_packet, parse_ipv6_packet
from netstack.wire.mh import BindingUpdate, HomeTestInit, NonceIndices
from netstack.wire.mh_codec import encode_mobility_header
from tests.unit.test_route_optimisation import CN, COA_B, HOA, _bu, _parse, _tokens


def test_home_registration_with_rr_options_is_dropped_silently() -> None:
    # TAHI mip6-cn-20 BU_A1_H1: no answer, no binding (a plain H=1 BU still gets BA 131)
    cn = Correspondent(CN, rng=random.Random(3))
    hi, ht, ci, ct = _tokens(cn, 0.0)
    bu = BindingUpdate(sequence=5, lifetime=40, ack=True, home_registration=True,
                       options=(NonceIndices(hi, ci),))
    signed = sign(bu, binding_management_key(ht, ct), COA_B, CN)
    cn.receive_mobility(_parse(OutgoingMobilityMessage(COA_B, CN, signed, home_address=HOA)), 0.0)
    assert cn.messages_to_send() == [] and not cn.bindings
    assert cn.counters["bu_home_registration_with_rr_options_dropped"] == 1


def test_sequence_32768_ahead_is_newer() -> None:
    # TAHI BU_SEQ_A1_MAX (15 then 32783) accepted; BU_SEQ_MORE_A1 (15 then 32784) refused
    cn = Correspondent(CN, rng=random.Random(3))
    _bu(cn, 15)
    (ba,) = _bu(cn, 15 + 32768)
    assert ba.message.status == 0
    (ba,) = _bu(cn, (15 + 32768 + 32769) % 65536)
    assert ba.message.status == 135 and ba.message.sequence == 15 + 32768


def test_piggybacked_mobility_header_gets_parameter_problem() -> None:
    cn = Correspondent(CN, rng=random.Random(3))
    mh = bytearray(encode_mobility_header(HomeTestInit(b"cookie!!"), HOA, CN))
    mh[0] = 58  # Payload Proto != IPPROTO_NONE (RFC 6275 9.2)
    mh[4:6] = b"\x00\x00"
    mh[4:6] = internet_checksum(mh, pseudo_header_sum(HOA.packed, CN.packed, len(mh), 135)
                                ).to_bytes(2, "big")
    cn.receive_mobility(parse_ipv6_packet(build_ipv6_packet(HOA, CN, 135, bytes(mh))), 0.0)
    assert cn.messages_to_send() == []
    (problem,) = cn.parameter_problems_to_send()
    assert problem.destination == HOA
    assert problem.message.code == 0 and problem.message.parameter == 40  # Payload Proto


def test_unknown_mh_type_binding_error_carries_the_hao_address() -> None:
    cn = Correspondent(CN, rng=random.Random(3))
    mh = bytearray(bytes((59, 0, 42, 0, 0, 0, 0, 0)))
    mh[4:6] = internet_checksum(mh, pseudo_header_sum(HOA.packed, CN.packed, 8, 135)
                                ).to_bytes(2, "big")
    packet = build_ipv6_packet(COA_B, CN, 135, bytes(mh), home_address=HOA)
    cn.receive_mobility(parse_ipv6_packet(packet), 0.0)
    (be,) = cn.messages_to_send()
    assert be.message.status == 2 and be.dst == COA_B and be.message.home_address == HOA
