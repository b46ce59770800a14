"""Issue 13 in the VM: the same TLS-inside-TLS path with the QEMU guest as the terminal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.conftest import BedHandle
from tests.netns.test_tls_gateway import CN_AUTHORITY, curl
from tests.vm.conftest import bring_up_vm_bed

pytestmark = pytest.mark.vm


@pytest.fixture
def vm_tls_bed() -> Iterator[BedHandle]:
    yield from bring_up_vm_bed("--tls-gateway")


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
