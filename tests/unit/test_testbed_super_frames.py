"""Issue 14: the bed lets the CN send super-frames only where the guest's fast path takes them."""

from __future__ import annotations

import pytest

from provisioning.nodes.ipsec import parse_switches
from provisioning.testbed import UpOptions, super_frames_from_the_cn


@pytest.mark.parametrize(("options", "ipsec", "expected"), [
    (UpOptions(), "", True),
    (UpOptions(sip=True, tls_gateway=True), "", True),
    (UpOptions(fastpath=False), "", False),
    (UpOptions(guest="vm"), "", False),
    (UpOptions(ro=True), "", False),
    (UpOptions(nemo=True), "", False),
    (UpOptions(hmip=True), "", False),
    (UpOptions(), "signalling", False),
    (UpOptions(), "tunnel", False),
    (UpOptions(), "e2e", False),
])
def test_super_frames_only_where_the_guest_fast_path_takes_them(options: UpOptions, ipsec: str,
                                                               expected: bool) -> None:
    assert super_frames_from_the_cn(options, parse_switches(ipsec)) is expected
