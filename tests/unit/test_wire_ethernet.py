"""Ethernet II framing helpers."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.l2 import Ether

from netstack.wire.errors import TruncatedPacket
from netstack.wire.ethernet import (
    ETH_HEADER_LEN,
    ETH_P_IPV6,
    build_ethernet,
    mac_from_str,
    mac_to_str,
    multicast_mac,
    parse_ethernet,
)

SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("3333ff000001")


def test_build_equals_scapy() -> None:
    payload = b"\x60" + bytes(39)
    ours = build_ethernet(DST_MAC, SRC_MAC, ETH_P_IPV6, payload)
    theirs = Ether(dst="33:33:ff:00:00:01", src="02:00:00:00:00:01", type=ETH_P_IPV6) / payload
    assert ours == bytes(theirs)


def test_parse_returns_view_of_payload() -> None:
    frame = bytearray(build_ethernet(DST_MAC, SRC_MAC, 0x0800, b"hello"))
    dst, src, ethertype, payload = parse_ethernet(frame)
    assert (dst, src, ethertype) == (DST_MAC, SRC_MAC, 0x0800)
    assert isinstance(payload, memoryview) and payload.tobytes() == b"hello"
    frame[ETH_HEADER_LEN] = ord("j")  # a view, not a copy
    assert payload.tobytes() == b"jello"


@pytest.mark.parametrize("size", range(ETH_HEADER_LEN))
def test_parse_truncated(size: int) -> None:
    with pytest.raises(TruncatedPacket):
        parse_ethernet(bytes(size))


def test_build_rejects_bad_mac() -> None:
    with pytest.raises(ValueError):
        build_ethernet(b"\x01", SRC_MAC, ETH_P_IPV6, b"")


def test_multicast_mac() -> None:
    assert multicast_mac(IPv6Address("ff02::1:ff12:3456")) == bytes.fromhex("3333ff123456")
    assert multicast_mac(IPv6Address("ff02::2").packed) == bytes.fromhex("333300000002")


def test_mac_strings() -> None:
    assert mac_to_str(SRC_MAC) == "02:00:00:00:00:01"
    assert mac_from_str("02:00:00:00:00:01") == SRC_MAC
    assert mac_from_str("AA-BB-CC-DD-EE-FF") == bytes.fromhex("aabbccddeeff")
    for bad in ["", "02:00:00:00:00", "02:00:00:00:00:01:02", "zz:00:00:00:00:01", "002:0:0:0:0:1"]:
        with pytest.raises(ValueError):
            mac_from_str(bad)


@given(st.binary(min_size=6, max_size=6))
def test_mac_string_round_trip(mac: bytes) -> None:
    assert mac_from_str(mac_to_str(mac)) == mac
