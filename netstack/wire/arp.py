"""ARP (RFC 826) for Ethernet and IPv4: the 28-octet packet carried in ethertype 0x0806.

The guest agent answers ARP on the host link (virtual network 15) for its gateway address and
the virtual IPv4 pool, so these helpers work on the ARP payload only; Ethernet framing is
`netstack.wire.ethernet`. Frames arriving from a NIC are padded to 60 octets, so parsing
accepts trailing bytes after the 28 that matter.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from netstack.wire.errors import BadLength, ParseError, TruncatedPacket

ARP_REQUEST = 1
ARP_REPLY = 2
ARP_LEN = 28
HTYPE_ETHERNET = 1
PTYPE_IPV4 = 0x0800
ZERO_MAC = bytes(6)

# htype, ptype, hlen, plen, op, sender MAC, sender IP, target MAC, target IP
_ARP = struct.Struct("!HHBBH6s4s6s4s")


@dataclass(frozen=True, slots=True)
class ArpPacket:
    """One Ethernet/IPv4 ARP packet; MACs are 6 octets, IPs 4 octets (network order)."""

    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes

    @property
    def is_request(self) -> bool:
        return self.op == ARP_REQUEST

    @property
    def is_reply(self) -> bool:
        return self.op == ARP_REPLY


def parse_arp(payload: bytes | bytearray | memoryview) -> ArpPacket:
    """Decode an ARP payload (Ethernet header already removed); ParseError when unusable.

    Only hardware type Ethernet with protocol IPv4 is accepted: ARP for anything else on the
    host link is not ours to answer.
    """
    view = memoryview(payload)
    if len(view) < ARP_LEN:
        raise TruncatedPacket(f"ARP needs {ARP_LEN} octets, got {len(view)}")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(view)
    if htype != HTYPE_ETHERNET or ptype != PTYPE_IPV4:
        raise ParseError(
            f"ARP for hardware {htype} / protocol {ptype:#06x} is not Ethernet/IPv4",
            reason="arp_unsupported",
        )
    if hlen != 6 or plen != 4:
        raise BadLength(f"ARP address lengths {hlen}/{plen}, expected 6/4")
    if op not in (ARP_REQUEST, ARP_REPLY):
        raise ParseError(f"ARP opcode {op} is neither request nor reply", reason="arp_bad_op")
    return ArpPacket(op=op, sender_mac=sha, sender_ip=spa, target_mac=tha, target_ip=tpa)


def build_arp(
    op: int,
    sender_mac: bytes,
    sender_ip: bytes,
    target_mac: bytes,
    target_ip: bytes,
) -> bytes:
    """Encode an Ethernet/IPv4 ARP packet (28 octets, no Ethernet header, no padding)."""
    if len(sender_mac) != 6 or len(target_mac) != 6:
        raise ValueError("ARP MAC addresses are 6 octets")
    if len(sender_ip) != 4 or len(target_ip) != 4:
        raise ValueError("ARP IPv4 addresses are 4 octets")
    return _ARP.pack(
        HTYPE_ETHERNET, PTYPE_IPV4, 6, 4, op, sender_mac, sender_ip, target_mac, target_ip
    )


def build_arp_packet(packet: ArpPacket) -> bytes:
    """`build_arp` from a dataclass (round trip of `parse_arp`)."""
    return build_arp(
        packet.op, packet.sender_mac, packet.sender_ip, packet.target_mac, packet.target_ip
    )


def arp_reply_for(request: ArpPacket, our_mac: bytes) -> bytes:
    """The reply claiming `request.target_ip` for `our_mac`, addressed to the requester.

    The caller decides whether the target IP is one we answer for (gateway or pool); this
    only swaps the roles as RFC 826 describes. The reply is sent unicast to
    `request.sender_mac` by the caller.
    """
    if request.op != ARP_REQUEST:
        raise ValueError("only an ARP request can be answered")
    return build_arp(ARP_REPLY, our_mac, request.target_ip, request.sender_mac, request.sender_ip)
