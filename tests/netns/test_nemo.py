"""Issue 11, "must be shown" 1, 2 and 4: NEMO in the test bed (`testbed up --nemo`).

One bed for the module: the guest is a mobile router for MNP on its host link, `host` has a
SLAAC address from it, `vmn` (a second guest agent, plain mobile node) sits in the mobile
network. Tests leave the bed as they found it (the MR in visited network 5b).
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from provisioning import netns
from provisioning.nemo import MOBILE_NETWORK_PREFIX, VMN, VMN_HOME_ADDRESS
from provisioning.topology import CN_ADDRESS, HOME_ADDRESS, HOME_AGENT, VISITED_B
from tests.netns.capture import capture
from tests.netns.conftest import BedHandle, _bring_up

pytestmark = pytest.mark.netns

MNP = MOBILE_NETWORK_PREFIX
URL_BIG = f"http://[{CN_ADDRESS}]/big"


@pytest.fixture(scope="module")
def nemo_bed() -> Iterator[BedHandle]:
    yield from _bring_up("--nemo")


def wait_for(what: str, probe: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def binding(status: dict[str, Any], home_address: IPv6Address) -> dict[str, Any] | None:
    for entry in status["binding_cache"]:
        if entry["home_address"] == str(home_address):
            return entry
    return None


def ready(bed: BedHandle, visited: IPv6Network = VISITED_B) -> dict[str, Any]:
    """The MR registered with its prefix from `visited`, vmn registered from inside the MNP."""
    seen: list[dict[str, Any]] = []

    def probe() -> dict[str, Any] | None:
        status = bed.status()
        seen[:] = [status]
        mr, vmn = binding(status, HOME_ADDRESS), binding(status, VMN_HOME_ADDRESS)
        if not (mr and vmn and IPv6Address(mr["care_of_address"]) in visited):
            return None
        if IPv6Address(vmn["care_of_address"]) not in MNP:
            return None
        return status
    try:
        return wait_for("MR and vmn registrations", probe)
    except AssertionError:
        last = seen[0] if seen else {}
        raise AssertionError(
            f"no MR + vmn registrations: binding cache {last.get('binding_cache')}, "
            f"guest BUL {last.get('binding_update_list')}, refusal "
            f"{last.get('guest', {}).get('refusal')}, HA counters {last.get('counters', {}).get('ha')}"
        ) from None


def host_mnp_address(bed: BedHandle) -> IPv6Address:
    def probe() -> IPv6Address | None:
        out = bed.exec("host", "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
        for line in out.stdout.decode().splitlines():
            address = IPv6Address(line.split()[3].split("/")[0])
            if address in MNP:
                return address
        return None
    return wait_for("the host's SLAAC address in the mobile network prefix", probe)


def download(bed: BedHandle, node: str, out: Path, *args: str) -> Any:
    return netns.popen(bed.namespace(node), ["curl", "-s", "--limit-rate", "2M", "--max-time",
                                             "90", "-o", str(out), *args])


def same_as_big(bed: BedHandle, out: Path) -> None:
    big = Path(bed.state_dir) / "www" / "big"
    assert out.stat().st_size == big.stat().st_size
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()


def move(bed: BedHandle, target: str) -> None:
    result = bed.move(target, timeout=20)
    assert result.returncode == 0, result.stderr


def downloads_across_moves(bed: BedHandle, tmp_path: Path,
                           downloads: list[tuple[str, tuple[str, ...]]]) -> None:
    """Start /big downloads (node, curl arguments), move the MR to 5a and back to 5b while
    they run; each must finish byte for byte."""
    outs = [tmp_path / f"download-{i}.out" for i in range(len(downloads))]
    procs = [download(bed, node, out, *args) for (node, args), out in zip(downloads, outs, strict=True)]
    try:
        time.sleep(2)
        move(bed, "a")
        time.sleep(1.5)
        move(bed, "b")
        for proc in procs:
            assert proc.wait(timeout=120) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for out in outs:
        same_as_big(bed, out)


def test_status_shows_prefix_table_and_mobile_network_prefixes(nemo_bed: BedHandle) -> None:
    status = ready(nemo_bed)
    mr = binding(status, HOME_ADDRESS)
    assert mr is not None and mr["mobile_router"] and mr["prefixes"] == [str(MNP)]
    assert status["ha"]["prefix_table"] == [{
        "home_address": str(HOME_ADDRESS), "prefix": str(MNP), "registered": True,
        "care_of_address": mr["care_of_address"]}]
    (row,) = status["guest"]["mobile_network_prefixes"]
    assert (row["prefix"], row["state"], row["mode"]) == (str(MNP), "registered", "explicit")
    assert status["guest"]["mobile_network"]["router_advertisements"]["ra_sent_unsolicited"] >= 1


def test_host_ipv6_and_ipv4_apps_survive_moves_of_the_mobile_router(
    nemo_bed: BedHandle, tmp_path: Path
) -> None:
    """Must-show 1: an IPv6 app from the prefix and an IPv4 app at once, across move a / b."""
    ready(nemo_bed)
    source = host_mnp_address(nemo_bed)
    with capture(nemo_bed.namespace("core"), "eth2", tmp_path / "core.pcap", "ip6") as cap:
        downloads_across_moves(nemo_bed, tmp_path, [
            ("host", ("--interface", str(source), URL_BIG)),
            ("host", ("-4", "http://cn.example/big")),
        ])
    # On the core (towards 5b): the host's prefix address inside the MR-HA tunnel.
    frames = cap.decode(["ipv6.src", "ipv6.dst"], "tcp")
    inner = [f for f in frames if len(f["ipv6.src"]) == 2 and f["ipv6.src"][1] == str(source)]
    assert inner, "no tunnelled packet of the host's mobile network address"
    assert all(f["ipv6.dst"][0] == str(HOME_AGENT) for f in inner)
    status = ready(nemo_bed)
    (row,) = status["guest"]["mobile_network_prefixes"]
    assert row["counters"]["packets_out"] > 0 and row["counters"]["packets_in"] > 0
    assert status["counters"]["guest"].get("host_tx_ipv4", 0) > 0  # the translated path


def test_nested_mobile_node_is_tunnelled_twice_and_survives_a_move(
    nemo_bed: BedHandle, tmp_path: Path
) -> None:
    """Must-show 2: vmn <-> CN is IPv6-in-IPv6-in-IPv6 on the core; TCP survives the MR moving."""
    status = ready(nemo_bed)
    mr_coa = binding(status, HOME_ADDRESS)["care_of_address"]
    vmn_coa = binding(status, VMN_HOME_ADDRESS)["care_of_address"]
    with capture(nemo_bed.namespace("core"), "eth2", tmp_path / "core.pcap", "ip6") as cap:
        downloads_across_moves(nemo_bed, tmp_path, [
            (VMN, ("--interface", str(VMN_HOME_ADDRESS), URL_BIG))])
    frames = cap.decode(["ipv6.src", "ipv6.dst"], "tcp")
    ha, vmn, cn = str(HOME_AGENT), str(VMN_HOME_ADDRESS), str(CN_ADDRESS)
    up = [f for f in frames if f["ipv6.src"] == [mr_coa, vmn_coa, vmn]]
    down = [f for f in frames if f["ipv6.src"] == [ha, ha, cn]]
    assert up and down, f"no doubly tunnelled TCP in {frames[:5]}"
    assert all(f["ipv6.dst"] == [ha, ha, cn] for f in up)
    assert all(f["ipv6.dst"] == [mr_coa, vmn_coa, vmn] for f in down)
    counters = nemo_bed.status()["counters"]["ha"]
    assert counters.get("tx_nested_tunnelled", 0) > 0
    assert counters.get("rx_nested_detunnelled", 0) > 0


_BAD_BU = """
import sys
from scapy.all import Ether, IPv6, sendp
from scapy.layers.inet6 import HAO, IPv6ExtHdrDestOpt, MIP6MH_BU, MIP6OptMobNetPrefix
mac, ha, coa, hoa, flags, seq, prefix, plen = sys.argv[1:9]
options = [MIP6OptMobNetPrefix(prefix=prefix, plen=int(plen))] if prefix != "-" else []
bu = MIP6MH_BU(seq=int(seq), flags=flags, mhtime=105, options=options)
pkt = Ether(dst=mac) / IPv6(src=coa, dst=ha) / IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)]) / bu
sendp(pkt, iface="eth0", verbose=False)
"""

BAD_HOME_ADDRESS = "2001:db8:6::3000"
FORGED_COA = "2001:db8:a::99"


@pytest.mark.parametrize(("name", "hoa", "flags", "prefix", "plen", "status"), [
    ("prefix not in the table", BAD_HOME_ADDRESS, "AHR", "2001:db8:6:200::", 64, 142),
    ("R without H", BAD_HOME_ADDRESS, "AR", "2001:db8:6:100::", 64, 140),
    ("link-local prefix", BAD_HOME_ADDRESS, "AHR", "fe80::", 64, 141),
    ("flag change on the MR's binding", str(HOME_ADDRESS), "AH", "-", 0, 139),
])
def test_bad_binding_updates_are_refused_counted_and_not_routed(
    nemo_bed: BedHandle, tmp_path: Path, name: str, hoa: str, flags: str, prefix: str,
    plen: int, status: int,
) -> None:
    """Must-show 4: crafted BUs (scapy) get RFC 3963 statuses; nothing is routed."""
    before = ready(nemo_bed)
    mac = before["ha"]["neighbor_discovery"]["mac"]
    mr_before = binding(before, HOME_ADDRESS)
    count = f"ba_status_{status}"
    with capture(nemo_bed.namespace("core"), "eth0", tmp_path / "home.pcap", "ip6") as cap:
        result = nemo_bed.exec("core", sys.executable, "-c", _BAD_BU, mac, str(HOME_AGENT),
                               FORGED_COA, hoa, flags, "7", prefix, str(plen), timeout=60)
        assert result.returncode == 0, result.stderr.decode()
        after = wait_for(f"{count} at the HA", lambda: (
            s if (s := nemo_bed.status())["counters"]["ha"].get(count, 0)
            > before["counters"]["ha"].get(count, 0) else None), timeout=15)
        time.sleep(0.5)
    bas = cap.decode(["ipv6.dst", "mip6.ba.status"], "mip6.mhtype == 6")
    assert [b["mip6.ba.status"] for b in bas if b["ipv6.dst"][0] == FORGED_COA] == [[str(status)]]
    assert binding(after, IPv6Address(BAD_HOME_ADDRESS)) is None
    assert binding(after, HOME_ADDRESS) == {**mr_before, "lifetime": binding(after, HOME_ADDRESS)["lifetime"]}
    assert after["ha"]["prefix_table"] == before["ha"]["prefix_table"]


def test_prefix_routes_survive_a_home_agent_restart(nemo_bed: BedHandle) -> None:
    """The registered prefix is learned state: persisted with the binding cache."""
    before = ready(nemo_bed)
    restarted = nemo_bed.cli("agent", "restart", "--node", "ha", timeout=60)
    assert restarted.returncode == 0, restarted.stderr
    after = nemo_bed.status()
    assert after["ha"]["prefix_table"] == before["ha"]["prefix_table"]
    assert after["counters"]["ha"].get("binding_restored", 0) == 2
    result = nemo_bed.exec(VMN, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                           "--max-time", "20", f"http://[{CN_ADDRESS}]/", timeout=30)
    assert result.stdout == b"200"
