"""ICMPv6 / ND codec: byte equality with scapy, round trips, malformed input."""

from __future__ import annotations

import contextlib
from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptAdvInterval,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptHAInfo,
    ICMPv6NDOptMAP,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
)

from netstack.wire.errors import BadChecksum, BadOption, ParseError, TruncatedPacket
from netstack.wire.icmpv6 import (
    MAX_INVOKING_PACKET_LEN,
    build_icmpv6_packet,
    decode_icmpv6,
    decode_icmpv6_packet,
    decode_nd_options,
    encode_icmpv6,
    encode_nd_option,
    solicited_node_multicast,
)
from netstack.wire.icmpv6_types import (
    AdvertisementInterval,
    EchoReply,
    EchoRequest,
    HomeAgentInformation,
    ICMPv6Error,
    MapOption,
    Mtu,
    NeighborAdvertisement,
    NeighborSolicitation,
    PrefixInformation,
    RouterAdvertisement,
    RouterSolicitation,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
    UnknownICMPv6Message,
    UnknownNDOption,
)
from netstack.wire.ipv6 import build_ipv6_packet, parse_ipv6_packet

SRC = IPv6Address("fe80::1")
DST = IPv6Address("ff02::1")
GSRC = IPv6Address("2001:db8:a::1")
GDST = IPv6Address("2001:db8:b::2")
MAC = bytes.fromhex("020000000001")
MAC_STR = "02:00:00:00:00:01"


def scapy_icmp(layer, src=SRC, dst=DST) -> bytes:
    return bytes(IPv6(src=str(src), dst=str(dst)) / layer)[40:]


RA_FULL = RouterAdvertisement(
    cur_hop_limit=64,
    managed=True,
    other=False,
    home_agent=True,
    router_lifetime=1800,
    reachable_time=30000,
    retrans_timer=1000,
    options=(
        SourceLinkLayerAddress(MAC),
        Mtu(1500),
        PrefixInformation(IPv6Network("2001:db8:a::/64"), 86400, 14400, True, True, True),
        AdvertisementInterval(3000),
        HomeAgentInformation(preference=10, lifetime=1800),
        MapOption(
            distance=2,
            preference=7,
            valid_lifetime=600,
            map_address=IPv6Address("2001:db8:7::1"),
            rcoa_required=True,
        ),
    ),
)

