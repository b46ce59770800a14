"""IPv4/UDP control-path helpers, checked against scapy's encoding."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP

from netstack.wire.errors import BadChecksum, BadLength, BadVersion, ParseError, TruncatedPacket
from netstack.wire.ipv4 import build_ipv4_udp, ipv4_header_checksum, parse_ipv4_udp

SRC = bytes([198, 18, 0, 1])
DST = bytes([198, 18, 0, 2])


def scapy_udp(payload: bytes = b"dns answer", **ip_fields: object) -> bytes:
    fields = {"src": "198.18.0.1", "dst": "198.18.0.2", "id": 0, "ttl": 64, "flags": 0}
    fields.update(ip_fields)
    return bytes(IP(**fields) / UDP(sport=53, dport=40000) / payload)


@pytest.mark.parametrize("payload", [b"", b"x", b"dns answer", bytes(range(256)) * 5])
def test_build_equals_scapy(payload: bytes) -> None:
    assert build_ipv4_udp(SRC, DST, 53, 40000, payload) == scapy_udp(payload)


def test_build_ttl_and_ident_equal_scapy() -> None:
    ours = build_ipv4_udp(SRC, DST, 53, 40000, b"q", ttl=1, ident=0xBEEF)
    assert ours == scapy_udp(b"q", ttl=1, id=0xBEEF)


def test_zero_udp_checksum_sent_as_all_ones() -> None:
    # Find a payload whose UDP checksum computes to 0; it must go out as 0xFFFF (RFC 768).
    for n in range(1 << 16):
        payload = struct.pack("!H", n)
        packet = build_ipv4_udp(SRC, DST, 53, 40000, payload)
        if packet[26:28] == b"\xff\xff":
            break
    else:
        pytest.fail("no payload with a zero checksum found")
    assert parse_ipv4_udp(packet)[4].tobytes() == payload
    assert bytes(IP(packet))[26:28] == b"\xff\xff"


def test_header_checksum_matches_scapy() -> None:
    packet = scapy_udp()
    header = bytearray(packet[:20])
    header[10:12] = b"\x00\x00"
    assert ipv4_header_checksum(header) == struct.unpack("!H", packet[10:12])[0]
    assert ipv4_header_checksum(packet[:20]) == 0


def test_parse_scapy_packet() -> None:
    src, dst, sport, dport, payload = parse_ipv4_udp(scapy_udp(b"hello"))
    assert (src, dst, sport, dport) == (SRC, DST, 53, 40000)
    assert isinstance(payload, memoryview) and payload.tobytes() == b"hello"


def test_parse_with_options_and_padding() -> None:
    raw = bytes(
        IP(src="198.18.0.1", dst="198.18.0.2", options=b"\x01\x01\x01\x00")
        / UDP(sport=1, dport=2)
        / b"opt"
    )
    assert raw[0] == 0x46
    assert parse_ipv4_udp(raw + bytes(10))[4].tobytes() == b"opt"


def test_zero_udp_checksum_accepted() -> None:
    raw = bytes(IP(src="198.18.0.1", dst="198.18.0.2") / UDP(sport=1, dport=2, chksum=0) / b"z")
    assert parse_ipv4_udp(raw)[4].tobytes() == b"z"


def test_bad_udp_checksum() -> None:
    raw = bytes(
        IP(src="198.18.0.1", dst="198.18.0.2") / UDP(sport=1, dport=2, chksum=0x1234) / b"z"
    )
    with pytest.raises(BadChecksum):
        parse_ipv4_udp(raw)


def test_bad_header_checksum() -> None:
    raw = bytearray(scapy_udp())
    raw[10] ^= 0xFF
    with pytest.raises(BadChecksum):
        parse_ipv4_udp(raw)


@pytest.mark.parametrize("fields", [{"flags": "MF"}, {"frag": 10}, {"flags": "MF", "frag": 3}])
def test_fragments_refused(fields: dict) -> None:
    with pytest.raises(ParseError) as info:
        parse_ipv4_udp(scapy_udp(**fields))
    assert info.value.reason == "ipv4_fragment"


def test_df_is_not_a_fragment() -> None:
    assert parse_ipv4_udp(scapy_udp(b"df", flags="DF"))[4].tobytes() == b"df"


def test_not_udp() -> None:
    raw = bytes(IP(src="198.18.0.1", dst="198.18.0.2") / TCP())
    with pytest.raises(ParseError) as info:
        parse_ipv4_udp(raw)
    assert info.value.reason == "not_udp"


def test_bad_version() -> None:
    raw = bytearray(scapy_udp())
    raw[0] = 0x65
    with pytest.raises(BadVersion):
        parse_ipv4_udp(raw)


@pytest.mark.parametrize("size", [0, 19, 27])
def test_truncated(size: int) -> None:
    raw = scapy_udp(b"")[:size]
    if size >= 20:
        raw = bytes(IP(src="198.18.0.1", dst="198.18.0.2", proto=17) / b"\x00\x01\x00\x02")
    with pytest.raises(TruncatedPacket):
        parse_ipv4_udp(raw)


def test_total_length_beyond_buffer() -> None:
    raw = scapy_udp()
    with pytest.raises(BadLength):
        parse_ipv4_udp(raw[:-1])


def test_ihl_below_five() -> None:
    raw = bytearray(scapy_udp())
    raw[0] = 0x44
    with pytest.raises(BadLength):
        parse_ipv4_udp(raw)


def test_udp_length_beyond_ip_payload() -> None:
    raw = bytes(IP(src="198.18.0.1", dst="198.18.0.2") / UDP(sport=1, dport=2, len=100) / b"z")
    with pytest.raises(BadLength):
        parse_ipv4_udp(raw)


def test_build_rejects_bad_addresses_and_size() -> None:
    with pytest.raises(ValueError):
        build_ipv4_udp(b"\x01", DST, 1, 2, b"")
    with pytest.raises(ValueError):
        build_ipv4_udp(SRC, DST, 1, 2, bytes(65536))


@given(st.binary(max_size=200), st.integers(0, 255), st.integers(0, 0xFFFF))
def test_round_trip(payload: bytes, ttl: int, ident: int) -> None:
    packet = build_ipv4_udp(SRC, DST, 5353, 53, payload, ttl=ttl, ident=ident)
    assert parse_ipv4_udp(packet)[4].tobytes() == payload


@given(st.binary(max_size=80))
def test_fuzz_only_parse_errors(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_ipv4_udp(data)


def test_echo_reply_matches_scapy() -> None:
    from scapy.all import ICMP, IP, raw

    from netstack.wire.ipv4 import icmpv4_echo_reply

    request = raw(IP(src="198.18.0.2", dst="198.18.0.1") / ICMP(id=7, seq=3) / b"hello")
    expected = IP(src="198.18.0.1", dst="198.18.0.2", ttl=64, id=0) / ICMP(type=0, id=7, seq=3) / b"hello"
    assert icmpv4_echo_reply(request) == raw(expected)


def test_echo_reply_refuses_non_requests_and_bad_checksums() -> None:
    from scapy.all import ICMP, IP, UDP, raw

    from netstack.wire.ipv4 import icmpv4_echo_reply

    assert icmpv4_echo_reply(raw(IP() / ICMP(type=0))) is None
    assert icmpv4_echo_reply(raw(IP() / UDP())) is None
    assert icmpv4_echo_reply(raw(IP() / ICMP(chksum=1) / b"x")) is None
    assert icmpv4_echo_reply(raw(IP(flags="MF") / ICMP())) is None
    assert icmpv4_echo_reply(b"\x45") is None
