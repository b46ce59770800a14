"""Issue 2, "must be shown": the mobile node and home agent as real processes in the test bed.

Every test brings up its own Fig. 1 test bed (namespaces with a unique prefix, torn down even on
failure), drives real applications (curl) and checks the wire with tcpdump + tshark.
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

from provisioning import netns, nft
from provisioning.topology import (
    CN_ADDRESS,
    HOME_ADDRESS,
    HOME_AGENT,
    VISITED_A,
    VISITED_B,
)
from tests.netns.capture import capture
from tests.netns.conftest import BedHandle, _bring_up

pytestmark = pytest.mark.netns

HOA = str(HOME_ADDRESS)
URL_INDEX = f"http://[{CN_ADDRESS}]/"
URL_BIG = f"http://[{CN_ADDRESS}]/big"


def _registration(status: dict[str, Any]) -> dict[str, Any] | None:
    for entry in status["binding_update_list"]:
        if entry["destination"] == str(HOME_AGENT) and entry["state"] == "registered":
            return entry
    return None


def wait_registered(bed: BedHandle, prefix: IPv6Network, timeout: float = 15) -> IPv6Address:
    """Wait until the guest's home registration is acknowledged with a CoA in `prefix`."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = bed.status()
        entry = _registration(last)
        if entry and IPv6Address(entry["care_of_address"]) in prefix:
            return IPv6Address(entry["care_of_address"])
        time.sleep(0.2)
    raise AssertionError(f"no registration via {prefix}: {last.get('binding_update_list')}")


def curl(bed: BedHandle, url: str, *extra: str, timeout: float = 30) -> tuple[int, int]:
    result = bed.exec(
        "guest", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
        "--max-time", str(timeout - 5), "--interface", HOA, *extra, url, timeout=timeout,
    )
    code, size = result.stdout.decode().split()
    return int(code), int(size)


def seq_greater(a: int, b: int) -> bool:
    return 0 < (a - b) % 65536 < 32768


@pytest.fixture
def refusing_testbed() -> Iterator[BedHandle]:
    """The bed with the HA configured to refuse the guest's home address."""
    yield from _bring_up("--ha-refuse")


def test_curl_from_home_address_is_tunnelled(testbed: BedHandle, tmp_path: Path) -> None:
    coa = wait_registered(testbed, VISITED_B)
    # core's eth2 faces ar-b (visited network 5b): the path between the CoA and the HA.
    with capture(testbed.namespace("core"), "eth2", tmp_path / "core.pcap", "ip6") as cap:
        code, size = curl(testbed, URL_INDEX)
    assert code == 200 and size > 0
    rows = cap.decode(["ipv6.src", "ipv6.dst", "ipv6.nxt"])
    assert rows, "nothing captured between the CoA and the HA"
    up = [r for r in rows if r["ipv6.src"][:1] == [str(coa)] and r["ipv6.dst"][:1] == [str(HOME_AGENT)]]
    down = [r for r in rows if r["ipv6.src"][:1] == [str(HOME_AGENT)] and r["ipv6.dst"][:1] == [str(coa)]]
    assert up and down, rows
    for row in up + down:
        assert row["ipv6.nxt"][0] == "41"  # IPv6-in-IPv6
    tunnelled_hoa = [r for r in up + down if HOA in r["ipv6.src"][1:] + r["ipv6.dst"][1:]]
    assert tunnelled_hoa, "the home address never appeared inside the tunnel"
    # Outside the tunnel (outer header), the home address never shows on this link.
    for row in rows:
        assert HOA not in (row["ipv6.src"][:1] + row["ipv6.dst"][:1]), row


def test_transfer_survives_handover_to_a_and_home(testbed_either_path: BedHandle, tmp_path: Path) -> None:
    testbed = testbed_either_path
    first_coa = wait_registered(testbed, VISITED_B)
    big = Path(testbed.state_dir) / "www" / "big"
    expected = hashlib.sha256(big.read_bytes()).hexdigest()
    out = tmp_path / "big.out"
    with capture(testbed.namespace("sw"), "p-guest", tmp_path / "guest.pcap", "ip6") as cap:
        proc = netns.popen(
            testbed.namespace("guest"),
            ["curl", "-s", "--limit-rate", "3M", "--max-time", "60", "--interface", HOA,
             "-o", str(out), URL_BIG],
        )
        try:
            time.sleep(1.5)
            moved = testbed.move("a")
            assert moved.returncode == 0, moved.stderr
            time.sleep(1.5)
            moved = testbed.move("home")
            assert moved.returncode == 0, moved.stderr
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert out.stat().st_size == big.stat().st_size
    assert hashlib.sha256(out.read_bytes()).hexdigest() == expected
    bus = cap.decode(["ipv6.src", "mip6.bu.seqnr", "mip6.bu.lifetime"], "mip6.mhtype == 5")
    from_b = [b for b in bus if IPv6Address(b["ipv6.src"][0]) == first_coa]
    from_a = [b for b in bus if IPv6Address(b["ipv6.src"][0]) in VISITED_A]
    assert from_a, f"no BU from a care-of address in 5a: {bus}"
    last_b = int(from_b[-1]["mip6.bu.seqnr"][0]) if from_b else None
    new_seq = int(from_a[0]["mip6.bu.seqnr"][0])
    if last_b is not None:
        assert seq_greater(new_seq, last_b)
    home = [b for b in bus if b["ipv6.src"][0] == HOA]
    assert home and seq_greater(int(home[0]["mip6.bu.seqnr"][0]), new_seq)


