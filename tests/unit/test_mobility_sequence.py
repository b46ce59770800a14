from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netstack.mobility.sequence import (
    random_initial_sequence,
    seq_add,
    seq_greater_than,
    seq_less_or_equal,
    seq_less_than,
    seq_next,
)

seqs = st.integers(min_value=0, max_value=65535)


def test_next_wraps_from_65535_to_0() -> None:
    assert seq_next(65535) == 0
    assert seq_next(0) == 1
    assert seq_add(65530, 10) == 4


@pytest.mark.parametrize(
    ("a", "b"),
    [(0, 1), (65535, 0), (65000, 100), (1, 32768), (40000, 65535)],
)
def test_less_than_modulo(a: int, b: int) -> None:
    assert seq_less_than(a, b)
    assert not seq_less_than(b, a)
    assert seq_greater_than(b, a)


def test_values_half_the_space_apart_are_not_comparable() -> None:
    assert not seq_less_than(0, 32768)
    assert not seq_less_than(32768, 0)


def test_equal_is_not_less() -> None:
    assert not seq_less_than(7, 7)
    assert seq_less_or_equal(7, 7)
    assert seq_less_or_equal(65535, 0)
    assert not seq_less_or_equal(0, 65535)


@given(seqs, st.integers(min_value=1, max_value=32767))
def test_any_value_is_less_than_the_next_32767(a: int, step: int) -> None:
    assert seq_less_than(a, seq_add(a, step))
    assert not seq_greater_than(a, seq_add(a, step))


def test_random_initial_sequence_uses_injected_rng() -> None:
    a = random_initial_sequence(random.Random(42))
    b = random_initial_sequence(random.Random(42))
    assert a == b
    assert 0 <= a <= 65535
    values = {random_initial_sequence(random.Random(i)) for i in range(20)}
    assert len(values) > 10


def test_bu_sequence_window_follows_rfc6275_example() -> None:
    """RFC 6275 9.5.1: after 15, 0-15 and 32784-65535 are old, 16-32783 newer (TAHI
    BU_SEQ_* cases)."""
    from netstack.mobility.sequence import bu_sequence_is_newer

    assert bu_sequence_is_newer(16, 15) and bu_sequence_is_newer(32783, 15)
    for old in (15, 14, 0, 32784, 65535):
        assert not bu_sequence_is_newer(old, 15), old
    assert bu_sequence_is_newer(32784, 32783) and bu_sequence_is_newer(15, 32783)
    for old in (32782, 32783, 16):
        assert not bu_sequence_is_newer(old, 32783), old
