"""Ethernet II framing helpers (IEEE 802.3 / RFC 894) and IPv6 multicast MACs (RFC 2464 7)."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address

from netstack.wire.errors import TruncatedPacket

ETH_P_IPV6 = 0x86DD
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_HEADER_LEN = 14
MAC_LEN = 6
BROADCAST_MAC = b"\xff" * 6

_ETH_HEADER = struct.Struct("!6s6sH")


def build_ethernet(dst_mac: bytes, src_mac: bytes, ethertype: int, payload: bytes) -> bytes:
    """Ethernet II frame without FCS (the NIC adds it and pads short frames)."""
    if len(dst_mac) != MAC_LEN or len(src_mac) != MAC_LEN:
        raise ValueError("MAC addresses are 6 octets")
    return _ETH_HEADER.pack(dst_mac, src_mac, ethertype) + bytes(payload)


def parse_ethernet(frame: bytes | bytearray | memoryview) -> tuple[bytes, bytes, int, memoryview]:
    """Split a frame into (dst MAC, src MAC, ethertype, payload view without copying)."""
    view = memoryview(frame)
    if len(view) < ETH_HEADER_LEN:
        raise TruncatedPacket(f"Ethernet header needs 14 octets, got {len(view)}")
    dst, src, ethertype = _ETH_HEADER.unpack_from(view)
    return dst, src, ethertype, view[ETH_HEADER_LEN:]


def multicast_mac(ipv6: IPv6Address | bytes) -> bytes:
    """33:33 followed by the last four octets of the IPv6 multicast address (RFC 2464 7)."""
    packed = ipv6.packed if isinstance(ipv6, IPv6Address) else bytes(ipv6)
    if len(packed) != 16:
        raise ValueError("an IPv6 address is 16 octets")
    return b"\x33\x33" + packed[12:]


def mac_to_str(mac: bytes) -> str:
    """'02:00:5e:10:00:01' form."""
    return ":".join(f"{b:02x}" for b in mac)


def mac_from_str(text: str) -> bytes:
    """Parse 'aa:bb:cc:dd:ee:ff' (or '-' separated); ValueError when malformed."""
    parts = text.strip().replace("-", ":").split(":")
    if len(parts) != MAC_LEN or not all(1 <= len(p) <= 2 for p in parts):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)
