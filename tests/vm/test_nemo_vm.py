"""Issue 11 with the real QEMU guest: the VM is the mobile router (`--guest vm --nemo`).

Its eth1 (virtual network 15, a TAP) joins the mobile network bridge; the agent in the VM
advertises 2001:db8:6:100::/64 there, the host takes a SLAAC address from it, and `vmn` (the
same agent code, in a namespace) registers through the VM.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from provisioning.nemo import VMN
from provisioning.topology import CN_ADDRESS, HOME_ADDRESS, VISITED_A, VISITED_B
from tests.netns.conftest import BedHandle
from tests.netns.test_nemo import binding, host_mnp_address, ready
from tests.vm.conftest import bring_up_vm_bed

pytestmark = pytest.mark.vm


@pytest.fixture
def vm_nemo_bed() -> Iterator[BedHandle]:
    yield from bring_up_vm_bed("--nemo")


def fetch(bed: BedHandle, node: str, *args: str) -> str:
    result = bed.exec(node, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                      "--max-time", "20", *args, timeout=40)
    return result.stdout.decode()


def test_the_vm_routes_its_mobile_network_and_a_nested_node(vm_nemo_bed: BedHandle) -> None:
    bed = vm_nemo_bed
    status = ready(bed, VISITED_B)
    assert binding(status, HOME_ADDRESS)["mobile_router"]
    source = host_mnp_address(bed)
    url = f"http://[{CN_ADDRESS}]/"
    assert fetch(bed, "host", "--interface", str(source), url) == "200"
    assert fetch(bed, "host", "-4", "http://cn.example/") == "200"
    assert fetch(bed, VMN, url) == "200"
    moved = bed.move("a", timeout=30)
    assert moved.returncode == 0, moved.stderr
    ready(bed, VISITED_A)
    assert fetch(bed, VMN, url) == "200"
    assert fetch(bed, "host", "--interface", str(source), url) == "200"