SCAPY_CASES = [
    (RouterSolicitation(), ICMPv6ND_RS(), SRC, IPv6Address("ff02::2")),
    (
        RouterSolicitation(options=(SourceLinkLayerAddress(MAC),)),
        ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=MAC_STR),
        SRC,
        IPv6Address("ff02::2"),
    ),
    (
        RA_FULL,
        ICMPv6ND_RA(
            chlim=64, M=1, O=0, H=1, prf=0, routerlifetime=1800, reachabletime=30000, retranstimer=1000
        )
        / ICMPv6NDOptSrcLLAddr(lladdr=MAC_STR)
        / ICMPv6NDOptMTU(mtu=1500)
        / ICMPv6NDOptPrefixInfo(
            prefixlen=64,
            L=1,
            A=1,
            R=1,
            validlifetime=86400,
            preferredlifetime=14400,
            prefix="2001:db8:a::",
        )
        / ICMPv6NDOptAdvInterval(advint=3000)
        / ICMPv6NDOptHAInfo(pref=10, lifetime=1800)
        / ICMPv6NDOptMAP(dist=2, pref=7, R=1, validlifetime=600, addr="2001:db8:7::1"),
        SRC,
        DST,
    ),
    (
        RouterAdvertisement(
            other=True,
            router_lifetime=0,
            options=(
                PrefixInformation(IPv6Network("2001:db8:b::/64"), 0, 0, False, False, False),
                MapOption(1, 15, 0xFFFFFFFF, IPv6Address("2001:db8::9"), rcoa_required=False),
            ),
        ),
        ICMPv6ND_RA(chlim=64, M=0, O=1, H=0, prf=0, routerlifetime=0)
        / ICMPv6NDOptPrefixInfo(
            prefixlen=64, L=0, A=0, R=0, validlifetime=0, preferredlifetime=0, prefix="2001:db8:b::"
        )
        / ICMPv6NDOptMAP(dist=1, pref=15, R=0, validlifetime=0xFFFFFFFF, addr="2001:db8::9"),
        SRC,
        DST,
    ),
    (
        NeighborSolicitation(IPv6Address("2001:db8:a::5"), (SourceLinkLayerAddress(MAC),)),
        ICMPv6ND_NS(tgt="2001:db8:a::5") / ICMPv6NDOptSrcLLAddr(lladdr=MAC_STR),
        GSRC,
        solicited_node_multicast(IPv6Address("2001:db8:a::5")),
    ),
    (
        NeighborSolicitation(IPv6Address("2001:db8:a::5")),
        ICMPv6ND_NS(tgt="2001:db8:a::5"),
        IPv6Address("::"),
        solicited_node_multicast(IPv6Address("2001:db8:a::5")),
    ),
    (
        NeighborAdvertisement(
            IPv6Address("2001:db8:a::5"),
            router=True,
            solicited=True,
            override=False,
            options=(TargetLinkLayerAddress(MAC),),
        ),
        ICMPv6ND_NA(tgt="2001:db8:a::5", R=1, S=1, O=0) / ICMPv6NDOptDstLLAddr(lladdr=MAC_STR),
        GSRC,
        GDST,
    ),
    (
        NeighborAdvertisement(IPv6Address("fe80::5"), router=False, solicited=False, override=True),
        ICMPv6ND_NA(tgt="fe80::5", R=0, S=0, O=1),
        SRC,
        DST,
    ),
    (
        EchoRequest(0x1234, 7, b"hello world"),
        ICMPv6EchoRequest(id=0x1234, seq=7, data=b"hello world"),
        GSRC,
        GDST,
    ),
    (EchoReply(1, 65535, b""), ICMPv6EchoReply(id=1, seq=65535), GSRC, GDST),
    (
        ICMPv6Error(2, 0, 1400, b"\x60" + b"\x00" * 59),
        ICMPv6PacketTooBig(mtu=1400) / (b"\x60" + b"\x00" * 59),
        GSRC,
        GDST,
    ),
    (
        ICMPv6Error(1, 3, 0, b"\x60" + b"\x01" * 47),
        ICMPv6DestUnreach(code=3) / (b"\x60" + b"\x01" * 47),
        GSRC,
        GDST,
    ),
    (
        ICMPv6Error(3, 0, 0, b"\x60" + b"\x02" * 47),
        ICMPv6TimeExceeded(code=0) / (b"\x60" + b"\x02" * 47),
        GSRC,
        GDST,
    ),
    (
        ICMPv6Error(4, 1, 40, b"\x60" + b"\x03" * 47),
        ICMPv6ParamProblem(code=1, ptr=40) / (b"\x60" + b"\x03" * 47),
        GSRC,
        GDST,
    ),
]


@pytest.mark.parametrize(("message", "layer", "src", "dst"), SCAPY_CASES)
def test_encode_matches_scapy_and_round_trips(message, layer, src, dst) -> None:
    encoded = encode_icmpv6(message, src, dst)
    assert encoded == scapy_icmp(layer, src, dst)
    assert decode_icmpv6(encoded, src, dst) == message


def test_scapy_agrees_with_our_decoding_of_the_full_ra() -> None:
    packet = IPv6(build_icmpv6_packet(SRC, DST, RA_FULL))
    assert packet.hlim == 255
    ra = packet[ICMPv6ND_RA]
    assert (ra.M, ra.O, ra.H, ra.routerlifetime) == (1, 0, 1, 1800)
    assert packet[ICMPv6NDOptMAP].dist == 2
    assert packet[ICMPv6NDOptMAP].addr == "2001:db8:7::1"
    assert packet[ICMPv6NDOptPrefixInfo].prefix == "2001:db8:a::"
    assert packet[ICMPv6NDOptHAInfo].pref == 10


def test_full_packet_round_trip_via_parse_ipv6_packet() -> None:
    raw = build_icmpv6_packet(SRC, DST, RA_FULL)
    parsed = parse_ipv6_packet(raw)
    assert parsed.hop_limit == 255
    assert decode_icmpv6_packet(parsed) == RA_FULL


