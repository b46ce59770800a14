"""Internet checksum (RFC 1071), the IPv6 pseudo-header (RFC 8200 8.1), incremental update (RFC 1624)."""

from __future__ import annotations

import struct


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ones_complement_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """Folded 16-bit ones' complement sum of `data` (odd length padded with a zero octet).

    The buffer is read as one big integer: since 2**16 = 1 (mod 0xFFFF), the end-around-carry
    sum of its 16-bit words is that integer modulo 0xFFFF, except that a non-zero buffer never
    sums to 0 but to 0xFFFF. One C-level conversion and one modulo: ~0.5 us for 1400 octets.
    """
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8
    words = value % 0xFFFF or (0xFFFF if value else 0)
    return _fold(initial + words)


def internet_checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The checksum to write into a header: ~sum, with 0 kept as 0xFFFF only by UDP callers."""
    return (~ones_complement_sum(data, initial)) & 0xFFFF


def pseudo_header_sum(src: bytes, dst: bytes, length: int, next_header: int) -> int:
    """Folded sum of the IPv6 pseudo-header (RFC 8200 8.1); pass as `initial`."""
    return ones_complement_sum(src + dst + struct.pack("!IxxxB", length, next_header))


def incremental_update(old_checksum: int, old: bytes, new: bytes) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), over equal-length even-sized fields."""
    if len(old) != len(new) or len(old) & 1:
        raise ValueError("old and new must have the same even length")
    total = (~old_checksum) & 0xFFFF
    total += ones_complement_sum(bytes(b ^ 0xFF for b in old))
    total += ones_complement_sum(new)
    return (~_fold(total)) & 0xFFFF
