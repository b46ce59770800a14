"""Transport mode placement (RFC 4303 3.1.1, RFC 3776: HAO and RH2 outside ESP) and
tunnel mode (inner IPv6 / IPv4) on whole packets."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    HAO,
    MIP6MH_BA,
    MIP6MH_BU,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import ESP as ScapyESP
from scapy.packet import Raw

from netstack.ipsec._ip6chain import walk
from netstack.ipsec.errors import BadNextHeader
from netstack.ipsec.esp import protect, unprotect
from netstack.ipsec.modes import (
    transport_protect,
    transport_unprotect,
    tunnel_protect,
    tunnel_unprotect,
)
from netstack.ipsec.sa import SecurityAssociation
from netstack.ipsec.transforms import AES_GCM_16

MN_COA = "2001:db8:a::10"
HOA = "2001:db8:6::1000"
HA = "2001:db8:6::1"


def pair(mode: str = "transport") -> tuple[SecurityAssociation, SecurityAssociation]:
    common = {
        "spi": 0x3001,
        "algorithm": AES_GCM_16,
        "key": bytes(range(20)),
        "mode": mode,
        "src": IPv6Address(MN_COA),
        "dst": IPv6Address(HA),
    }
    return SecurityAssociation(**common), SecurityAssociation(**common)


def _check_transport(packet: bytes, expected_outer: list[type]) -> IPv6:
    tx, rx = pair()
    protected = transport_protect(tx, packet, now=0.0)
    parsed = IPv6(protected)
    assert parsed.plen == len(protected) - 40
    layer = parsed.payload
    for cls in expected_outer:
        assert isinstance(layer, cls), parsed.summary()
        layer = layer.payload
    assert isinstance(layer, ScapyESP)
    assert layer.spi == 0x3001
    assert transport_unprotect(rx, protected, now=0.0) == packet
    return parsed


def test_plain_udp_esp_after_ipv6_header() -> None:
    packet = bytes(IPv6(src=HOA, dst=HA) / UDP(sport=1, dport=2) / Raw(b"data"))
    parsed = _check_transport(packet, [])
    assert parsed.nh == 50


def test_binding_update_hao_stays_outside() -> None:
    packet = bytes(
        IPv6(src=MN_COA, dst=HA)
        / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)])
        / MIP6MH_BU(seq=7, flags="AH", mhtime=100)
    )
    parsed = _check_transport(packet, [IPv6ExtHdrDestOpt])
    assert parsed[IPv6ExtHdrDestOpt].nh == 50
    assert parsed[HAO].hoa == HOA
    chain = walk(packet)
    assert chain.home_address == IPv6Address(HOA).packed
    assert chain.mh_type == 5 and chain.upper_protocol == 135


def test_binding_ack_rh2_stays_outside() -> None:
    packet = bytes(
        IPv6(src=HA, dst=MN_COA)
        / IPv6ExtHdrRouting(type=2, addresses=[HOA], segleft=1)
        / MIP6MH_BA(status=0, seq=7, mhtime=100)
    )
    parsed = _check_transport(packet, [IPv6ExtHdrRouting])
    assert parsed[IPv6ExtHdrRouting].nh == 50
    assert walk(packet).effective_dst == IPv6Address(HOA).packed


def test_hop_by_hop_rh2_and_hao_all_outside() -> None:
    packet = bytes(
        IPv6(src=MN_COA, dst=HA)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(type=2, addresses=[HOA], segleft=1)
        / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)])
        / UDP(sport=5060, dport=5060)
        / Raw(b"INVITE")
    )
    _check_transport(packet, [IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt])


def test_destination_options_without_hao_go_inside() -> None:
    packet = bytes(IPv6(src=HOA, dst=HA) / IPv6ExtHdrDestOpt() / UDP(sport=1, dport=2))
    tx, _ = pair()
    protected = transport_protect(tx, packet, now=0.0)
    assert protected[6] == 50  # ESP directly after the IPv6 header
    assert IPv6ExtHdrDestOpt not in IPv6(protected)


def test_tunnel_inner_ipv6() -> None:
    tx, rx = pair("tunnel")
    inner = bytes(IPv6(src="2001:db8:8::1001", dst=HOA, tc=0xB8) / UDP(sport=9, dport=9) / Raw(b"rtp"))
    outer = tunnel_protect(tx, inner, now=0.0)
    parsed = IPv6(outer)
    assert (parsed.src, parsed.dst, parsed.nh, parsed.tc) == (MN_COA, HA, 50, 0xB8)
    assert parsed.plen == len(outer) - 40
    assert tunnel_unprotect(rx, outer, now=0.0) == inner


def test_tunnel_inner_ipv4_next_header_4() -> None:
    tx, rx = pair("tunnel")
    inner = bytes(IP(src="192.0.2.1", dst="198.51.100.2", tos=0x20) / UDP(sport=1, dport=2) / Raw(b"v4"))
    outer = tunnel_protect(tx, inner, now=0.0)
    assert IPv6(outer).tc == 0x20
    receiver_copy = pair("tunnel")[1]
    assert unprotect(receiver_copy, outer[40:], 0.0) == (4, inner)  # next header 4 = IPv4
    assert tunnel_unprotect(rx, outer, now=0.0) == inner


def test_tunnel_sa_refuses_non_ip_payload() -> None:
    tx, rx = pair("tunnel")
    esp = protect(tx, b"not an ip packet", 17, now=0.0)
    packet = bytes(IPv6(src=MN_COA, dst=HA, nh=50) / Raw(esp))
    with pytest.raises(BadNextHeader):
        tunnel_unprotect(rx, packet, now=0.0)
