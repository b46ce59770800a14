"""Issue 10, "must be shown": HMIPv6 in the --hmip test bed (MAP, MAP option, local BUs).

One --hmip bed is shared by the module (each test first moves the guest where it needs it);
real processes: our RA daemon on ar-a/ar-b, radvd on ar-c, the MAP and HA daemons, the guest
agent, curl on host (IPv4 app) and on the guest's home address; the wire is checked with
tcpdump + tshark (an independent dissector of Mobility Header, HAO and the MAP option).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

import pytest

from provisioning import netns
from provisioning.nodes import agents
from provisioning.nodes import hmip as hmip_bed
from provisioning.topology import (
    CN_ADDRESS,
    HOME_ADDRESS,
    HOME_AGENT,
    MAP_ADDRESS,
    MAP_LINK,
    VISITED_A,
    VISITED_B,
    VISITED_C,
)
from tests.netns.capture import capture
from tests.netns.conftest import BedHandle, _bring_up

pytestmark = pytest.mark.netns

HOA = str(HOME_ADDRESS)
URL_BIG_V4 = "http://cn.example/big"
PREFIXES = {"a": VISITED_A, "b": VISITED_B, "c": VISITED_C}


@pytest.fixture(scope="module")
def bed() -> Iterator[BedHandle]:
    yield from _bring_up("--hmip")


def _home_entry(status: dict[str, Any]) -> dict[str, Any] | None:
    for entry in status["binding_update_list"]:
        if entry["destination"] == str(HOME_AGENT) and entry["state"] == "registered":
            return entry
    return None


def wait_attached(bed: BedHandle, network: str, timeout: float = 20) -> dict[str, Any]:
    """Until the guest is registered from `network`: through the MAP (RCoA at the HA, local
    binding with an LCoA of the network) for a and b, with the LCoA itself for c."""
    prefix = PREFIXES[network]
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = bed.status()
        home, hmip = _home_entry(last), last["guest"]["hmip"]
        if home and hmip and hmip["lcoa"] and IPv6Address(hmip["lcoa"]) in prefix:
            coa = IPv6Address(home["care_of_address"])
            if network == "c" and coa in prefix and hmip["map"] is None:
                return last
            if network != "c" and coa in MAP_LINK and hmip["local_tunnel_up"] \
                    and IPv6Address(hmip["rcoa"]) == coa:
                return last
        time.sleep(0.2)
    raise AssertionError(f"not registered from {network}: {last.get('binding_update_list')} "
                         f"{last.get('guest', {}).get('hmip')}")


def go(bed: BedHandle, network: str) -> dict[str, Any]:
    moved = bed.move(network, timeout=20)
    assert moved.returncode == 0, moved.stderr
    return wait_attached(bed, network)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start_download(bed: BedHandle, out: Path, rate: str = "2M") -> subprocess.Popen[bytes]:
    """A long IPv4 TCP transfer from the host's application (curl -4), rate-limited."""
    return netns.popen(bed.namespace("host"), [
        "curl", "-4", "-s", "-S", "--fail", "--limit-rate", rate, "--max-time", "120",
        "-o", str(out), URL_BIG_V4], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes], out: Path, bed: BedHandle) -> None:
    _, err = proc.communicate(timeout=150)
    assert proc.returncode == 0, f"curl failed ({proc.returncode}): {err.decode()}"
    assert sha256(out) == sha256(Path(bed.state_dir) / "www" / "big")


def curl_v4(bed: BedHandle) -> int:
    result = bed.exec("host", "curl", "-4", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                      "--max-time", "20", "http://cn.example/", timeout=30)
    return int(result.stdout.decode() or 0)


def curl_hoa(bed: BedHandle) -> int:
    result = bed.exec("guest", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                      "--max-time", "20", "--interface", HOA, f"http://[{CN_ADDRESS}]/",
                      timeout=30)
    return int(result.stdout.decode() or 0)


# ---------------------------------------------------------------- 1: intra-MAP movement

