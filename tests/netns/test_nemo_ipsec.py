"""Issue 11, must-show 3: `--nemo --ipsec tunnel`, ESP inside ESP for vmn on the core.

vmn's ESP tunnel (Fig. 21) runs inside the mobile router's ESP tunnel; tshark, given the keys
`mip6term testbed keys --tshark` prints, decrypts both layers; the HA terminates ESP twice on
one packet (claims 22-25), in two independent security processors, and counts each.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.nemo import VMN, VMN_HOME_ADDRESS
from provisioning.topology import CN_ADDRESS, HOME_ADDRESS, HOME_AGENT
from tests.netns.conftest import BedHandle, _bring_up
from tests.netns.test_ipsec import decode, full_capture
from tests.netns.test_nemo import binding, ready

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module", params=["tunnel", "tunnel-only"])
def nemo_ipsec_bed(request: pytest.FixtureRequest) -> Iterator[tuple[str, BedHandle]]:
    for bed in _bring_up("--nemo", "--ipsec", request.param):
        yield request.param, bed


def test_vmn_traffic_is_esp_inside_esp_and_tshark_decrypts_both(
    nemo_ipsec_bed: tuple[str, BedHandle], tmp_path: Path
) -> None:
    """Fig. 21 (tunnel): each ESP carries an IPv6-in-IPv6 packet, 5 IPv6 headers in all;
    Fig. 22 (tunnel-only): each ESP carries the packet itself, 3 IPv6 headers."""
    mode, bed = nemo_ipsec_bed
    status = ready(bed)
    mr_coa = binding(status, HOME_ADDRESS)["care_of_address"]
    vmn_coa = binding(status, VMN_HOME_ADDRESS)["care_of_address"]
    before = status["counters"]["ha"]
    with full_capture(bed.namespace("core"), "eth2", tmp_path / "core.pcap") as cap:
        result = bed.exec(VMN, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                          "--max-time", "30", f"http://[{CN_ADDRESS}]/big", timeout=60)
        time.sleep(0.5)
    code, size = result.stdout.decode().split()
    assert code == "200" and int(size) > 1_000_000
    # Without keys: the core sees only ESP between the MR's CoA and the HA.
    raw = cap.decode(["ipv6.src", "ipv6.dst", "ipv6.nxt"], "esp")
    assert raw and all(f["ipv6.nxt"][0] == "50" for f in raw)
    assert {(f["ipv6.src"][0], f["ipv6.dst"][0]) for f in raw} == {
        (mr_coa, str(HOME_AGENT)), (str(HOME_AGENT), mr_coa)}
    # With the keys: two ESP layers (MR's SA outside, vmn's inside), then vmn's TCP.
    frames = decode(cap, bed, ["esp.spi", "ipv6.src", "ipv6.dst"], "tcp")
    ha, vmn, cn = str(HOME_AGENT), str(VMN_HOME_ADDRESS), str(CN_ADDRESS)
    up = [f for f in frames if f["ipv6.src"][-1] == vmn]
    down = [f for f in frames if f["ipv6.src"][-1] == cn]
    assert len(up) > 10 and len(down) > 100
    def chain(*layers: str) -> list[str]:  # Fig. 21 repeats each tunnel's own header
        return [a for a in layers[:-1] for _ in range(2 if mode == "tunnel" else 1)] + [layers[-1]]

    for f in up:
        assert [int(s, 16) for s in f["esp.spi"]] == [0x1003, 0x1103]
        assert f["ipv6.src"] == chain(mr_coa, vmn_coa, vmn)
        assert f["ipv6.dst"] == chain(ha, ha, cn)
    for f in down:
        assert [int(s, 16) for s in f["esp.spi"]] == [0x1004, 0x1104]
        assert f["ipv6.dst"] == chain(mr_coa, vmn_coa, vmn)
    # The HA terminated ESP twice on the same packets and sealed twice on the way down.
    after = bed.status()
    counters = after["counters"]["ha"]
    for key in ("esp_terminations_depth_0", "esp_terminations_depth_1", "tx_nested_tunnelled"):
        assert counters.get(key, 0) - before.get(key, 0) >= len(up if "depth" in key else down) // 2
    ipsec = after["ha"]["ipsec"]
    assert ipsec["mismatch"] == {} and ipsec["nested"]["mismatch"] == {}
    # two independent processors: the MR's SAs in one, vmn's in the other
    assert {sa["name"] for sa in ipsec["sas"]} == {"mn-ha-tunnel", "ha-mn-tunnel"}
    assert {sa["name"] for sa in ipsec["nested"]["sas"]} == {"vmn-mn-ha-tunnel", "vmn-ha-mn-tunnel"}
    for layer in (ipsec, ipsec["nested"]):
        assert layer["counters"]["in_decrypted"] >= len(up) and layer["counters"]["out_protected"] >= len(down)
