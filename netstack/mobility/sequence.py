"""Binding Update sequence numbers: 16-bit circular counters (RFC 6275 9.5.1, RFC 1982).

A value is "less than" the values up to 32767 above it modulo 2**16, so 65535 < 0.
Two values exactly 32768 apart are not comparable (RFC 1982): neither is less.
"""

from __future__ import annotations

import random

SEQUENCE_MODULUS = 1 << 16
_HALF = 1 << 15


def seq_add(sequence: int, increment: int = 1) -> int:
    """`sequence + increment` modulo 2**16."""
    return (sequence + increment) % SEQUENCE_MODULUS


def seq_next(sequence: int) -> int:
    """The sequence number that follows `sequence` (65535 → 0)."""
    return seq_add(sequence, 1)


def seq_less_than(a: int, b: int) -> bool:
    """RFC 1982 serial comparison with SERIAL_BITS = 16: True when a < b."""
    a %= SEQUENCE_MODULUS
    b %= SEQUENCE_MODULUS
    return (a < b and b - a < _HALF) or (a > b and a - b > _HALF)


def seq_greater_than(a: int, b: int) -> bool:
    """RFC 1982 serial comparison: True when a > b."""
    return seq_less_than(b, a)


def bu_sequence_is_newer(received: int, last: int) -> bool:
    """RFC 6275 9.5.1: a Binding Update's sequence number is newer than the last accepted one.

    RFC 6275 counts the last number and the 32767 values before it as "less than or equal"
    (its example: after 15, 0-15 and 32784-65535 are old), so a value exactly 32768 ahead is
    newer, unlike RFC 1982 serial arithmetic (TAHI BU_SEQ_MAX_A1 / BU_SEQ_OVERFLOW_MAX_A1).
    """
    return 1 <= (received - last) % SEQUENCE_MODULUS <= _HALF


def seq_less_or_equal(a: int, b: int) -> bool:
    """True when a == b or a < b (modulo 2**16)."""
    return a % SEQUENCE_MODULUS == b % SEQUENCE_MODULUS or seq_less_than(a, b)


def random_initial_sequence(rng: random.Random) -> int:
    """A random starting sequence number (so a rebooted node does not reuse old values)."""
    return rng.randrange(SEQUENCE_MODULUS)