def test_intra_map_moves_send_only_local_bus(bed: BedHandle, tmp_path: Path) -> None:
    start = wait_attached(bed, "b")
    rcoa = start["guest"]["hmip"]["rcoa"]
    out = tmp_path / "big.out"
    with capture(bed.namespace("ha"), "eth0", tmp_path / "ha.pcap", "ip6") as at_ha, \
            capture(bed.namespace("map"), "eth0", tmp_path / "map.pcap", "ip6") as at_map:
        proc = start_download(bed, out)
        try:
            time.sleep(1.5)
            after_a = go(bed, "a")
            time.sleep(1.5)
            after_b = go(bed, "b")
            finish(proc, out, bed)
        finally:
            if proc.poll() is None:
                proc.kill()
    # The RCoA never changed, and the HA still binds the home address to it.
    assert after_a["guest"]["hmip"]["rcoa"] == after_b["guest"]["hmip"]["rcoa"] == rcoa
    assert [e["care_of_address"] for e in after_b["binding_cache"]] == [rcoa]
    # Not one BU reached the HA for either move (while the tunnelled transfer did).
    assert at_ha.decode(["ipv6.src"], "ipv6.nxt == 41")
    assert at_ha.decode(["ipv6.src"], "mip6.mhtype == 5") == []
    # The MAP got local BUs (A and M set, H clear) from the new LCoAs, RCoA in the HAO.
    bus = at_map.decode(["ipv6.src", "ipv6.opt.mipv6.home_address", "mip6.bu.m_flag",
                         "mip6.bu.h_flag", "mip6.bu.a_flag"], "mip6.mhtype == 5")
    sources = [IPv6Address(b["ipv6.src"][0]) for b in bus]
    assert any(s in VISITED_A for s in sources) and any(s in VISITED_B for s in sources), bus
    for b in bus:
        assert b["ipv6.opt.mipv6.home_address"] == [rcoa]
        assert b["mip6.bu.m_flag"] == ["1"] and b["mip6.bu.h_flag"] == ["0"], b
        assert b["mip6.bu.a_flag"] == ["1"]
    assert bed.status()["map_binding_cache"][0]["lcoa"] == after_b["guest"]["hmip"]["lcoa"]


# ---------------------------------------------------------------- 2: nested tunnels on 5a

def test_home_address_data_is_ipv6_in_ipv6_in_ipv6_on_5a(bed: BedHandle, tmp_path: Path) -> None:
    status = go(bed, "a")
    hmip = status["guest"]["hmip"]
    lcoa, rcoa = hmip["lcoa"], hmip["rcoa"]
    with capture(bed.namespace("ar-a"), "eth0", tmp_path / "5a.pcap", "ip6") as cap:
        assert curl_hoa(bed) == 200
        assert curl_v4(bed) == 200
    rows = cap.decode(["ipv6.src", "ipv6.dst", "ipv6.nxt"], "tcp")
    assert rows, "no TCP seen on the 5a link"
    up = [r for r in rows if r["ipv6.src"] == [lcoa, rcoa, HOA]
          and r["ipv6.dst"] == [str(MAP_ADDRESS), str(HOME_AGENT), str(CN_ADDRESS)]]
    down = [r for r in rows if r["ipv6.src"] == [str(MAP_ADDRESS), str(HOME_AGENT), str(CN_ADDRESS)]
            and r["ipv6.dst"] == [lcoa, rcoa, HOA]]
    assert up and down, rows[:5]
    assert len(up) + len(down) == len(rows), "a TCP segment crossed 5a outside the nested tunnel"
    for row in up + down:
        assert row["ipv6.nxt"][:2] == ["41", "41"]


# ---------------------------------------------------------------- 3: leaving and re-entering

def test_move_c_registers_the_lcoa_and_back_to_the_map(bed: BedHandle, tmp_path: Path) -> None:
    go(bed, "a")
    out = tmp_path / "big.out"
    with capture(bed.namespace("ha"), "eth0", tmp_path / "ha.pcap", "ip6") as at_ha:
        proc = start_download(bed, out)
        try:
            time.sleep(1.5)
            in_c = go(bed, "c")
            lcoa_c = in_c["guest"]["hmip"]["lcoa"]
            assert [e["care_of_address"] for e in in_c["binding_cache"]] == [lcoa_c]
            assert curl_hoa(bed) == 200
            time.sleep(1.5)
            back = go(bed, "a")
            finish(proc, out, bed)
        finally:
            if proc.poll() is None:
                proc.kill()
    rcoa = back["guest"]["hmip"]["rcoa"]
    assert IPv6Address(rcoa) in MAP_LINK
    assert [e["care_of_address"] for e in back["binding_cache"]] == [rcoa]
    # At the HA: a BU for the LCoA in 5c, then one for the RCoA (from the RCoA, type 1).
    bus = at_ha.decode(["ipv6.src", "ipv6.opt.mipv6.home_address"], "mip6.mhtype == 5")
    sources = [IPv6Address(b["ipv6.src"][0]) for b in bus]
    assert any(s in VISITED_C for s in sources) and sources[-1] == IPv6Address(rcoa), bus


