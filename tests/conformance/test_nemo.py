"""NEMO home agent conformance (RFC 3963), listed until NEMO (issue 11) lands: skipped with
the reason so the report counts them. Derived from RFC 3963 sections (no TAHI NEMO package
was available here), named `rfc3963/<clause>-…`.
"""

from __future__ import annotations

import pytest

from tests.conformance.catalogue import not_ported

pytestmark = pytest.mark.netns

NOT_IN_BUILD = "feature not in this build (NEMO, issue 11)"

_CASES = [
    ("rfc3963/6.1-R-flag", "RFC 3963 6.1", "NEMO-1", "BU with R=1 accepted, BA with R=1"),
    ("rfc3963/6.1-implicit", "RFC 3963 6.1.1", "NEMO-1", "Implicit mode: prefixes from configuration"),
    ("rfc3963/6.1-explicit", "RFC 3963 6.1.2", "NEMO-1", "Explicit mode: Mobile Network Prefix options"),
    ("rfc3963/6.2-140", "RFC 3963 6.6", "NEMO-1", "Mobile router operation not permitted (140)"),
    ("rfc3963/6.2-141", "RFC 3963 6.6", "NEMO-1", "Invalid prefix (141)"),
    ("rfc3963/6.2-142", "RFC 3963 6.6", "NEMO-1", "Not authorized for prefix (142)"),
    ("rfc3963/6.2-143", "RFC 3963 6.6", "NEMO-1", "Forwarding setup failed (143)"),
    ("rfc3963/6.4-forward", "RFC 3963 6.4", "NEMO-1", "Packets to the mobile network tunnelled to the MR"),
    ("rfc3963/6.4-reverse", "RFC 3963 6.4", "NEMO-1", "Reverse tunnel from a mobile network node"),
    ("rfc3963/6.3-dereg", "RFC 3963 6.3", "NEMO-1", "De-registration removes the prefix routes"),
]


@pytest.mark.parametrize("reason", not_ported(_CASES, NOT_IN_BUILD))
def test_nemo_case(reason: str) -> None:
    pytest.skip(reason)
