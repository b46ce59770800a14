"""Every parser that sees the network or the user returns a value or raises the project's own
error, nothing else (issue 15; `python -m benchmarks fuzz` runs the same targets at scale).

Inputs: random bytes, and mutations (benchmarks/fuzz_targets.mutate) of valid seeds so the
parsers' deep paths are reached. The home agent's receive loop must not raise at all.
"""

from __future__ import annotations

import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.fuzz_targets import Target, daemon_targets, mutate, run_target, targets

_STATE_DIR = tempfile.mkdtemp(prefix="mip6term-fuzz-")
TARGETS = targets() + daemon_targets(_STATE_DIR)


def _inputs(target: Target) -> st.SearchStrategy[bytes]:
    mutated = st.builds(mutate, st.randoms(use_true_random=False), st.sampled_from(target.seeds))
    return st.one_of(st.binary(max_size=160), mutated, mutated, mutated)


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_parser_returns_or_raises_its_own_error(target: Target) -> None:
    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_inputs(target))
    def check(data: bytes) -> None:
        crash = run_target(target, data)
        assert crash is None, f"{crash.error} at {crash.where}; input {data.hex()}"

    check()


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_seeds_are_valid_inputs(target: Target) -> None:
    """The seeds parse (else mutations would only ever test the first check)."""
    for seed in target.seeds:
        target.parse(seed)


# Inputs that crashed a parser under `python -m benchmarks fuzz`, kept as regressions.
REGRESSIONS = [
    # key file with an integer where hex key material belongs: AttributeError escaped (fixed)
    ("key_file", b'[[sa]]\nname = "mn-ha-bu"\ndirection = "out"\nspi = 4097\n'
                 b'algorithm = "aes-gcm-16"\nkey = 6'),
    ("key_file", b'sa = ["x"]\n'),
]


@pytest.mark.parametrize(("name", "data"), REGRESSIONS)
def test_fuzz_regressions(name: str, data: bytes) -> None:
    target = next(t for t in TARGETS if t.name == name)
    assert run_target(target, data) is None
