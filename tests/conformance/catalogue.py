"""Where each conformance case comes from: TAHI test id, RFC clause, group.

Test ids are those of the IPv6 Ready Logo Phase-2 MIPv6 self-test specifications (`HA_2_1_1`,
`MN-2-1-1-1-001`, ...) where their index names the case, otherwise the name of the script in
TAHI's ct-2.1.1 packages (`mip6-ha-20/BU_SEQ_LESS_A1`, `mip6-mn-20/ProcessingBRR`), whose
INDEX files list them by RFC section. `case(...)` marks a test function; the report reads the
marks, so a case that is added (or stops skipping) shows in docs/conformance.md by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., object])

# Groups in the order the report prints them: (key, role, title).
GROUPS: tuple[tuple[str, str, str], ...] = (
    ("HA-1", "HA", "Processing Mobility Headers (RFC 6275 9.2)"),
    ("HA-2", "HA", "Registration and lifetimes (10.3.1)"),
    ("HA-3", "HA", "Sequence numbers (9.5.1, 10.3.1)"),
    ("HA-4", "HA", "Invalid registrations and BA statuses (10.3.1, 6.1.8)"),
    ("HA-5", "HA", "De-registration (10.3.2)"),
    ("HA-6", "HA", "Proxy DAD and proxy ND (10.4.1)"),
    ("HA-7", "HA", "Tunnelling and reverse tunnelling (10.4.2, 10.4.5)"),
    ("HA-8", "HA", "IPsec on BU/BA (RFC 3776, RFC 4877; 10.3.1)"),
    ("HA-9", "HA", "DHAAD and mobile prefix discovery (10.5, 10.6)"),
    ("MN-1", "MN", "Movement detection and CoA (11.5.1, 11.5.2)"),
    ("MN-2", "MN", "BU to the HA and BA processing (11.7.1, 11.7.3)"),
    ("MN-3", "MN", "Retransmission and back-off (11.8)"),
    ("MN-4", "MN", "Binding Refresh Request and Binding Error (11.7.4, 11.3.6)"),
    ("MN-5", "MN", "Returning home (11.5.4)"),
    ("MN-6", "MN", "Sending and receiving away from home (11.3.1, 11.3.3)"),
    ("MN-7", "MN", "DHAAD, MPS and route optimisation (11.4, 11.7.2)"),
    ("CN-1", "CN", "Return routability (9.4, 5.2)"),
    ("CN-2", "CN", "Bindings at the CN: Kbm, nonces, sequence, lifetime (9.5)"),
    ("CN-3", "CN", "Binding Error and HAO handling (9.3)"),
    ("NEMO-1", "NEMO", "NEMO home agent (RFC 3963 6)"),
)

# UMIP's published TAHI results (passed/total), quoted in the report for comparison.
UMIP_RESULTS = {"MN": (143, 175), "HA": (206, 222), "CN": (135, 136)}


@dataclass(frozen=True)
class Case:
    tahi: str
    rfc: str
    group: str
    title: str


def case(tahi: str, rfc: str, group: str, title: str) -> Callable[[F], F]:
    """Mark a test as the port of TAHI case `tahi` (RFC 6275 clause `rfc`) in `group`."""
    if group not in {key for key, _, _ in GROUPS}:
        raise ValueError(f"unknown conformance group {group!r}")
    return pytest.mark.conformance(tahi=tahi, rfc=rfc, group=group, title=title)


def not_ported(cases: list[tuple[str, str, str, str]], reason: str) -> list[object]:
    """pytest params for TAHI cases we list but skip: (tahi, rfc, group, title) each."""
    return [
        pytest.param(reason, marks=case(*c), id=c[0].replace("/", "-"))
        for c in cases
    ]

# Cases with no TAHI counterpart (derived from the RFC text alone) are named "rfc6275/<clause>-…".
