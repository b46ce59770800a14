"""ICMP errors a translator originates (RFC 7915 4.4/5.4), with RFC 1812/4443 suppression."""

from __future__ import annotations

import struct

from netstack.wire.checksum import ones_complement_sum, pseudo_header_sum

PROTO_ICMP = 1
PROTO_ICMPV6 = 58
IPV4_HEADER_LEN = 20
IPV6_HEADER_LEN = 40
ICMPV6_ERROR_MAX = 1280  # RFC 4443 2.4(c): an ICMPv6 error must fit the minimum MTU
ICMPV4_ERROR_MAX = 576  # RFC 1812 4.3.2.3

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_H = struct.Struct("!H")
_ICMP4_ERROR_TYPES = frozenset((3, 4, 5, 11, 12))


def _checksum(data: bytes, initial: int = 0) -> int:
    return ~ones_complement_sum(data, initial) & 0xFFFF


def _ipv4_header_checksum(header: bytearray) -> None:
    header[10:12] = b"\x00\x00"
    header[10:12] = _H.pack(_checksum(bytes(header)))


def _is_icmpv4_error_or_fragment(packet: bytes) -> bool:
    """RFC 1812 4.3.2.7: no ICMP error about an ICMP error or a non-first fragment."""
    ihl = (packet[0] & 0x0F) * 4
    if _H.unpack_from(packet, 6)[0] & 0x1FFF:
        return True
    return packet[9] == PROTO_ICMP and len(packet) > ihl and packet[ihl] in _ICMP4_ERROR_TYPES


def build_icmpv4_error(
    original: bytes, src4: bytes, icmp_type: int, code: int, *, rest: int = 0, ttl: int = 64
) -> bytes | None:
    """ICMPv4 error about `original` (an IPv4 packet) sent from `src4` to its source.

    `rest` is the low 16 bits of the second word (the next-hop MTU for type 3 code 4).
    None when RFC 1812 forbids an error (original is an ICMP error or a later fragment).
    """
    if len(original) < IPV4_HEADER_LEN or _is_icmpv4_error_or_fragment(original):
        return None
    quoted = original[: ICMPV4_ERROR_MAX - IPV4_HEADER_LEN - 8]
    body = struct.pack("!BBHHH", icmp_type, code, 0, 0, rest & 0xFFFF) + quoted
    body = body[:2] + _H.pack(_checksum(body)) + body[4:]
    header = bytearray(
        _IPV4.pack(0x45, 0, IPV4_HEADER_LEN + len(body), 0, 0, ttl, PROTO_ICMP, 0, src4, original[12:16])
    )
    _ipv4_header_checksum(header)
    return bytes(header) + body


def icmpv4_admin_prohibited(original_ipv4_packet: bytes, src4: bytes) -> bytes | None:
    """Destination Unreachable, Communication Administratively Prohibited (type 3 code 13).

    What the caller sends when table 230 cannot map a host packet (RFC 7915 4.4). None when
    no error may be sent (the packet is itself an ICMP error or a non-first fragment).
    """
    return build_icmpv4_error(bytes(original_ipv4_packet), src4, 3, 13)


def build_icmpv6_error(
    original: bytes, src6: bytes, icmp_type: int, code: int, value: int = 0, hop_limit: int = 64
) -> bytes | None:
    """ICMPv6 error about `original` (an IPv6 packet) sent from `src6` to its source.

    `value` is the 32-bit field after the checksum (MTU or pointer). None for an ICMPv6
    error about an ICMPv6 error (RFC 4443 2.4(e)); fragments are not inspected.
    """
    if len(original) < IPV6_HEADER_LEN:
        return None
    if original[6] == PROTO_ICMPV6 and len(original) > IPV6_HEADER_LEN and original[40] < 128:
        return None
    dst6 = original[8:24]
    quoted = original[: ICMPV6_ERROR_MAX - IPV6_HEADER_LEN - 8]
    body = struct.pack("!BBHI", icmp_type, code, 0, value & 0xFFFFFFFF) + quoted
    checksum = _checksum(body, pseudo_header_sum(src6, dst6, len(body), PROTO_ICMPV6))
    body = body[:2] + _H.pack(checksum) + body[4:]
    return _IPV6.pack(0x60000000, len(body), PROTO_ICMPV6, hop_limit, src6, dst6) + body