# ---------------------------------------------------------------- 4: registration types

def _restart_guest_with_type(bed: BedHandle, registration_type: int) -> None:
    hmip_bed.enable_in_guest_config(bed.state_dir, registration_type)
    agents.restart_agent(bed.state_dir, agents.GUEST)


@pytest.mark.parametrize("registration_type", [1, 2, 3])
def test_registration_type_registers_and_carries_data(bed: BedHandle, tmp_path: Path,
                                                      registration_type: int) -> None:
    go(bed, "a")
    with capture(bed.namespace("sw"), "p-guest", tmp_path / "guest.pcap", "ip6") as cap:
        _restart_guest_with_type(bed, registration_type)
        status = wait_attached(bed, "a")
    hmip = status["guest"]["hmip"]
    lcoa, rcoa = hmip["lcoa"], hmip["rcoa"]
    assert hmip["registration_type"] == registration_type
    scenario = 10000 + 100 * registration_type
    rows = {r["number"]: r for r in status["guest"]["scenario_policy"]}
    assert rows[scenario]["active"] is True and rows[scenario]["state"] == "on"
    assert curl_v4(bed) == 200 and curl_hoa(bed) == 200
    # The home BU as the type asks (outermost header first).
    bus = cap.decode(["ipv6.src", "ipv6.dst", "ipv6.opt.mipv6.home_address", "mip6.acoa.acoa",
                      "mip6.bu.h_flag"], "mip6.mhtype == 5 && mip6.bu.h_flag == 1")
    assert bus, "no home BU seen on the guest's link"
    bu = bus[-1]
    if registration_type == 1:  # tunnelled LCoA -> MAP, inside RCoA -> HA with the HoA
        assert bu["ipv6.src"] == [lcoa, rcoa] and bu["ipv6.dst"] == [str(MAP_ADDRESS), str(HOME_AGENT)]
        assert bu["ipv6.opt.mipv6.home_address"] == [HOA]
    elif registration_type == 2:  # straight from the RCoA
        assert bu["ipv6.src"] == [rcoa] and bu["ipv6.dst"] == [str(HOME_AGENT)]
        assert bu["ipv6.opt.mipv6.home_address"] == [HOA]
    else:  # from the LCoA, RCoA in the HAO, HoA in the Alternate CoA option
        assert bu["ipv6.src"] == [lcoa] and bu["ipv6.dst"] == [str(HOME_AGENT)]
        assert bu["ipv6.opt.mipv6.home_address"] == [rcoa]
        assert bu["mip6.acoa.acoa"] == [HOA]
    bas = cap.decode(["ipv6.src", "ipv6.dst"], "mip6.mhtype == 6")
    from_ha = [b for b in bas if str(HOME_AGENT) in b["ipv6.src"]]
    assert from_ha, bas
    if registration_type == 3:  # the BA comes straight back to the LCoA
        assert from_ha[-1]["ipv6.src"] == [str(HOME_AGENT)] and from_ha[-1]["ipv6.dst"] == [lcoa]
    else:  # through the MAP's tunnel
        assert from_ha[-1]["ipv6.src"] == [str(MAP_ADDRESS), str(HOME_AGENT)]
    if registration_type == 3:
        _restart_guest_with_type(bed, 1)  # leave the shared bed with the default type


# ---------------------------------------------------------------- 5: bad input at the MAP