def test_return_home_deregisters_and_stops_tunnelling(testbed: BedHandle, tmp_path: Path) -> None:
    wait_registered(testbed, VISITED_B)
    with capture(testbed.namespace("sw"), "p-guest", tmp_path / "guest.pcap", "ip6") as cap:
        moved = testbed.move("home")
    assert moved.returncode == 0, moved.stderr
    bus = cap.decode(["ipv6.src", "mip6.bu.lifetime"], "mip6.mhtype == 5")
    assert any(b["mip6.bu.lifetime"] == ["0"] and b["ipv6.src"] == [HOA] for b in bus), bus
    status = testbed.status()
    assert status["guest"]["at_home"] is True
    assert status["binding_cache"] == []
    assert HOA not in status["ha"]["neighbor_discovery"]["proxies"]
    tunnelled_before = status["counters"]["ha"].get("tx_tunnelled", 0)
    with capture(testbed.namespace("core"), "eth0", tmp_path / "home.pcap", "ip6") as cap:
        code, size = curl(testbed, URL_INDEX)
    assert code == 200 and size > 0
    rows = cap.decode(["ipv6.src", "ipv6.dst", "ipv6.nxt"])
    native = [r for r in rows if r["ipv6.src"] == [HOA] or r["ipv6.dst"] == [HOA]]
    assert native, "no untunnelled packets of the home address on the home link"
    assert all("41" not in r["ipv6.nxt"] for r in rows)
    assert testbed.status()["counters"]["ha"].get("tx_tunnelled", 0) == tunnelled_before


def test_binding_update_retransmission_backoff(testbed: BedHandle, tmp_path: Path) -> None:
    wait_registered(testbed, VISITED_B)
    nft.drop_first_binding_updates(testbed.prefix, 2)
    with capture(testbed.namespace("sw"), "p-guest", tmp_path / "guest.pcap", "ip6") as cap:
        restarted = testbed.cli("agent", "restart")
        assert restarted.returncode == 0, restarted.stderr
        wait_registered(testbed, VISITED_B, timeout=20)
    assert nft.binding_update_counters(testbed.prefix)["dropped"] == 2
    bus = cap.decode(["frame.time_relative", "mip6.bu.seqnr"], "mip6.mhtype == 5")
    assert len(bus) >= 3, bus
    times = [float(b["frame.time_relative"][0]) for b in bus[:3]]
    first_retry, second_retry = times[1] - times[0], times[2] - times[1]
    assert first_retry == pytest.approx(1.5, rel=0.2), times
    assert second_retry == pytest.approx(3.0, rel=0.2), times
    seqs = [int(b["mip6.bu.seqnr"][0]) for b in bus[:3]]
    assert seq_greater(seqs[1], seqs[0]) and seq_greater(seqs[2], seqs[1])


def test_refused_home_address_sets_up_no_tunnel(refusing_testbed: BedHandle) -> None:
    bed = refusing_testbed
    deadline = time.monotonic() + 15
    entry: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = bed.status()
        entries = status["binding_update_list"]
        if entries and entries[0]["state"] == "refused":
            entry = entries[0]
            break
        time.sleep(0.2)
    assert entry, "the guest never saw the refusal"
    assert entry["last_status"] == 129
    assert "administratively prohibited" in entry["reason"].lower()
    status = bed.status()
    assert status["binding_cache"] == []
    assert status["guest"]["tunnel"]["up"] is False
    assert status["guest"]["refusal"]["status"] == 129
    result = bed.exec("guest", "curl", "-s", "--max-time", "2", "--interface", HOA, URL_INDEX,
                      timeout=10)
    assert result.returncode != 0
    counters = bed.status()["counters"]["guest"]
    assert counters.get("tx_dropped_no_binding", 0) > 0
    human = bed.cli("status")
    assert human.returncode == 0
    assert "129" in human.stdout or "prohibited" in human.stdout.lower()


_FORGE = """
import sys
from scapy.all import Ether, IPv6, UDP, sendp
mac, coa, forged, hoa = sys.argv[1:5]
pkt = Ether(dst=mac) / IPv6(src=forged, dst=coa) / IPv6(src=forged, dst=hoa) / UDP(dport=9) / b"forged"
sendp(pkt, iface="eth0", count=3, verbose=False)
"""


