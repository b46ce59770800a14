"""Issue 13 in the VM: the same TLS-inside-TLS path with the QEMU guest as the terminal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning import topology
from tests.netns.conftest import BedHandle, _cli
from tests.netns.test_tls_gateway import CN_AUTHORITY, curl
from tests.vm.conftest import VM_BED_UP_TIMEOUT, new_prefix, vm_tier_available

pytestmark = pytest.mark.vm


@pytest.fixture
def vm_tls_bed() -> Iterator[BedHandle]:
    reason = vm_tier_available()
    if reason:
        pytest.skip(reason)
    prefix = new_prefix()
    bed = BedHandle(prefix=prefix, state_dir=topology.state_dir(prefix))
    try:
        result = _cli("testbed", "up", "--prefix", prefix, "--guest", "vm", "--tls-gateway",
                      timeout=VM_BED_UP_TIMEOUT)
        assert result.returncode == 0, f"testbed up --guest vm --tls-gateway: {result.stderr}"
        yield bed
    finally:
        _cli("testbed", "down", "--prefix", prefix, timeout=120)


def test_https_through_the_gateway_with_the_vm_guest(vm_tls_bed: BedHandle) -> None:
    bed = vm_tls_bed
    ca = bed.cli("testbed", "ca").stdout.strip()
    for family in ("-4", "-6"):
        rc, out = curl(bed, family, "https://cn.example/", "--cacert", ca, max_time=40)
        assert (rc, out.split()[0]) == (0, "200"), (family, rc, out)
    tls = bed.status()["guest"]["tls_gateway"]
    flows = [f for f in tls["recent"] if f["destination"] == CN_AUTHORITY]
    assert len(flows) == 2 and all(f["tls_version"].startswith("TLSv1.") for f in flows)
    assert [f["host_view"].split()[0] for f in flows] == ["IPv4", "IPv6"]
    keys = bed.cli("testbed", "keys", "--tls-keylog")
    assert keys.returncode == 0, keys.stderr
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in Path(keys.stdout.strip()).read_text()
