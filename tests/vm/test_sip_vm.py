"""Issue 12 in the vm tier: the IPv4 softphone on the host calls through the QEMU guest's ALG
(the same `testbed call` as in lite mode), both directions, over UDP and TCP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.netns.conftest import BedHandle, _cli
from tests.vm.conftest import bring_up_vm_bed

pytestmark = pytest.mark.vm


@pytest.fixture
def vm_sip_bed() -> Iterator[BedHandle]:
    yield from bring_up_vm_bed("--sip")


def test_ipv4_phone_calls_through_the_vm_guest(vm_sip_bed: BedHandle) -> None:
    for caller, callee in (("host4", "cn"), ("cn", "host4"), ("host4tcp", "cn")):
        done = _cli("testbed", "call", "--prefix", vm_sip_bed.prefix, caller, callee,
                    "--seconds", "5", timeout=90)
        result = json.loads(done.stdout)
        assert result["established"], result
        for side in (caller, callee):
            assert result["rtp"][side]["received"] >= 200, result
            # the guest is emulated (TCG, no KVM here): a few packets more may be late or lost
            # than the netns tier's 1%; a broken ALG or translation loses them all
            assert result["rtp"][side]["loss_ratio"] <= 0.05, result
