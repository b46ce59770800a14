"""Issue 9, "must be shown": route optimisation (RFC 6275 5.2, 9, 11.6-11.7) in the test bed.

One bed with `--ro` is shared by the module's tests 1-4 (each leaves the terminal registered on
visited 5b with RO towards the CN); test 5 brings up its own with end-to-end ESP as well.
Wire checks with tcpdump + tshark; bad input crafted with scapy (tests/netns/ro_probe.py).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from provisioning import netns
from provisioning.nodes.agents import restart_agent
from provisioning.nodes.route_optimisation import CN2_ADDRESS
from provisioning.topology import CN_ADDRESS, HOME_ADDRESS, VISITED_A, VISITED_B
from tests.netns.capture import capture
from tests.netns.conftest import BedHandle, _bring_up
from tests.netns.test_mobility_e2e import wait_registered

pytestmark = pytest.mark.netns

HOA = str(HOME_ADDRESS)
CN = str(CN_ADDRESS)
CN2 = str(CN2_ADDRESS)


@pytest.fixture(scope="module")
def ro_bed() -> Iterator[BedHandle]:
    yield from _bring_up("--ro")


def _entry(status: dict[str, Any], destination: str) -> dict[str, Any] | None:
    for entry in status["binding_update_list"]:
        if entry["destination"] == destination:
            return entry
    return None


def wait_direct(bed: BedHandle, prefix: IPv6Network, timeout: float = 20) -> dict[str, Any]:
    """Wait until the CN's BUL entry is registered with a direct path from a CoA in `prefix`,
    sending a little traffic (RR starts on traffic)."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        bed.exec("guest", "curl", "-s", "-o", "/dev/null", "--max-time", "3", "--interface", HOA,
                 f"http://[{CN}]/", timeout=10)
        last = bed.status()
        entry = _entry(last, CN)
        if (entry and entry["path"] == "direct" and entry["state"] == "registered"
                and IPv6Address(entry["care_of_address"]) in prefix):
            return last
        time.sleep(0.3)
    raise AssertionError(f"no direct path via {prefix}: {last.get('binding_update_list')}")


def _start_downloads(bed: BedHandle, tmp_path: Path, rate: str = "2M") -> dict[str, Any]:
    """The same /big through an IPv6 app (home address) and an IPv4 app on `host`."""
    procs = {}
    for family, url in (("6", f"http://[{CN}]/big"), ("4", "http://cn.example/big")):
        out = tmp_path / f"big{family}"
        procs[family] = (netns.popen(bed.namespace("host"), [
            "curl", f"-{family}", "-s", "--limit-rate", rate, "--max-time", "90", "-o", str(out),
            url]), out)
    return procs


def _finish(bed: BedHandle, procs: dict[str, Any]) -> None:
    expected = hashlib.sha256((Path(bed.state_dir) / "www" / "big").read_bytes()).hexdigest()
    try:
        for family, (proc, out) in procs.items():
            assert proc.wait(timeout=120) == 0, f"curl -{family} failed"
            assert hashlib.sha256(out.read_bytes()).hexdigest() == expected, family
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()


def _data_at_home_agent(bed: BedHandle, path: Path, seconds: float) -> list[dict[str, list[str]]]:
    """HTTP packets (inside the tunnel or not) seen by the HA during `seconds`."""
    with capture(bed.namespace("ha"), "eth0", path, "ip6") as cap:
        time.sleep(seconds)
    return cap.decode(["ipv6.src", "ipv6.dst"], f"tcp.port == 80 && ipv6.addr == {CN}")


