"""Constants, mapping tables and checksum helpers shared by the RFC 7915 translator's parts."""

from __future__ import annotations

import struct

from netstack.wire.checksum import ones_complement_sum, pseudo_header_sum

PROTO_HOPOPTS = 0
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ROUTING = 43
PROTO_FRAGMENT = 44
PROTO_ICMPV6 = 58
PROTO_DSTOPTS = 60

IPV4_HEADER_LEN = 20
IPV6_HEADER_LEN = 40
FRAGMENT_HEADER_LEN = 8
ICMPV6_ERROR_MAX = 1280  # RFC 4443 2.4(c): an ICMPv6 error must fit the minimum MTU
ICMPV4_ERROR_MAX = 576  # RFC 1812 4.3.2.3
DF_THRESHOLD = 1260  # RFC 7915 5.1: larger translated IPv4 packets get DF=1

RFC1191_PLATEAUS = (65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_FRAG = struct.Struct("!BxHI")
_H = struct.Struct("!H")

# Extension headers the 6->4 direction skips (RFC 7915 5.1, "Protocol").
_SKIPPED_EXT = frozenset((PROTO_HOPOPTS, PROTO_ROUTING, PROTO_DSTOPTS))
# After a Fragment Header none of these may follow (RFC 7915 5.1.1; ESP is fine).
_EXT_AFTER_FRAGMENT = frozenset((0, 43, 44, 51, 60, 135, 139, 140, 253, 254))

# RFC 7915 4.2, ICMPv4 Destination Unreachable code -> ICMPv6 Destination Unreachable code.
# Code 2 (protocol) becomes a Parameter Problem and code 4 a Packet Too Big (handled apart);
# 14 (host precedence violation) and unknown codes are dropped.
_DU4_TO_DU6 = {0: 0, 1: 0, 3: 4, 5: 0, 6: 0, 7: 0, 8: 0, 9: 1, 10: 1, 11: 0, 12: 0, 13: 1, 15: 1}
# RFC 7915 Figure 3: IPv4 Parameter Problem pointer -> IPv6 pointer (missing = n/a = drop).
_POINTER_4TO6 = {0: 0, 1: 1, 2: 4, 3: 4, 8: 7, 9: 6, 12: 8, 13: 8, 14: 8, 15: 8,
                 16: 24, 17: 24, 18: 24, 19: 24}  # fmt: skip
# RFC 7915 5.2, ICMPv6 Destination Unreachable code -> ICMPv4 Destination Unreachable code.
_DU6_TO_DU4 = {0: 1, 1: 10, 2: 1, 3: 1, 4: 3}
# RFC 7915 Figure 6: IPv6 Parameter Problem pointer -> IPv4 pointer.
_POINTER_6TO4 = {0: 0, 1: 1, 4: 2, 5: 2, 6: 9, 7: 8}
_POINTER_6TO4.update({p: 12 for p in range(8, 24)})
_POINTER_6TO4.update({p: 16 for p in range(24, 40)})

_ICMP4_ECHO_TO_6 = {8: 128, 0: 129}
_ICMP6_ECHO_TO_4 = {128: 8, 129: 0}


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _sum(data: bytes) -> int:
    """Folded ones' complement sum of an even-length field (addresses, 16-bit words)."""
    return _fold(sum(struct.unpack(f"!{len(data) // 2}H", data)))


def _adjust(checksum: int, removed: int, added: int) -> int:
    """RFC 1624 eqn. 3 with precomputed sums: a wrong checksum stays wrong by the same amount."""
    total = (~checksum & 0xFFFF) + (~removed & 0xFFFF) + added
    return ~_fold(total) & 0xFFFF


def _checksum(data: bytes, initial: int = 0) -> int:
    return ~ones_complement_sum(data, initial) & 0xFFFF


def _ipv4_header_checksum(header: bytearray) -> None:
    header[10:12] = b"\x00\x00"
    header[10:12] = _H.pack(_checksum(bytes(header)))


def _has_unexpired_source_route(options: bytes) -> bool:
    """LSRR (131) or SSRR (137) whose pointer has not run past the option (RFC 7915 4.1)."""
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:  # end of option list
            return False
        if kind == 1:  # no-operation
            i += 1
            continue
        if i + 1 >= len(options):
            return False
        length = options[i + 1]
        if length < 2:
            return False
        if kind in (131, 137) and i + 2 < len(options) and options[i + 2] <= length:
            return True
        i += length
    return False


def _retype_icmp_4to6(icmp: bytes, src6: bytes, dst6: bytes, upper_len: int) -> bytes:
    """Echo in a packet in error: new type and pseudo-header, checksum updated incrementally."""
    old_word = icmp[0] << 8 | icmp[1]
    new_type = _ICMP4_ECHO_TO_6[icmp[0]]
    new_word = new_type << 8 | icmp[1]
    checksum = _H.unpack_from(icmp, 2)[0]
    added = _fold(new_word + pseudo_header_sum(src6, dst6, upper_len, PROTO_ICMPV6))
    checksum = _adjust(checksum, old_word, added)
    return bytes((new_type, icmp[1])) + _H.pack(checksum) + icmp[4:]


def _retype_icmp_6to4(icmp: bytes, src6: bytes, dst6: bytes, upper_len: int) -> bytes:
    old_word = icmp[0] << 8 | icmp[1]
    new_type = _ICMP6_ECHO_TO_4[icmp[0]]
    new_word = new_type << 8 | icmp[1]
    checksum = _H.unpack_from(icmp, 2)[0]
    removed = _fold(old_word + pseudo_header_sum(src6, dst6, upper_len, PROTO_ICMPV6))
    checksum = _adjust(checksum, removed, new_word)
    return bytes((new_type, icmp[1])) + _H.pack(checksum) + icmp[4:]


def _inner_has_fragment_header(data: bytes) -> bool:
    if len(data) < IPV6_HEADER_LEN:
        return False
    next_header, offset = data[6], IPV6_HEADER_LEN
    while next_header in _SKIPPED_EXT and offset + 2 <= len(data):
        next_header, offset = data[offset], offset + (data[offset + 1] + 1) * 8
    return next_header == PROTO_FRAGMENT


# -- module-level convenience (a shared default translator) ---------------------------------
