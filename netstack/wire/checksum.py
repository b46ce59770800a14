"""Internet checksum (RFC 1071), the IPv6 pseudo-header (RFC 8200 8.1), incremental update (RFC 1624)."""

from __future__ import annotations

import struct


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ones_complement_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """Folded 16-bit ones' complement sum of `data` (odd length padded with a zero octet)."""
    data = bytes(data)
    if len(data) & 1:
        data += b"\x00"
    # int.from_bytes over the whole buffer then folding is much faster in CPython than a loop.
    total = initial
    if data:
        words = int.from_bytes(data, "big")
        n = len(data) // 2
        # Sum 16-bit words via repeated folding of the big integer, 64 bits at a time.
        while n > 4:
            # fold the upper half onto the lower half; ones' complement sum is associative
            half = (n // 2) * 16
            words = (words >> half) + (words & ((1 << half) - 1))
            n = (n + 1) // 2 + 1
        total += words
    return _fold(total)


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