def test_packet_decode_uses_home_address_for_checksum() -> None:
    hoa = IPv6Address("2001:db8:6::1000")
    message = EchoRequest(1, 2, b"x")
    payload = encode_icmpv6(message, hoa, GDST)
    raw = build_ipv6_packet(GSRC, GDST, 58, payload, home_address=hoa)
    assert decode_icmpv6_packet(parse_ipv6_packet(raw)) == message


def test_packet_decode_rejects_non_icmpv6() -> None:
    raw = build_ipv6_packet(GSRC, GDST, 17, b"\x00" * 8)
    with pytest.raises(ParseError):
        decode_icmpv6_packet(parse_ipv6_packet(raw))


def test_home_agent_preference_is_signed() -> None:
    option = HomeAgentInformation(preference=-5, lifetime=100)
    wire = encode_nd_option(option)
    assert wire[4:6] == b"\xff\xfb"
    assert decode_nd_options(wire) == (option,)


def test_unknown_message_and_option_round_trip() -> None:
    unknown = UnknownICMPv6Message(200, 3, b"\x01\x02\x03")
    assert decode_icmpv6(encode_icmpv6(unknown, GSRC, GDST), GSRC, GDST) == unknown
    ra = RouterAdvertisement(options=(UnknownNDOption(99, b"\xaa" * 6), Mtu(1280)))
    decoded = decode_icmpv6(encode_icmpv6(ra, SRC, DST), SRC, DST)
    assert decoded == ra


def test_invoking_packet_is_truncated_to_minimum_mtu() -> None:
    big = ICMPv6Error(2, 0, 1280, b"\x60" + b"\x00" * 2000)
    encoded = encode_icmpv6(big, GSRC, GDST)
    assert len(encoded) + 40 == 1280
    assert len(decode_icmpv6(encoded, GSRC, GDST).invoking_packet) == MAX_INVOKING_PACKET_LEN


def test_prefix_host_bits_are_masked() -> None:
    wire = bytearray(
        encode_nd_option(PrefixInformation(IPv6Network("2001:db8:a::/48"), 10, 5))
    )
    wire[16 + 10] = 0xFF  # a bit beyond /48
    (option,) = decode_nd_options(bytes(wire))
    assert option.prefix == IPv6Network("2001:db8:a::/48")


def test_solicited_node_multicast() -> None:
    assert solicited_node_multicast(IPv6Address("2001:db8::12:3456:789a")) == IPv6Address(
        "ff02::1:ff56:789a"
    )


def test_bad_checksum_detected_and_optional() -> None:
    encoded = bytearray(encode_icmpv6(EchoRequest(1, 1, b"abc"), GSRC, GDST))
    encoded[-1] ^= 0x01
    with pytest.raises(BadChecksum):
        decode_icmpv6(bytes(encoded), GSRC, GDST)
    assert decode_icmpv6(bytes(encoded), GSRC, GDST, verify_checksum=False) == EchoRequest(
        1, 1, b"abb"
    )
    # the pseudo-header counts: a different destination fails the check
    good = encode_icmpv6(EchoRequest(1, 1, b"abc"), GSRC, GDST)
    with pytest.raises(BadChecksum):
        decode_icmpv6(good, GSRC, IPv6Address("2001:db8:b::3"))


def test_option_length_zero_is_bad_option() -> None:
    body = encode_icmpv6(RouterSolicitation(), SRC, DST) + b"\x01\x00" + b"\x00" * 6
    with pytest.raises(BadOption):
        decode_icmpv6(body, SRC, DST, verify_checksum=False)


@pytest.mark.parametrize(
    "wire",
    [
        bytes((3, 3)) + b"\x00" * 22,  # PIO must be length 4
        bytes((5, 2)) + b"\x00" * 14,  # MTU must be length 1
        bytes((23, 2)) + b"\x00" * 14,  # MAP must be length 3
        bytes((8, 2)) + b"\x00" * 14,  # HA info must be length 1
        bytes((3, 4, 129)) + b"\x00" * 29,  # prefix length > 128
    ],
)
def test_known_option_with_wrong_length_is_bad_option(wire: bytes) -> None:
    with pytest.raises(BadOption):
        decode_nd_options(wire)