def test_direct_path_for_ipv6_and_ipv4_apps_across_moves(ro_bed: BedHandle, tmp_path: Path) -> None:
    bed = ro_bed
    wait_registered(bed, VISITED_B)
    wait_direct(bed, VISITED_B)
    with capture(bed.namespace("sw"), "p-guest", tmp_path / "visited.pcap", "ip6") as visited:
        procs = _start_downloads(bed, tmp_path)
        time.sleep(1.0)
        assert _data_at_home_agent(bed, tmp_path / "ha1.pcap", 1.5) == []
        for target, prefix in (("a", VISITED_A), ("b", VISITED_B)):
            moved = bed.move(target)
            assert moved.returncode == 0, moved.stderr
            status = wait_direct(bed, prefix)
        assert _data_at_home_agent(bed, tmp_path / "ha2.pcap", 1.5) == []
        _finish(bed, procs)
    entry = _entry(status, CN)
    assert entry is not None and entry["home_token_age"] is not None
    scenarios = {s["number"]: s for s in status["guest"]["scenario_policy"]}
    assert scenarios[10011]["active"] and scenarios[11001]["active"]
    # outbound: from the CoA with a Home Address option; inbound: to the CoA with a type 2 RH
    out = visited.decode(["ipv6.src", "ipv6.opt.mipv6.home_address"],
                         f"tcp && ipv6.dst == {CN} && ipv6.opt.mipv6.home_address == {HOA}")
    inbound = visited.decode(["ipv6.dst", "ipv6.routing.mipv6.home_address"],
                             f"tcp && ipv6.src == {CN} && ipv6.routing.type == 2")
    assert out and inbound
    coas = {IPv6Address(r["ipv6.src"][0]) for r in out}
    assert any(c in VISITED_A for c in coas) and any(c in VISITED_B for c in coas), coas
    assert all(r["ipv6.routing.mipv6.home_address"] == [HOA] for r in inbound)
    # the CN sends BAs with status 0 only after a full RR: one HoT, and a CoT per CoA
    mh = visited.decode(["mip6.mhtype"], f"mip6.mhtype && ipv6.addr == {CN}")
    types = [int(r["mip6.mhtype"][0]) for r in mh if r["mip6.mhtype"]]
    assert types.count(4) >= 2 and types.count(6) >= 2, types


def test_cn_restart_binding_error_fallback_and_recovery(ro_bed: BedHandle, tmp_path: Path) -> None:
    bed = ro_bed
    wait_registered(bed, VISITED_B)
    wait_direct(bed, VISITED_B)
    before = bed.status()["counters"]["guest"].get("ro_be_binding_removed", 0)
    procs = _start_downloads(bed, tmp_path, rate="3M")
    time.sleep(1.5)
    restart_agent(bed.state_dir, "cn")  # a new Kcn, an empty binding cache
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = bed.status()
        if status["counters"]["guest"].get("ro_be_binding_removed", 0) > before:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"no Binding Error handled: {status['counters']['guest']}")
    _finish(bed, procs)
    status = wait_direct(bed, VISITED_B)
    assert status["counters"]["cn"].get("be_sent_1", 0) >= 1
    assert status["counters"]["cn"].get("binding_created", 0) >= 1


def test_non_mipv6_correspondent_uses_the_tunnel_without_waiting(ro_bed: BedHandle,
                                                                 tmp_path: Path) -> None:
    bed = ro_bed
    wait_registered(bed, VISITED_B)
    with capture(bed.namespace("sw"), "p-guest", tmp_path / "cn2.pcap", "ip6") as visited:
        for _ in range(2):
            result = bed.exec("host", "curl", "-6", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                              "--max-time", "20", f"http://[{CN2}]/", timeout=30)
            assert result.stdout == b"200", result
        result = bed.exec("host", "curl", "-6", "-s", "--max-time", "60", f"http://[{CN2}]/big",
                          "-o", "/dev/null", "-w", "%{size_download}", timeout=70)
        assert int(result.stdout) == (Path(bed.state_dir) / "www" / "big").stat().st_size
    entry = _entry(bed.status(), CN2)
    assert entry is not None and entry["state"] == "unsupported" and entry["path"] == "tunnel"
    rows = visited.decode(["frame.number", "ipv6.dst", "tcp.flags.syn", "tcp.flags.ack",
                           "icmpv6.type", "mip6.mhtype"],
                          f"(tcp && ipv6.addr == {CN2}) || icmpv6.type == 4 || mip6.mhtype")
    syn = [int(r["frame.number"][0]) for r in rows
           if r["tcp.flags.syn"] == ["1"] and r["tcp.flags.ack"] == ["0"]]
    problems = [int(r["frame.number"][0]) for r in rows if "4" in r["icmpv6.type"]]
    assert syn and problems, rows
    # the first SYN left through the tunnel (outer destination the HA) before RR had any answer
    first = next(r for r in rows if int(r["frame.number"][0]) == syn[0])
    assert first["ipv6.dst"][0] != CN2 and first["ipv6.dst"][-1] == CN2
    assert syn[0] < problems[0]
    # remembered: one CoTI towards cn2 for all three transfers
    cotis = [r for r in rows if r["mip6.mhtype"] == ["2"] and r["ipv6.dst"] == [CN2]
             and not r["icmpv6.type"]]  # not the copy quoted in the Parameter Problem
    assert len(cotis) == 1, cotis


