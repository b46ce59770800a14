"""Mobility Header codec: scapy byte equality, RFC 6275 alignment and checksum, malformed input."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    HAO,
    MIP6MH_BA,
    MIP6MH_BE,
    MIP6MH_BRR,
    MIP6MH_BU,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    MIP6MH_CoT,
    MIP6MH_CoTI,
    MIP6MH_HoT,
    MIP6MH_HoTI,
    MIP6OptAltCoA,
    MIP6OptBindingAuthData,
    MIP6OptBRAdvice,
    MIP6OptMobNetPrefix,
    MIP6OptNonceIndices,
)

from netstack.wire.errors import (
    BadChecksum,
    BadLength,
    BadOption,
    ParseError,
    TruncatedPacket,
    UnknownMobilityHeaderType,
)
from netstack.wire.ipv6 import build_ipv6_packet, parse_ipv6_packet
from netstack.wire.mh import (
    AlternateCareOfAddress,
    BindingAck,
    BindingAuthorizationData,
    BindingError,
    BindingRefreshAdvice,
    BindingRefreshRequest,
    BindingUpdate,
    CareOfTest,
    CareOfTestInit,
    HomeTest,
    HomeTestInit,
    MobileNetworkPrefix,
    MobilityMessage,
    NonceIndices,
    Pad1,
    PadN,
    UnknownMobilityOption,
)
from netstack.wire.mh_codec import (
    build_mobility_packet,
    decode_mobility_header,
    decode_mobility_packet,
    encode_mobility_header,
)

COA = IPv6Address("2001:db8:2::10")
HA = IPv6Address("2001:db8:1::1")
HOA = IPv6Address("2001:db8:1::10")
CN = IPv6Address("2001:db8:5::7")
COOKIE = bytes(range(1, 9))
TOKEN = bytes(range(0xA1, 0xA9))
AUTH = bytes(range(12))
MNP = IPv6Network("2001:db8:9::/48")

# (our message, the same message as a scapy layer). Lifetimes in scapy are 4-second units.
CASES = [
    (BindingRefreshRequest(), MIP6MH_BRR()),
    (HomeTestInit(COOKIE), MIP6MH_HoTI(cookie=COOKIE)),
    (CareOfTestInit(COOKIE), MIP6MH_CoTI(cookie=COOKIE)),
    (HomeTest(5, COOKIE, TOKEN), MIP6MH_HoT(index=5, cookie=COOKIE, token=TOKEN)),
    (CareOfTest(6, COOKIE, TOKEN), MIP6MH_CoT(index=6, cookie=COOKIE, token=TOKEN)),
    (BindingUpdate(sequence=7, lifetime=420), MIP6MH_BU(seq=7, flags="AH", mhtime=105)),
    (
        BindingUpdate(
            sequence=0xFFFF,
            lifetime=8,
            ack=False,
            home_registration=False,
            link_local_compat=True,
            key_management=True,
            map_registration=True,
            mobile_router=True,
        ),
        MIP6MH_BU(seq=0xFFFF, flags="LKMR", mhtime=2),
    ),
    (
        BindingUpdate(
            sequence=9,
            lifetime=400,
            options=(AlternateCareOfAddress(COA), MobileNetworkPrefix(MNP)),
        ),
        MIP6MH_BU(
            seq=9,
            flags="AH",
            mhtime=100,
            options=[MIP6OptAltCoA(acoa=str(COA)), MIP6OptMobNetPrefix(plen=48, prefix="2001:db8:9::")],
        ),
    ),
    (
        BindingUpdate(
            sequence=10,
            lifetime=40,
            home_registration=False,
            options=(NonceIndices(3, 4), BindingAuthorizationData(AUTH)),
        ),
        MIP6MH_BU(
            seq=10,
            flags="A",
            mhtime=10,
            # scapy 2.8 defaults olen=16 for both options; RFC 6275 6.2.6/6.2.7 say 4 and 12.
            options=[
                MIP6OptNonceIndices(olen=4, hni=3, coni=4),
                MIP6OptBindingAuthData(olen=12, authenticator=int.from_bytes(AUTH, "big")),
            ],
        ),
    ),
    (BindingAck(status=0, sequence=7, lifetime=420), MIP6MH_BA(status=0, flags=0, seq=7, mhtime=105)),
    (
        BindingAck(
            status=134,
            sequence=1,
            lifetime=0,
            key_management=True,
            mobile_router=True,
            options=(BindingRefreshAdvice(200),),
        ),
        MIP6MH_BA(status=134, flags="KR", seq=1, mhtime=0, options=[MIP6OptBRAdvice(rinter=50)]),
    ),
    (BindingError(status=2, home_address=HOA), MIP6MH_BE(status=2, ha=str(HOA))),
]
CASE_IDS = [f"{type(m).__name__}-{i}" for i, (m, _) in enumerate(CASES)]


@pytest.mark.parametrize(("message", "scapy_mh"), CASES, ids=CASE_IDS)
def test_packet_with_hao_equals_scapy(message, scapy_mh) -> None:
    ours = build_mobility_packet(COA, HA, message, home_address=HOA)
    theirs = IPv6(src=str(COA), dst=str(HA)) / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(HOA))]) / scapy_mh
    assert ours == bytes(theirs)


@pytest.mark.parametrize(("message", "scapy_mh"), CASES, ids=CASE_IDS)
def test_packet_with_rh2_equals_scapy(message, scapy_mh) -> None:
    ours = build_mobility_packet(HA, COA, message, routing_type2=HOA)
    theirs = (
        IPv6(src=str(HA), dst=str(COA))
        / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[str(HOA)])
        / scapy_mh
    )
    assert ours == bytes(theirs)


@pytest.mark.parametrize(("message", "scapy_mh"), CASES, ids=CASE_IDS)
def test_plain_packet_equals_scapy_and_round_trips(message, scapy_mh) -> None:
    ours = build_mobility_packet(CN, HOA, message)
    assert ours == bytes(IPv6(src=str(CN), dst=str(HOA)) / scapy_mh)
    assert decode_mobility_packet(parse_ipv6_packet(ours)) == message


@pytest.mark.parametrize(("message", "scapy_mh"), CASES, ids=CASE_IDS)
def test_decode_scapy_packet_with_hao_and_rh2(message, scapy_mh) -> None:
    # Both headers at once: the pseudo-header takes the source from the HAO and the
    # destination from the RH2 (RFC 6275 6.1.1); scapy's in6_chksum does the same.
    theirs = bytes(
        IPv6(src=str(COA), dst=str(HA))
        / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[str(CN)])
        / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(HOA))])
        / scapy_mh
    )
    assert decode_mobility_packet(parse_ipv6_packet(theirs)) == message
    ours = build_mobility_packet(COA, HA, message, home_address=HOA, routing_type2=CN)
    assert ours == theirs


def _naive_checksum(*chunks: bytes) -> int:
    data = b"".join(chunks)
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_checksum_uses_effective_addresses_hand_computed() -> None:
    message = BindingUpdate(sequence=1, lifetime=60, options=(AlternateCareOfAddress(COA),))
    packet = build_mobility_packet(COA, HA, message, home_address=HOA, routing_type2=CN)
    parsed = parse_ipv6_packet(packet)
    mh = bytearray(parsed.payload)
    written = struct.unpack_from("!H", mh, 4)[0]
    mh[4:6] = b"\x00\x00"
    pseudo = HOA.packed + CN.packed + struct.pack("!IxxxB", len(mh), 135)
    assert written == _naive_checksum(pseudo, bytes(mh))
    # ...and not the one over the outer header addresses.
    outer = COA.packed + HA.packed + struct.pack("!IxxxB", len(mh), 135)
    assert written != _naive_checksum(outer, bytes(mh))


# ---------------------------------------------------------------- layout rules


def _option_offsets(mh: bytes, start: int) -> dict[int, int]:
    offsets = {}
    pos = start
    while pos < len(mh):
        if mh[pos] == 0:
            pos += 1
            continue
        offsets.setdefault(mh[pos], pos)
        pos += 2 + mh[pos + 1]
    assert pos == len(mh)
    return offsets


@pytest.mark.parametrize(
    "message",
    [
        BindingUpdate(1, 4, options=_opts)
        for _opts in [
            (AlternateCareOfAddress(COA),),
            (NonceIndices(1, 2), BindingAuthorizationData(AUTH)),
            (BindingRefreshAdvice(8), MobileNetworkPrefix(MNP), AlternateCareOfAddress(COA)),
        ]
    ]
    + [
        BindingAck(0, 1, 4, options=(BindingRefreshAdvice(8), BindingAuthorizationData(AUTH))),
        HomeTest(1, COOKIE, TOKEN, options=(MobileNetworkPrefix(MNP),)),
        BindingRefreshRequest(options=(AlternateCareOfAddress(COA), NonceIndices(1, 2))),
    ],
)
def test_option_alignment_and_length(message) -> None:
    mh = encode_mobility_header(message, HOA, HA)
    assert len(mh) % 8 == 0 and mh[1] == len(mh) // 8 - 1
    assert mh[0] == 59
    start = {BindingUpdate: 12, BindingAck: 12, HomeTest: 24, BindingRefreshRequest: 8}[type(message)]
    rules = {2: (2, 0), 3: (8, 6), 4: (2, 0), 5: (8, 2), 6: (8, 4)}
    offsets = _option_offsets(mh, start)
    assert offsets  # the message has options
    for opt_type, offset in offsets.items():
        if opt_type in rules:
            x, y = rules[opt_type]
            assert offset % x == y, (opt_type, offset)
    assert decode_mobility_header(mh, HOA, HA) == message


def test_lifetime_rounds_down_to_four_seconds_and_clamps() -> None:
    for seconds, expected in [(421, 420), (3, 0), (7, 4), (10**9, 0xFFFF * 4)]:
        mh = encode_mobility_header(BindingUpdate(1, seconds), HOA, HA)
        assert decode_mobility_header(mh, HOA, HA).lifetime == expected


def test_binding_authorization_data_must_be_last() -> None:
    with pytest.raises(ValueError):
        encode_mobility_header(
            BindingUpdate(1, 4, options=(BindingAuthorizationData(AUTH), NonceIndices(1, 2))),
            HOA,
            HA,
        )


def test_explicit_padding_is_written_then_dropped_on_decode() -> None:
    message = BindingAck(0, 1, 4, options=(Pad1(), PadN(3), BindingRefreshAdvice(4)))
    mh = encode_mobility_header(message, HA, HOA)
    assert mh[12] == 0 and mh[13:15] == b"\x01\x03"
    assert decode_mobility_header(mh, HA, HOA).options == (BindingRefreshAdvice(4),)


def test_unknown_option_kept() -> None:
    message = BindingAck(0, 1, 4, options=(UnknownMobilityOption(42, b"xyz"),))
    mh = encode_mobility_header(message, HA, HOA)
    assert decode_mobility_header(mh, HA, HOA) == message


def test_encode_rejects_bad_cookie_length() -> None:
    with pytest.raises(ValueError):
        encode_mobility_header(HomeTestInit(b"short"), HOA, HA)


# ---------------------------------------------------------------- malformed input


def _valid_mh() -> bytes:
    return encode_mobility_header(
        BindingUpdate(3, 40, options=(AlternateCareOfAddress(COA), NonceIndices(1, 2))), HOA, HA
    )


def _with_checksum(mh: bytes | bytearray, src=HOA, dst=HA) -> bytes:
    mh = bytearray(mh)
    mh[4:6] = b"\x00\x00"
    pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(mh), 135)
    mh[4:6] = struct.pack("!H", _naive_checksum(pseudo, bytes(mh)))
    return bytes(mh)


def test_wrong_checksum() -> None:
    mh = bytearray(_valid_mh())
    mh[-1] ^= 0x01
    with pytest.raises(BadChecksum):
        decode_mobility_header(bytes(mh), HOA, HA)


def test_checksum_with_wrong_addresses() -> None:
    with pytest.raises(BadChecksum):
        decode_mobility_header(_valid_mh(), COA, HA)  # outer source instead of the home address


def test_verify_checksum_false_skips_check() -> None:
    mh = bytearray(_valid_mh())
    mh[4] ^= 0xFF
    assert isinstance(decode_mobility_header(bytes(mh), COA, HA, verify_checksum=False), BindingUpdate)


def test_unknown_mh_type_carries_type() -> None:
    mh = bytearray(encode_mobility_header(BindingRefreshRequest(), HOA, HA))
    mh[2] = 42
    with pytest.raises(UnknownMobilityHeaderType) as info:
        decode_mobility_header(_with_checksum(mh), HOA, HA)
    assert info.value.mh_type == 42
    assert info.value.reason == "unknown_mh_type"


def test_unknown_mh_type_with_bad_checksum_is_a_checksum_error() -> None:
    mh = bytearray(encode_mobility_header(BindingRefreshRequest(), HOA, HA))
    mh[2] = 42
    with pytest.raises(BadChecksum):
        decode_mobility_header(bytes(mh), HOA, HA)


def test_header_len_inconsistent_with_buffer() -> None:
    mh = _valid_mh()
    with pytest.raises(BadLength):
        decode_mobility_header(mh + bytes(8), HOA, HA)
    bad = bytearray(mh)
    bad[1] += 1
    with pytest.raises(BadLength):
        decode_mobility_header(_with_checksum(bad), HOA, HA)


def test_message_shorter_than_its_type() -> None:
    # A BE needs 24 octets; one declared as 16 is malformed even with a good checksum.
    mh = bytearray(encode_mobility_header(HomeTestInit(COOKIE), HOA, HA))
    mh[2] = 7
    with pytest.raises(BadLength):
        decode_mobility_header(_with_checksum(mh), HOA, HA)


@pytest.mark.parametrize("value", [15, 200])  # wrong fixed length / overruns the header
def test_bad_option_lengths(value: int) -> None:
    mh = bytearray(_valid_mh())
    alt_coa = mh.index(bytes((3, 16)))
    mh[alt_coa + 1] = value
    with pytest.raises(BadOption):
        decode_mobility_header(_with_checksum(mh), HOA, HA)


def test_mnp_prefix_length_over_128() -> None:
    mh = bytearray(encode_mobility_header(BindingUpdate(1, 4, options=(MobileNetworkPrefix(MNP),)), HOA, HA))
    mnp = mh.index(bytes((6, 18)))
    mh[mnp + 3] = 129
    with pytest.raises(BadOption):
        decode_mobility_header(_with_checksum(mh), HOA, HA)


def test_truncated_at_every_offset() -> None:
    mh = _valid_mh()
    for cut in range(len(mh)):
        with pytest.raises(ParseError):
            decode_mobility_header(mh[:cut], HOA, HA)


def test_truncated_packet_at_every_offset() -> None:
    packet = build_mobility_packet(COA, HA, BindingUpdate(1, 4), home_address=HOA)
    for cut in range(len(packet)):
        with pytest.raises(ParseError):
            decode_mobility_packet(parse_ipv6_packet(packet[:cut]))


def test_decode_packet_rejects_other_protocols() -> None:
    packet = parse_ipv6_packet(build_ipv6_packet(COA, HA, 17, bytes(8)))
    with pytest.raises(ParseError) as info:
        decode_mobility_packet(packet)
    assert info.value.reason == "not_mobility_header"


def test_short_buffer_is_truncated() -> None:
    with pytest.raises(TruncatedPacket):
        decode_mobility_header(b"\x3b\x00\x05", HOA, HA)


@settings(max_examples=500)
@given(st.binary(max_size=120))
def test_fuzz_random_bytes_only_parse_error(data: bytes) -> None:
    try:
        message = decode_mobility_header(data, HOA, HA, verify_checksum=False)
    except ParseError:
        return
    assert isinstance(message, MobilityMessage)


@settings(max_examples=300)
@given(st.integers(0, 255), st.binary(max_size=60).map(lambda b: b + bytes(-(len(b) + 6) % 8)))
def test_fuzz_well_framed_random_body_only_parse_error(mh_type: int, body: bytes) -> None:
    mh = bytes((59, (len(body) + 6) // 8 - 1, mh_type, 0, 0, 0)) + body
    try:
        message = decode_mobility_header(mh, HOA, HA, verify_checksum=False)
    except ParseError:
        return
    assert isinstance(message, MobilityMessage)


# ---------------------------------------------------------------- property round trip

addresses = st.binary(min_size=16, max_size=16).map(IPv6Address)
u16 = st.integers(0, 0xFFFF)
eight = st.binary(min_size=8, max_size=8)
lifetimes = st.integers(0, 0xFFFF).map(lambda units: units * 4)
prefixes = st.builds(
    lambda addr, plen: IPv6Network((addr, plen), strict=False), addresses, st.integers(0, 128)
)
plain_options = st.one_of(
    st.builds(BindingRefreshAdvice, lifetimes),
    st.builds(AlternateCareOfAddress, addresses),
    st.builds(NonceIndices, u16, u16),
    st.builds(MobileNetworkPrefix, prefixes),
    st.builds(UnknownMobilityOption, st.integers(7, 255), st.binary(max_size=20)),
)
option_lists = st.tuples(
    st.lists(plain_options, max_size=4),
    st.none() | st.builds(BindingAuthorizationData, st.binary(max_size=20)),
).map(lambda t: tuple(t[0]) + ((t[1],) if t[1] is not None else ()))

messages = st.one_of(
    st.builds(BindingRefreshRequest, option_lists),
    st.builds(HomeTestInit, eight, option_lists),
    st.builds(CareOfTestInit, eight, option_lists),
    st.builds(HomeTest, u16, eight, eight, option_lists),
    st.builds(CareOfTest, u16, eight, eight, option_lists),
    st.builds(
        BindingUpdate,
        u16,
        lifetimes,
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        option_lists,
    ),
    st.builds(BindingAck, st.integers(0, 255), u16, lifetimes, st.booleans(), st.booleans(), option_lists),
    st.builds(BindingError, st.integers(0, 255), addresses, option_lists),
)


@settings(max_examples=300)
@given(messages, addresses, addresses, st.none() | addresses, st.none() | addresses)
def test_round_trip_property(message, src, dst, hoa, rh2) -> None:
    packet = build_mobility_packet(src, dst, message, home_address=hoa, routing_type2=rh2)
    parsed = parse_ipv6_packet(packet)
    assert parsed.effective_source == (hoa or src)
    assert decode_mobility_packet(parsed) == message
    assert len(parsed.payload) % 8 == 0
