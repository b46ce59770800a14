"""HAO / type 2 RH on bytes (RFC 6275 6.3, 6.4): what scapy and our parser read back."""

from __future__ import annotations

from ipaddress import IPv6Address

from scapy.layers.inet6 import TCP as ScapyTCP
from scapy.layers.inet6 import IPv6

from netstack.wire.ipv6 import parse_ipv6_packet
from netstack.wire.ro_headers import (
    HomeAddressInserter,
    RoutingHeaderInserter,
    home_address_of,
    routing_header_address,
    strip_home_address,
    strip_routing_header,
)

HOA = IPv6Address("2001:db8:6::1000")
COA = IPv6Address("2001:db8:b::5")
CN = IPv6Address("2001:db8:8::1001")


def _tcp(src: IPv6Address, dst: IPv6Address) -> bytes:
    return bytes(IPv6(src=str(src), dst=str(dst)) / ScapyTCP(sport=1234, dport=80) / b"payload")


def test_home_address_option_round_trip() -> None:
    plain = _tcp(HOA, CN)
    out = HomeAddressInserter(COA.packed, HOA.packed).insert(plain)
    parsed = parse_ipv6_packet(out)
    assert parsed.src == COA and parsed.home_address == HOA and parsed.upper_protocol == 6
    assert len(out) == len(plain) + 24
    # the TCP checksum is the sender's, over the home address: scapy agrees once swapped back
    assert home_address_of(out) == HOA.packed
    back = strip_home_address(out, HOA.packed)
    assert bytes(back) == plain
    assert IPv6(bytes(back))[ScapyTCP].chksum == IPv6(plain)[ScapyTCP].chksum


def test_routing_header_round_trip() -> None:
    plain = _tcp(CN, HOA)
    out = RoutingHeaderInserter(COA.packed, HOA.packed).insert(plain)
    parsed = parse_ipv6_packet(out)
    assert parsed.dst == COA and parsed.routing_type2 == HOA and parsed.upper_protocol == 6
    assert routing_header_address(out) == HOA.packed
    assert bytes(strip_routing_header(out, HOA.packed)) == plain


def test_not_our_headers() -> None:
    plain = _tcp(HOA, CN)
    assert home_address_of(plain) is None and routing_header_address(plain) is None