def test_option_running_past_message_is_truncated() -> None:
    with pytest.raises(TruncatedPacket):
        decode_nd_options(bytes((1, 2)) + b"\x00" * 6)
    with pytest.raises(TruncatedPacket):
        decode_nd_options(b"\x01")


ALL_MESSAGES = [case[0] for case in SCAPY_CASES] + [UnknownICMPv6Message(200, 0, b"abcd")]


@pytest.mark.parametrize("message", ALL_MESSAGES)
def test_truncation_at_every_offset_raises_only_parse_error(message) -> None:
    encoded = encode_icmpv6(message, GSRC, GDST)
    for cut in range(len(encoded)):
        for verify in (True, False):
            with contextlib.suppress(ParseError):
                decode_icmpv6(encoded[:cut], GSRC, GDST, verify_checksum=verify)


@pytest.mark.parametrize("message", [RA_FULL, SCAPY_CASES[4][0], SCAPY_CASES[6][0]])
def test_truncating_nd_messages_is_detected(message) -> None:
    """Cuts inside the fixed part or inside an option must raise, not decode silently."""
    encoded = encode_icmpv6(message, GSRC, GDST)
    option_starts = set()
    ok_lengths = set()
    # the fixed part ends where the first option starts; every option boundary is a valid cut
    fixed = {134: 16, 135: 24, 136: 24}[encoded[0]]
    pos = fixed
    ok_lengths.add(pos)
    while pos < len(encoded):
        option_starts.add(pos)
        pos += encoded[pos + 1] * 8
        ok_lengths.add(pos)
    for cut in range(len(encoded)):
        if cut in ok_lengths:
            decode_icmpv6(encoded[:cut], GSRC, GDST, verify_checksum=False)
        else:
            with pytest.raises(ParseError):
                decode_icmpv6(encoded[:cut], GSRC, GDST, verify_checksum=False)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_raise_only_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        decode_icmpv6(data, GSRC, GDST, verify_checksum=False)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([133, 134, 135, 136]),
    st.binary(min_size=20, max_size=20),
    st.lists(
        st.tuples(st.sampled_from([1, 2, 3, 5, 7, 8, 23, 99]), st.integers(0, 5), st.binary()),
        max_size=5,
    ),
)
def test_fuzz_nd_option_soup_raises_only_parse_error(icmp_type, fixed, options) -> None:
    body = bytes((icmp_type, 0, 0, 0)) + fixed
    for option_type, length, data in options:
        body += bytes((option_type, length)) + data[: max(length * 8 - 2, 0)]
    with contextlib.suppress(ParseError):
        decode_icmpv6(body, GSRC, GDST, verify_checksum=False)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 255),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 128),
    st.integers(0, 0xFFFFFFFF),
    st.integers(1, 15),
    st.integers(0, 15),
)
def test_ra_round_trip_property(hop, m, o, h, lifetime, reach, plen, valid, dist, pref) -> None:
    prefix = IPv6Network((IPv6Address("2001:db8:ffff::"), plen), strict=False)
    ra = RouterAdvertisement(
        cur_hop_limit=hop,
        managed=m,
        other=o,
        home_agent=h,
        router_lifetime=lifetime,
        reachable_time=reach,
        retrans_timer=reach ^ 0xFFFF,
        options=(
            PrefixInformation(prefix, valid, valid // 2, m, o, h),
            MapOption(dist, pref, valid, IPv6Address("2001:db8::1"), h),
        ),
    )
    assert decode_icmpv6(encode_icmpv6(ra, SRC, DST), SRC, DST) == ra


def test_nd_message_with_nonzero_code_is_rejected() -> None:
    wire = bytearray(encode_icmpv6(RouterSolicitation(), SRC, DST))
    wire[1] = 1
    with pytest.raises(ParseError) as info:
        decode_icmpv6(bytes(wire), SRC, DST, verify_checksum=False)
    assert info.value.reason == "nd_bad_code"
    # echo with a non-zero code is still decoded (RFC 4443 does not forbid it)
    echo = bytearray(encode_icmpv6(EchoRequest(1, 2), SRC, DST))
    echo[1] = 5
    assert decode_icmpv6(bytes(echo), SRC, DST, verify_checksum=False) == EchoRequest(1, 2)