def test_bad_input_at_the_cn(ro_bed: BedHandle) -> None:
    bed = ro_bed
    probe = bed.add_probe("a", "roprobe")
    home = IPv6Address("2001:db8:a::beef")
    netns.run(probe, ["ip", "-6", "addr", "add", f"{home}/64", "dev", "eth0", "nodad"])
    care_of = None
    deadline = time.monotonic() + 15
    while care_of is None and time.monotonic() < deadline:  # SLAAC from radvd on 5a
        out = netns.run(probe, ["ip", "-j", "-6", "addr", "show", "dev", "eth0"]).stdout
        for info in json.loads(out or b"[]"):
            for addr in info.get("addr_info", []):
                address = IPv6Address(addr["local"])
                if address in VISITED_A and address != home:
                    care_of = address
        time.sleep(0.3)
    assert care_of is not None
    result = netns.run(probe, [sys.executable, "-m", "tests.netns.ro_probe", CN, str(home),
                               str(care_of)], timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    answers = json.loads(result.stdout)
    assert answers["wrong_authenticator"] == []  # silently discarded
    assert answers["expired_care_of_nonce"] == [137]
    assert answers["expired_home_nonce"] == [136]
    assert answers["valid"] == [0]
    assert answers["old_sequence"] == [[135, 200]]
    assert answers["hao_without_binding"] == [[1, str(IPv6Address(int(home) + 7))]]
    assert answers["hoti_with_hao"] == []
    counters = bed.status()["counters"]["cn"]
    for key in ("bu_bad_authenticator", "bu_refused_137", "bu_refused_136", "bu_refused_135",
                "rx_hao_without_binding", "rx_test_init_with_hao_ignored"):
        assert counters.get(key, 0) >= 1, (key, counters)
    # the CN keeps serving (and the terminal keeps its direct path)
    wait_direct(bed, VISITED_B)


def test_end_to_end_esp_inside_hao_and_rh2(tmp_path: Path) -> None:
    for bed in _bring_up("--ro", "--ipsec", "e2e,signalling"):
        wait_registered(bed, VISITED_B)
        wait_direct(bed, VISITED_B)
        with capture(bed.namespace("sw"), "p-guest", tmp_path / "e2e.pcap", "ip6") as visited:
            result = bed.exec("host", "curl", "-6", "-s", "--max-time", "30", f"http://[{CN}]/big",
                              "-o", "/dev/null", "-w", "%{size_download}", timeout=40)
        assert int(result.stdout) == (Path(bed.state_dir) / "www" / "big").stat().st_size
        fields = ["ipv6.nxt", "ipv6.opt.mipv6.home_address", "ipv6.routing.type", "tcp.port"]
        out = visited.decode(fields, f"esp && ipv6.dst == {CN}")
        inbound = visited.decode(fields, f"esp && ipv6.src == {CN}")
        assert out and inbound
        # HAO (destination options, 60) then ESP (50); type 2 RH (43) then ESP; no TCP in clear
        assert all(r["ipv6.nxt"][:1] == ["60"] and r["ipv6.opt.mipv6.home_address"] == [HOA]
                   for r in out), out[:3]
        assert all(r["ipv6.nxt"][:1] == ["43"] and r["ipv6.routing.type"] == ["2"]
                   for r in inbound), inbound[:3]
        assert not any(r["tcp.port"] for r in out + inbound)
        counters = bed.status()["counters"]["guest"]
        assert counters.get("tx_route_optimised", 0) > 0 and counters.get("rx_route_optimised", 0) > 0


def test_returning_home_deregisters_at_the_cn(ro_bed: BedHandle) -> None:
    bed = ro_bed
    wait_registered(bed, VISITED_B)
    wait_direct(bed, VISITED_B)
    def our_bindings(status: dict) -> list[dict]:
        # only the terminal's: the bad-input test's probe may still hold a binding of its own
        return [b for b in status["cn"]["route_optimisation"]["binding_cache"]
                if b["home_address"] == HOA]

    assert our_bindings(bed.status())
    moved = bed.move("home")
    assert moved.returncode == 0, moved.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = bed.status()
        ours = our_bindings(status)
        if not ours and _entry(status, CN) is None:
            break
        time.sleep(0.2)
    else:
        raise AssertionError((status["binding_update_list"], ours))
    assert status["counters"]["guest"].get("ro_deregistered", 0) >= 1
    assert status["counters"]["cn"].get("binding_deleted", 0) >= 1
    moved = bed.move("b")  # leave the shared bed as the other tests expect it
    assert moved.returncode == 0, moved.stderr
    wait_direct(bed, VISITED_B)
