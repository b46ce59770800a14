"""IPv6 header and extension headers: round trips, scapy cross-checks, malformed input."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    HAO,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    RouterAlert,
)

from netstack.wire.errors import BadLength, BadOption, BadVersion, ParseError, TruncatedPacket
from netstack.wire.ipv6 import (
    IPPROTO_DSTOPTS,
    IPPROTO_ESP,
    IPPROTO_HOPOPTS,
    IPPROTO_IPV6,
    IPPROTO_NONE,
    IPPROTO_ROUTING,
    IPPROTO_UDP,
    DestinationOptions,
    FragmentHeader,
    HomeAddressOption,
    HopByHopOptions,
    RoutingHeader,
    RoutingHeaderType2,
    TLVOption,
    build_ipv6_packet,
    parse_ipv6_packet,
)

SRC = IPv6Address("2001:db8:2::10")
DST = IPv6Address("2001:db8:1::1")
HOA = IPv6Address("2001:db8:1::10")
PAYLOAD = b"\x12\x34\x56\x78\x00\x08\x00\x00"  # 8 octets, contents irrelevant to the IP layer


def _full_packet() -> bytes:
    """A packet with every extension header we build: HBH, RH2, DestOpts(HAO), Fragment."""
    return build_ipv6_packet(
        SRC,
        DST,
        IPPROTO_UDP,
        PAYLOAD,
        home_address=HOA,
        routing_type2=HOA,
        extension_headers=(
            HopByHopOptions((TLVOption(5, b"\x00\x00"),)),
            FragmentHeader(offset=0, more=False, identification=0xDEADBEEF),
        ),
        traffic_class=0xB8,
        flow_label=0x12345,
        hop_limit=7,
    )


# ---------------------------------------------------------------- scapy cross-checks


def test_plain_packet_equals_scapy() -> None:
    ours = build_ipv6_packet(SRC, DST, IPPROTO_UDP, PAYLOAD, traffic_class=0x2E, flow_label=0xABCDE, hop_limit=3)
    theirs = IPv6(src=str(SRC), dst=str(DST), nh=IPPROTO_UDP, tc=0x2E, fl=0xABCDE, hlim=3) / PAYLOAD
    assert ours == bytes(theirs)


def test_home_address_option_equals_scapy() -> None:
    ours = build_ipv6_packet(SRC, DST, IPPROTO_NONE, b"", home_address=HOA)
    theirs = IPv6(src=str(SRC), dst=str(DST)) / IPv6ExtHdrDestOpt(nh=IPPROTO_NONE, options=[HAO(hoa=str(HOA))])
    assert ours == bytes(theirs)
    # HAO at offset 6 of the header (8n+6) so the address itself is 8-aligned.
    assert ours[40 + 6] == 201 and ours[40 + 7] == 16


def test_type2_routing_header_equals_scapy() -> None:
    # scapy has no RH2 class, but its generic routing header with type=2 has the same layout.
    ours = build_ipv6_packet(DST, SRC, IPPROTO_NONE, b"", routing_type2=HOA)
    theirs = IPv6(src=str(DST), dst=str(SRC)) / IPv6ExtHdrRouting(
        nh=IPPROTO_NONE, type=2, segleft=1, addresses=[str(HOA)]
    )
    assert ours == bytes(theirs)
    assert ours[41] == 2  # hdr ext len


def test_fragment_header_equals_scapy() -> None:
    frag = FragmentHeader(offset=185, more=True, identification=0x01020304)
    ours = build_ipv6_packet(SRC, DST, IPPROTO_UDP, PAYLOAD, extension_headers=(frag,))
    theirs = IPv6(src=str(SRC), dst=str(DST)) / IPv6ExtHdrFragment(nh=IPPROTO_UDP, offset=185, m=1, id=0x01020304) / PAYLOAD
    assert ours == bytes(theirs)


def test_hop_by_hop_router_alert_equals_scapy() -> None:
    ours = build_ipv6_packet(
        SRC, DST, 58, PAYLOAD, extension_headers=(HopByHopOptions((TLVOption(5, b"\x00\x00"),)),)
    )
    theirs = IPv6(src=str(SRC), dst=str(DST)) / IPv6ExtHdrHopByHop(nh=58, options=[RouterAlert()]) / PAYLOAD
    assert ours == bytes(theirs)


def test_parse_scapy_chain() -> None:
    pkt = (
        IPv6(src=str(SRC), dst=str(DST), hlim=9)
        / IPv6ExtHdrHopByHop(options=[RouterAlert()])
        / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[str(HOA)])
        / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(HOA))])
        / IPv6ExtHdrFragment(nh=IPPROTO_UDP, id=77)
        / PAYLOAD
    )
    raw = bytes(pkt)
    parsed = parse_ipv6_packet(raw)
    assert parsed.hop_limit == 9
    assert [type(h) for h in parsed.extension_headers] == [
        HopByHopOptions,
        RoutingHeaderType2,
        DestinationOptions,
        FragmentHeader,
    ]
    assert parsed.extension_headers[0] == HopByHopOptions((TLVOption(5, b"\x00\x00"),))
    assert parsed.extension_headers[3] == FragmentHeader(0, False, 77)
    assert parsed.home_address == HOA and parsed.routing_type2 == HOA
    assert parsed.upper_protocol == IPPROTO_UDP
    assert parsed.payload == PAYLOAD
    assert raw[parsed.upper_offset :] == PAYLOAD
    assert not parsed.is_fragment


# ---------------------------------------------------------------- building / parsing


def test_full_packet_round_trip_and_header_order() -> None:
    raw = _full_packet()
    parsed = parse_ipv6_packet(raw)
    assert raw[6] == IPPROTO_HOPOPTS
    assert [type(h) for h in parsed.extension_headers] == [
        HopByHopOptions,
        RoutingHeaderType2,
        DestinationOptions,
        FragmentHeader,
    ]
    assert parsed.src == SRC and parsed.dst == DST
    assert (parsed.traffic_class, parsed.flow_label, parsed.hop_limit) == (0xB8, 0x12345, 7)
    assert parsed.effective_source == HOA
    assert parsed.effective_destination == HOA
    assert parsed.payload == PAYLOAD
    assert parsed.raw == raw
    assert parsed.upper_offset == len(raw) - len(PAYLOAD)


def test_effective_addresses_default_to_header() -> None:
    parsed = parse_ipv6_packet(build_ipv6_packet(SRC, DST, IPPROTO_UDP, PAYLOAD))
    assert parsed.effective_source == SRC
    assert parsed.effective_destination == DST
    assert parsed.home_address is None and parsed.routing_type2 is None


def test_home_address_merged_into_given_destination_options() -> None:
    raw = build_ipv6_packet(
        SRC,
        DST,
        IPPROTO_UDP,
        PAYLOAD,
        home_address=HOA,
        extension_headers=(DestinationOptions((TLVOption(0x3E, b"abc"),)),),
    )
    parsed = parse_ipv6_packet(raw)
    assert parsed.extension_headers == (
        DestinationOptions((HomeAddressOption(HOA), TLVOption(0x3E, b"abc"))),
    )
    assert (len(raw) - 40) % 8 == 0


def test_routing_type2_given_twice_is_rejected() -> None:
    with pytest.raises(ValueError):
        build_ipv6_packet(
            SRC, DST, 59, b"", routing_type2=HOA, extension_headers=(RoutingHeaderType2(HOA),)
        )


@pytest.mark.parametrize("stop", [IPPROTO_ESP, 51, IPPROTO_IPV6, IPPROTO_NONE, 135, 58])
def test_walk_stops_at_non_extension(stop: int) -> None:
    body = bytes(range(48))
    raw = build_ipv6_packet(SRC, DST, stop, body, home_address=HOA)
    parsed = parse_ipv6_packet(raw)
    assert parsed.upper_protocol == stop
    assert parsed.payload == body


def test_real_fragment_stops_the_walk() -> None:
    # The bytes after a non-first fragment's header are not headers; they must not be parsed.
    garbage = b"\xff" * 16
    raw = build_ipv6_packet(
        SRC, DST, IPPROTO_DSTOPTS, garbage, extension_headers=(FragmentHeader(3, True, 1),)
    )
    parsed = parse_ipv6_packet(raw)
    assert parsed.is_fragment
    assert parsed.upper_protocol == IPPROTO_DSTOPTS
    assert parsed.payload == garbage


def test_other_routing_types_are_kept_raw() -> None:
    rh = RoutingHeader(routing_type=4, segments_left=0, data=bytes(4) + HOA.packed)
    raw = build_ipv6_packet(SRC, DST, IPPROTO_UDP, PAYLOAD, extension_headers=(rh,))
    parsed = parse_ipv6_packet(raw)
    assert parsed.extension_headers == (rh,)
    assert parsed.routing_type2 is None


def test_link_layer_padding_is_ignored() -> None:
    raw = build_ipv6_packet(SRC, DST, IPPROTO_UDP, PAYLOAD)
    parsed = parse_ipv6_packet(raw + b"\x00" * 10)
    assert parsed.payload == PAYLOAD and parsed.raw == raw


def test_accepts_memoryview_and_bytearray() -> None:
    raw = _full_packet()
    assert parse_ipv6_packet(memoryview(raw)) == parse_ipv6_packet(bytearray(raw))


def test_padding_options_are_dropped() -> None:
    raw = build_ipv6_packet(
        SRC, DST, 59, b"", extension_headers=(DestinationOptions((TLVOption(0), TLVOption(1, b"\0\0\0"))),)
    )
    assert parse_ipv6_packet(raw).extension_headers == (DestinationOptions(()),)


# ---------------------------------------------------------------- malformed input


def _patch(raw: bytes, offset: int, value: bytes) -> bytes:
    return raw[:offset] + value + raw[offset + len(value) :]


def test_bad_version() -> None:
    raw = _patch(build_ipv6_packet(SRC, DST, 59, b""), 0, b"\x40")
    with pytest.raises(BadVersion):
        parse_ipv6_packet(raw)


def test_payload_length_beyond_buffer() -> None:
    raw = build_ipv6_packet(SRC, DST, IPPROTO_UDP, PAYLOAD)
    with pytest.raises(TruncatedPacket):
        parse_ipv6_packet(_patch(raw, 4, struct.pack("!H", len(PAYLOAD) + 1)))


def test_extension_header_overrunning_payload() -> None:
    raw = build_ipv6_packet(SRC, DST, 59, b"", home_address=HOA)
    with pytest.raises(TruncatedPacket):
        parse_ipv6_packet(_patch(raw, 41, b"\x05"))


def test_hop_by_hop_not_first() -> None:
    raw = build_ipv6_packet(
        SRC, DST, IPPROTO_HOPOPTS, bytes((59, 0, 1, 4, 0, 0, 0, 0)), home_address=HOA
    )
    with pytest.raises(ParseError) as info:
        parse_ipv6_packet(raw)
    assert info.value.reason == "bad_header_order"


def test_type2_routing_header_bad_length() -> None:
    rh = bytes((59, 4, 2, 1, 0, 0, 0, 0)) + HOA.packed * 2
    with pytest.raises(BadLength):
        parse_ipv6_packet(build_ipv6_packet(SRC, DST, IPPROTO_ROUTING, rh))


def test_type2_routing_header_bad_segments_left() -> None:
    raw = build_ipv6_packet(SRC, DST, 59, b"", routing_type2=HOA)
    with pytest.raises(BadOption):
        parse_ipv6_packet(_patch(raw, 43, b"\x02"))


def test_duplicate_home_address_option() -> None:
    raw = build_ipv6_packet(
        SRC,
        DST,
        59,
        b"",
        extension_headers=(DestinationOptions((HomeAddressOption(HOA), HomeAddressOption(SRC))),),
    )
    with pytest.raises(BadOption):
        parse_ipv6_packet(raw)


def test_home_address_option_wrong_length() -> None:
    raw = build_ipv6_packet(SRC, DST, 59, b"", home_address=HOA)
    with pytest.raises(BadOption):
        parse_ipv6_packet(_patch(raw, 47, b"\x08"))  # HAO length octet at 40 + 7


def test_option_overrunning_header() -> None:
    raw = build_ipv6_packet(SRC, DST, 59, b"", extension_headers=(DestinationOptions((TLVOption(0x3E, b"ab"),)),))
    with pytest.raises(BadOption):
        parse_ipv6_packet(_patch(raw, 43, b"\x20"))


def test_truncated_at_every_offset() -> None:
    raw = _full_packet()
    for cut in range(len(raw)):
        with pytest.raises(TruncatedPacket):
            parse_ipv6_packet(raw[:cut])


def test_payload_length_shrunk_at_every_offset_raises_only_parse_error() -> None:
    # Consistent outer length but the chain ends early: exercises every header's own checks.
    raw = _full_packet()
    outcomes = set()
    for cut in range(40, len(raw)):
        shrunk = _patch(raw[:cut], 4, struct.pack("!H", cut - 40))
        try:
            parse_ipv6_packet(shrunk)
            outcomes.add("ok")
        except ParseError as exc:
            outcomes.add(type(exc).__name__)
    assert "TruncatedPacket" in outcomes


@settings(max_examples=400)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_only_parse_error(data: bytes) -> None:
    try:
        parsed = parse_ipv6_packet(data)
    except ParseError:
        return
    assert parsed.raw == data[: len(parsed.raw)] and parsed.upper_offset <= len(parsed.raw)


@settings(max_examples=400)
@given(st.sampled_from([0, 43, 44, 60]), st.binary(max_size=120))
def test_fuzz_random_extension_chain_only_parse_error(first: int, body: bytes) -> None:
    header = struct.pack("!IHBB16s16s", 6 << 28, len(body), first, 64, SRC.packed, DST.packed)
    try:
        parsed = parse_ipv6_packet(header + body)
    except ParseError:
        return
    assert parsed.upper_offset <= 40 + len(body)


addresses = st.binary(min_size=16, max_size=16).map(IPv6Address)


@settings(max_examples=200)
@given(
    src=addresses,
    dst=addresses,
    hoa=st.none() | addresses,
    rh2=st.none() | addresses,
    tc=st.integers(0, 255),
    fl=st.integers(0, 0xFFFFF),
    hlim=st.integers(0, 255),
    frag=st.none() | st.builds(FragmentHeader, st.integers(0, 8191), st.booleans(), st.integers(0, 2**32 - 1)),
    opts=st.lists(st.builds(TLVOption, st.integers(2, 200).filter(lambda t: t != 201), st.binary(max_size=20)), max_size=3),
    payload=st.binary(max_size=64),
    upper=st.sampled_from([6, 17, 58, 59, 135]),
)
def test_round_trip_property(src, dst, hoa, rh2, tc, fl, hlim, frag, opts, payload, upper) -> None:
    extension = [HopByHopOptions(tuple(opts))] if opts else []
    if frag is not None:
        extension.append(frag)
    raw = build_ipv6_packet(
        src,
        dst,
        upper,
        payload,
        hop_limit=hlim,
        traffic_class=tc,
        flow_label=fl,
        home_address=hoa,
        routing_type2=rh2,
        extension_headers=tuple(extension),
    )
    parsed = parse_ipv6_packet(raw)
    assert (parsed.src, parsed.dst, parsed.traffic_class, parsed.flow_label, parsed.hop_limit) == (
        src,
        dst,
        tc,
        fl,
        hlim,
    )
    assert parsed.home_address == hoa and parsed.routing_type2 == rh2
    assert parsed.effective_source == (hoa or src)
    assert parsed.effective_destination == (rh2 or dst)
    if opts:
        assert parsed.extension_headers[0] == HopByHopOptions(tuple(opts))
    if frag is not None:
        assert frag in parsed.extension_headers
    assert parsed.upper_protocol == upper
    assert parsed.payload == payload
