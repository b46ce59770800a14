"""ARP (RFC 826) codec, checked against scapy's encoding."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.l2 import ARP

from netstack.wire.arp import (
    ARP_LEN,
    ARP_REPLY,
    ARP_REQUEST,
    ArpPacket,
    arp_reply_for,
    build_arp,
    build_arp_packet,
    parse_arp,
)
from netstack.wire.errors import BadLength, ParseError, TruncatedPacket

HOST_MAC = bytes.fromhex("020000000015")
AGENT_MAC = bytes.fromhex("02000000aa01")
HOST_IP = bytes([198, 18, 0, 2])
GATEWAY_IP = bytes([198, 18, 0, 1])


def scapy_request() -> bytes:
    return bytes(
        ARP(
            op=1,
            hwsrc="02:00:00:00:00:15",
            psrc="198.18.0.2",
            hwdst="00:00:00:00:00:00",
            pdst="198.18.0.1",
        )
    )


def test_build_request_equals_scapy() -> None:
    ours = build_arp(ARP_REQUEST, HOST_MAC, HOST_IP, bytes(6), GATEWAY_IP)
    assert ours == scapy_request()
    assert len(ours) == ARP_LEN


def test_parse_scapy_request() -> None:
    packet = parse_arp(scapy_request())
    assert packet == ArpPacket(ARP_REQUEST, HOST_MAC, HOST_IP, bytes(6), GATEWAY_IP)
    assert packet.is_request and not packet.is_reply


def test_reply_equals_scapy_reply() -> None:
    reply = arp_reply_for(parse_arp(scapy_request()), AGENT_MAC)
    theirs = ARP(
        op=2,
        hwsrc="02:00:00:00:aa:01",
        psrc="198.18.0.1",
        hwdst="02:00:00:00:00:15",
        pdst="198.18.0.2",
    )
    assert reply == bytes(theirs)
    parsed = parse_arp(reply)
    assert parsed.is_reply
    assert (parsed.sender_mac, parsed.sender_ip) == (AGENT_MAC, GATEWAY_IP)
    assert (parsed.target_mac, parsed.target_ip) == (HOST_MAC, HOST_IP)


def test_parse_ignores_ethernet_padding() -> None:
    padded = scapy_request() + bytes(18)  # a 60-octet frame minus the Ethernet header
    assert parse_arp(memoryview(padded)).target_ip == GATEWAY_IP


def test_reply_to_a_reply_is_refused() -> None:
    reply = ArpPacket(ARP_REPLY, HOST_MAC, HOST_IP, AGENT_MAC, GATEWAY_IP)
    with pytest.raises(ValueError):
        arp_reply_for(reply, AGENT_MAC)


@pytest.mark.parametrize("size", range(ARP_LEN))
def test_truncated(size: int) -> None:
    with pytest.raises(TruncatedPacket):
        parse_arp(scapy_request()[:size])


@pytest.mark.parametrize(
    ("offset", "value", "reason"),
    [
        (0, b"\x00\x06", "arp_unsupported"),  # hardware type IEEE 802
        (2, b"\x86\xdd", "arp_unsupported"),  # protocol IPv6
        (6, b"\x00\x03", "arp_bad_op"),  # RARP request
    ],
)
def test_unsupported_fields(offset: int, value: bytes, reason: str) -> None:
    raw = bytearray(scapy_request())
    raw[offset : offset + 2] = value
    with pytest.raises(ParseError) as info:
        parse_arp(raw)
    assert info.value.reason == reason


def test_bad_address_lengths() -> None:
    raw = bytearray(scapy_request())
    raw[4] = 8  # hlen
    with pytest.raises(BadLength):
        parse_arp(raw)


def test_build_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        build_arp(ARP_REQUEST, b"\x01", HOST_IP, bytes(6), GATEWAY_IP)
    with pytest.raises(ValueError):
        build_arp(ARP_REQUEST, HOST_MAC, b"\x01\x02", bytes(6), GATEWAY_IP)


@given(
    op=st.sampled_from([ARP_REQUEST, ARP_REPLY]),
    macs=st.lists(st.binary(min_size=6, max_size=6), min_size=2, max_size=2),
    ips=st.lists(st.binary(min_size=4, max_size=4), min_size=2, max_size=2),
)
def test_round_trip(op: int, macs: list[bytes], ips: list[bytes]) -> None:
    packet = ArpPacket(op, macs[0], ips[0], macs[1], ips[1])
    assert parse_arp(build_arp_packet(packet)) == packet


@given(st.binary(max_size=64))
def test_fuzz_only_parse_errors(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_arp(data)