_CRAFT = """
import sys
from scapy.all import Ether, IPv6, ICMPv6EchoRequest, sendp
from scapy.layers.inet6 import HAO, IPv6ExtHdrDestOpt, MIP6MH_BU
map_mac, map_addr, rcoa, lcoa, forged, seq = sys.argv[1:7]
def bu(src, hoa, seq):
    return (Ether(dst=map_mac) / IPv6(src=src, dst=map_addr)
            / IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)])
            / MIP6MH_BU(seq=int(seq) % 65536, flags="AM", mhtime=75))
frames = [
    bu(forged, "2001:db8:e::5", 1),            # RCoA outside the MAP's prefix -> 132
    bu(lcoa, rcoa, int(seq) - 10),             # old sequence number -> 135
    Ether(dst=map_mac) / IPv6(src=forged, dst=map_addr)   # forged tunnel source
    / IPv6(src=rcoa, dst="2001:db8:8::1001") / ICMPv6EchoRequest(),
]
sendp(frames, iface="eth4", verbose=False)
"""


def test_bad_input_at_the_map_is_refused_counted_and_survived(bed: BedHandle) -> None:
    status = go(bed, "a")
    hmip = status["guest"]["hmip"]
    local = [e for e in status["binding_update_list"] if e["destination"] == str(MAP_ADDRESS)]
    assert local
    before = status["counters"]["map"]
    mac = status["map"]["neighbor_discovery"]["mac"]
    forged = "2001:db8:a::bad"
    result = bed.exec("core", sys.executable, "-c", _CRAFT, mac, str(MAP_ADDRESS), hmip["rcoa"],
                      hmip["lcoa"], forged, str(local[0]["sequence"]), timeout=60)
    assert result.returncode == 0, result.stderr.decode()

    def delta(counters: dict[str, int], key: str) -> int:
        return counters.get(key, 0) - before.get(key, 0)

    deadline = time.monotonic() + 10
    after = before
    while time.monotonic() < deadline:
        after = bed.status()["counters"]["map"]
        if delta(after, "rx_dropped_reverse_tunnel_no_binding") >= 1 \
                and delta(after, "bu_stale_sequence") >= 1:
            break
        time.sleep(0.2)
    assert delta(after, "bu_refused_rcoa_outside_prefix") == 1
    assert delta(after, "ba_status_132") == 1
    assert delta(after, "bu_stale_sequence") == 1
    assert delta(after, "ba_status_135") == 1
    assert delta(after, "rx_dropped_reverse_tunnel_no_binding") >= 1
    # The binding is untouched and the MAP keeps serving.
    cache = bed.status()["map_binding_cache"]
    assert [(e["rcoa"], e["lcoa"]) for e in cache] == [(hmip["rcoa"], hmip["lcoa"])]
    assert curl_v4(bed) == 200
    go(bed, "b")
    assert curl_hoa(bed) == 200


def test_map_restart_keeps_bindings_and_the_transfer(bed: BedHandle, tmp_path: Path) -> None:
    before = go(bed, "b")
    out = tmp_path / "big.out"
    proc = start_download(bed, out, rate="3M")
    try:
        time.sleep(1.0)
        restarted = bed.cli("agent", "restart", "--node", "map")
        assert restarted.returncode == 0, restarted.stderr
        finish(proc, out, bed)
    finally:
        if proc.poll() is None:
            proc.kill()
    after = bed.status()
    assert after["map_binding_cache"][0]["rcoa"] == before["guest"]["hmip"]["rcoa"]
    assert after["map_binding_cache"][0]["lcoa"] == before["guest"]["hmip"]["lcoa"]
    assert after["counters"]["map"].get("binding_restored") == 1
    go(bed, "a")  # the restored MAP takes the next local BU
    assert curl_v4(bed) == 200