def test_forged_outer_source_is_dropped_and_counted(testbed: BedHandle) -> None:
    coa = wait_registered(testbed, VISITED_B)
    status = testbed.status()
    guest_mac = status["guest"]["neighbor_discovery"]["mac"]
    before = status["counters"]["guest"]
    result = testbed.exec(
        "ar-b", sys.executable, "-c", _FORGE, guest_mac, str(coa), str(CN_ADDRESS), HOA,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    deadline = time.monotonic() + 5
    after = before
    while time.monotonic() < deadline:
        after = testbed.status()["counters"]["guest"]
        if after.get("rx_dropped_tunnel_bad_outer_source", 0) >= 3:
            break
        time.sleep(0.2)
    assert after.get("rx_dropped_tunnel_bad_outer_source", 0) - before.get(
        "rx_dropped_tunnel_bad_outer_source", 0
    ) == 3
    assert after.get("rx_detunnelled", 0) == before.get("rx_detunnelled", 0)


_MALFORMED = """
import sys
from scapy.all import Ether, IPv6, Raw, UDP, sendp
from scapy.layers.inet6 import IPv6ExtHdrDestOpt, HAO, MIP6MH_BA, MIP6MH_Generic
mac, dst, src = sys.argv[1:4]
frames = [
    Ether(dst=mac) / IPv6(src=src, dst=dst, plen=200) / Raw(b"short"),        # truncated
    Ether(dst=mac, src="02:00:00:00:00:01", type=0x86DD) / Raw(b"\\x60" + b"\\x00" * 20),  # runt
    Ether(dst=mac) / IPv6(src=src, dst=dst, nh=135) / MIP6MH_BA(cksum=0x1234),  # bad checksum
    Ether(dst=mac) / IPv6(src=src, dst=dst) / MIP6MH_Generic(mhtype=42),       # unknown MH type
    Ether(dst=mac) / IPv6(src=src, dst=dst, nh=60) / Raw(b"\\x87\\x09" + b"\\xff" * 6),  # bad ext hdr
    Ether(dst=mac) / IPv6(src=src, dst=dst, nh=58) / Raw(b"\\x87"),            # 1-byte ICMPv6
]
sendp(frames, iface="eth0", verbose=False)
"""


def _drop_total(counters: dict[str, int]) -> int:
    return sum(v for k, v in counters.items() if "drop" in k or "invalid" in k or "malformed" in k)


@pytest.mark.parametrize("target", ["guest", "ha"])
def test_malformed_packets_are_dropped_counted_and_survived(testbed: BedHandle, target: str) -> None:
    coa = wait_registered(testbed, VISITED_B)
    status = testbed.status()
    mac = status[target]["neighbor_discovery"]["mac"]
    before = _drop_total(status["counters"][target])
    # The guest is reached from its visited link (ar-b), the HA from the home link (core).
    sender, dst, src = (
        ("ar-b", str(coa), "2001:db8:b::1") if target == "guest"
        else ("core", str(HOME_AGENT), "2001:db8:6::ffff")
    )
    result = testbed.exec(sender, sys.executable, "-c", _MALFORMED, mac, dst, src, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    deadline = time.monotonic() + 5
    after = before
    # Six malformed frames; a Linux bridge may itself discard the two with impossible lengths,
    # so at least the four well-framed ones must be seen and counted.
    while time.monotonic() < deadline and after < before + 4:
        after = _drop_total(testbed.status()["counters"][target])
        time.sleep(0.2)
    assert after >= before + 4, (before, after)
    counters = testbed.status()["counters"][target]
    assert counters.get("rx_dropped_mh_bad_checksum", 0) >= 1
    assert counters.get("rx_dropped_mh_unknown_mh_type", 0) >= 1
    # The daemon is still there and still forwarding.
    code, _size = curl(testbed, URL_INDEX)
    assert code == 200


def test_home_agent_restart_keeps_bindings_and_sessions(testbed: BedHandle, tmp_path: Path) -> None:
    coa = wait_registered(testbed, VISITED_B)
    before = testbed.status()["binding_cache"]
    assert [b["care_of_address"] for b in before] == [str(coa)]
    out = tmp_path / "big.out"
    big = Path(testbed.state_dir) / "www" / "big"
    proc = netns.popen(
        testbed.namespace("guest"),
        ["curl", "-s", "--limit-rate", "4M", "--max-time", "60", "--interface", HOA,
         "-o", str(out), URL_BIG],
    )
    try:
        time.sleep(1.5)
        restarted = testbed.cli("agent", "restart", "--node", "ha")
        assert restarted.returncode == 0, restarted.stderr
        after = testbed.status()
        assert [(b["home_address"], b["care_of_address"], b["sequence"]) for b in after["binding_cache"]] == [
            (b["home_address"], b["care_of_address"], b["sequence"]) for b in before
        ]
        assert after["counters"]["ha"].get("binding_restored") == 1
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()
