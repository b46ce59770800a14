"""RFC 2473 IPv6-in-IPv6 encapsulation on bytes."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, PadN

from netstack.wire.errors import BadLength, BadVersion, ParseError, TruncatedPacket
from netstack.wire.ip6ip6 import Encapsulator, decapsulate, encapsulate
from netstack.wire.ipv6 import build_ipv6_packet, parse_ipv6_packet

HA = IPv6Address("2001:db8:1::1")
COA = IPv6Address("2001:db8:2::10")
HOA = IPv6Address("2001:db8:1::10")
CN = IPv6Address("2001:db8:5::7")
INNER = build_ipv6_packet(HOA, CN, 17, bytes(range(32)), traffic_class=0xB8, hop_limit=63)


def test_encapsulate_equals_scapy() -> None:
    ours = encapsulate(INNER, COA.packed, HA.packed, hop_limit=30)
    theirs = IPv6(src=str(COA), dst=str(HA), nh=41, tc=0xB8, hlim=30) / INNER
    assert isinstance(ours, bytearray)
    assert bytes(ours) == bytes(theirs)


def test_outer_is_a_valid_ipv6_packet() -> None:
    parsed = parse_ipv6_packet(encapsulate(INNER, COA.packed, HA.packed))
    assert (parsed.src, parsed.dst, parsed.upper_protocol) == (COA, HA, 41)
    assert parsed.traffic_class == 0xB8 and parsed.flow_label == 0 and parsed.hop_limit == 64
    assert parsed.payload == INNER


def test_decapsulate_round_trip() -> None:
    src, dst, inner = decapsulate(encapsulate(INNER, COA.packed, HA.packed))
    assert (src, dst) == (COA.packed, HA.packed)
    assert isinstance(inner, memoryview) and inner.tobytes() == INNER


def test_decapsulate_ignores_link_padding() -> None:
    _, _, inner = decapsulate(bytes(encapsulate(INNER, COA.packed, HA.packed)) + bytes(6))
    assert inner.tobytes() == INNER


def test_decapsulate_skips_outer_destination_options() -> None:
    # Linux ip6tnl adds a Tunnel Encapsulation Limit option (type 4) by default.
    outer = IPv6(src=str(COA), dst=str(HA)) / IPv6ExtHdrDestOpt(nh=41, options=[PadN(otype=4, optlen=1, optdata=b"\x04")]) / INNER
    src, dst, inner = decapsulate(bytes(outer))
    assert (src, dst, inner.tobytes()) == (COA.packed, HA.packed, INNER)


def test_encapsulator_matches_encapsulate() -> None:
    enc = Encapsulator(COA.packed, HA.packed)
    buf = bytearray(2048)
    n = enc.encapsulate_into(INNER, buf)
    assert n == 40 + len(INNER) and len(buf) == 2048
    assert buf[:n] == encapsulate(INNER, COA.packed, HA.packed)
    # Reusing the buffer for a shorter packet with another traffic class rewrites the header.
    other = build_ipv6_packet(HOA, CN, 59, b"", traffic_class=0x04)
    n2 = enc.encapsulate_into(memoryview(other), buf)
    assert buf[:n2] == encapsulate(other, COA.packed, HA.packed)
    assert enc.encapsulate(other) == buf[:n2]


def test_encapsulator_rejects_small_buffer_and_bad_endpoints() -> None:
    enc = Encapsulator(COA.packed, HA.packed)
    with pytest.raises(ValueError):
        enc.encapsulate_into(INNER, bytearray(len(INNER) + 39))
    with pytest.raises(ValueError):
        Encapsulator(b"\x00" * 4, HA.packed)


def test_encapsulate_rejects_oversize() -> None:
    with pytest.raises(ValueError):
        encapsulate(bytes(0x10000), COA.packed, HA.packed)


def test_decapsulate_not_ip6ip6() -> None:
    with pytest.raises(ParseError) as info:
        decapsulate(build_ipv6_packet(COA, HA, 17, INNER))
    assert info.value.reason == "not_ip6ip6"


def test_decapsulate_bad_versions() -> None:
    packet = encapsulate(INNER, COA.packed, HA.packed)
    outer_v4 = bytearray(packet)
    outer_v4[0] = 0x45
    with pytest.raises(BadVersion):
        decapsulate(outer_v4)
    inner_v4 = bytearray(packet)
    inner_v4[40] = 0x45
    with pytest.raises(BadVersion):
        decapsulate(inner_v4)


def test_decapsulate_inner_too_short() -> None:
    with pytest.raises(BadLength):
        decapsulate(build_ipv6_packet(COA, HA, 41, INNER[:39]))


def test_decapsulate_truncated_at_every_offset() -> None:
    packet = bytes(encapsulate(INNER, COA.packed, HA.packed))
    for cut in range(len(packet)):
        with pytest.raises(TruncatedPacket):
            decapsulate(packet[:cut])


@settings(max_examples=400)
@given(st.binary(max_size=120))
def test_fuzz_only_parse_error(data: bytes) -> None:
    try:
        src, dst, inner = decapsulate(data)
    except ParseError:
        return
    assert len(src) == len(dst) == 16 and len(inner) >= 40


@settings(max_examples=300)
@given(st.sampled_from([41, 60]), st.binary(max_size=100))
def test_fuzz_after_valid_outer_header_only_parse_error(nh: int, body: bytes) -> None:
    header = struct.pack("!IHBB16s16s", 6 << 28, len(body), nh, 64, COA.packed, HA.packed)
    try:
        _, _, inner = decapsulate(header + body)
    except ParseError:
        return
    assert len(inner) >= 40 and inner[0] >> 4 == 6


@given(st.binary(min_size=40, max_size=300), st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16))
def test_round_trip_property(inner: bytes, src: bytes, dst: bytes) -> None:
    inner = bytes([0x60 | (inner[0] & 0x0F)]) + inner[1:]
    packet = encapsulate(inner, src, dst)
    assert packet[1] >> 4 == inner[1] >> 4  # low nibble of the traffic class copied
    out_src, out_dst, view = decapsulate(packet)
    assert (out_src, out_dst, view.tobytes()) == (src, dst, inner)