def test_router_daemon_ras_read_by_tshark_and_the_linux_kernel(bed: BedHandle,
                                                                tmp_path: Path) -> None:
    with capture(bed.namespace("ar-a"), "eth0", tmp_path / "ra.pcap", "icmp6") as cap:
        probe = bed.add_probe("a", "probe")  # a kernel IPv6 host: RS at link up, SLAAC
        deadline = time.monotonic() + 15
        addresses = ""
        while time.monotonic() < deadline:
            addresses = netns.run(probe, ["ip", "-6", "-o", "addr", "show", "dev", "eth0",
                                          "scope", "global"], timeout=10).stdout.decode()
            if "2001:db8:a:" in addresses:
                break
            time.sleep(0.2)
        routes = netns.run(probe, ["ip", "-6", "route", "show", "default"], timeout=10)
    assert "2001:db8:a:" in addresses, addresses
    assert b"via fe80::" in routes.stdout, routes.stdout
    ras = cap.decode(["ipv6.dst", "icmpv6.opt.map.distance", "icmpv6.opt.map.preference",
                      "icmpv6.opt.map.flag.r", "icmpv6.opt.map.valid_lifetime",
                      "icmpv6.opt.map.global_address", "icmpv6.opt.prefix"], "icmpv6.type == 134")
    assert ras
    for ra in ras:
        assert ra["icmpv6.opt.map.global_address"] == [str(MAP_ADDRESS)]
        assert ra["icmpv6.opt.map.distance"] == ["1"] and ra["icmpv6.opt.map.preference"] == ["10"]
        assert ra["icmpv6.opt.map.flag.r"] in (["1"], ["True"])
        assert ra["icmpv6.opt.map.valid_lifetime"] == ["3600"]
        assert ra["icmpv6.opt.prefix"] == ["2001:db8:a::"]
    rs = cap.decode(["ipv6.src"], "icmpv6.type == 133")
    assert rs and any(not r["ipv6.dst"][0].startswith("ff02") for r in ras), "no solicited RA"
    status = bed.status()
    assert set(status["routers"]) == {"router-ar-a", "router-ar-b"}
    counters = status["counters"]["router-ar-a"]
    assert counters["ra_sent_unsolicited"] >= 1 and counters["rs_received"] >= 1
    assert counters["ra_sent_solicited"] >= 1


# ---------------------------------------------------------------- IPsec on the local BU

@pytest.fixture
def ipsec_bed() -> Iterator[BedHandle]:
    yield from _bring_up("--hmip", "--ipsec", "signalling")


def test_local_bu_and_ba_in_esp_and_unprotected_bu_refused(ipsec_bed: BedHandle,
                                                           tmp_path: Path) -> None:
    bed = ipsec_bed
    wait_attached(bed, "b")
    with capture(bed.namespace("map"), "eth0", tmp_path / "map.pcap", "ip6") as cap:
        status = go(bed, "a")
    hmip = status["guest"]["hmip"]
    esp = cap.decode(["ipv6.src", "ipv6.dst", "esp.spi"], "esp")
    to_map = [r for r in esp if r["ipv6.dst"] == [str(MAP_ADDRESS)]]
    from_map = [r for r in esp if r["ipv6.src"] == [str(MAP_ADDRESS)]]
    assert to_map and all(r["esp.spi"] == ["0x00001005"] for r in to_map), esp
    assert from_map and all(r["esp.spi"] == ["0x00001006"] for r in from_map), esp
    assert cap.decode(["ipv6.src"], "mip6.mhtype == 5 || mip6.mhtype == 6") == []  # none in clear
    before = status["counters"]["map"]
    local = [e for e in status["binding_update_list"] if e["destination"] == str(MAP_ADDRESS)]
    mac = status["map"]["neighbor_discovery"]["mac"]
    # the crafted local BU (plain, fresh sequence) from the guest's own LCoA and RCoA
    result = bed.exec("core", sys.executable, "-c", _CRAFT, mac, str(MAP_ADDRESS), hmip["rcoa"],
                      hmip["lcoa"], "2001:db8:a::bad", str(local[0]["sequence"] + 20), timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    deadline = time.monotonic() + 10
    after = before
    while time.monotonic() < deadline:
        after = bed.status()["counters"]["map"]
        if after.get("bu_unprotected_dropped", 0) > before.get("bu_unprotected_dropped", 0):
            break
        time.sleep(0.2)
    assert after.get("bu_unprotected_dropped", 0) - before.get("bu_unprotected_dropped", 0) >= 1
    assert after.get("ba_status_132", 0) == before.get("ba_status_132", 0)  # not even answered
    assert curl_v4(bed) == 200 and curl_hoa(bed) == 200
    # registration type 3 under the MN-HA signalling SA too (its HAO names the RCoA)
    ha_before = bed.status()["ha"]["ipsec"]["counters"].get("in_decrypted", 0)
    _restart_guest_with_type(bed, 3)
    status = wait_attached(bed, "a")
    assert status["guest"]["hmip"]["registration_type"] == 3
    assert status["ha"]["ipsec"]["counters"].get("in_decrypted", 0) > ha_before
    assert curl_v4(bed) == 200
