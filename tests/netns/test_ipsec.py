"""Issue 4, "must be shown": IPsec in the running system (patent embodiments 3 and 5).

Every test brings up its own Fig. 1 bed with `--ipsec ...` and checks the wire with tcpdump and
tshark, which decrypts ESP with the keys `mip6term testbed keys --tshark` prints (an
independent ESP implementation checking ours).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from provisioning import control, netns
from provisioning.topology import CN_ADDRESS, HOME_ADDRESS, HOME_AGENT, VISITED_A, VISITED_B
from tests.netns.capture import Capture, capture
from tests.netns.conftest import BedHandle, _bring_up, _cli
from tests.netns.test_mobility_e2e import curl, wait_registered

pytestmark = pytest.mark.netns

HOA = str(HOME_ADDRESS)
HA = str(HOME_AGENT)
URL_INDEX = f"http://[{CN_ADDRESS}]/"
URL_BIG = f"http://[{CN_ADDRESS}]/big"
SPI_BU, SPI_BA, SPI_TUNNEL_UP, SPI_TUNNEL_DOWN = "0x00001001", "0x00001002", "0x00001003", "0x00001004"
SPI_E2E_UP, SPI_E2E_DOWN = "0x00002001", "0x00002002"


# ---------------------------------------------------------------- helpers

@contextmanager
def full_capture(namespace: str, interface: str, path: Path, bpf: str = "ip6"
                 ) -> Iterator[Capture]:
    """tests.netns.capture.capture keeps 256 octets per packet; tshark cannot decrypt a
    truncated ESP packet, so captures of two ESP layers keep whole packets."""
    argv = ["tcpdump", "-i", interface, "--immediate-mode", "-U", "-n", "-s", "0", "-w",
            str(path), bpf]
    proc = netns.popen(namespace, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), False)
    seen = b""
    deadline = time.monotonic() + 10
    while b"listening on" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read() or b""
        assert proc.poll() is None, seen
        time.sleep(0.05)
    try:
        yield Capture(str(path))
    finally:
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def bed_with(switches: str) -> Callable[[], Iterator[BedHandle]]:
    def fixture() -> Iterator[BedHandle]:
        yield from _bring_up("--ipsec", switches)
    return fixture


signalling_bed = pytest.fixture(bed_with("signalling"))
protected_tunnel_bed = pytest.fixture(bed_with("signalling,tunnel"))
all_protections_bed = pytest.fixture(bed_with("signalling,tunnel,e2e"))


@pytest.fixture(params=["tunnel", "tunnel-only"])
def tunnel_bed(request: pytest.FixtureRequest) -> Iterator[tuple[str, BedHandle]]:
    for bed in _bring_up("--ipsec", request.param):
        yield request.param, bed


@pytest.fixture(params=["tunnel,e2e", "tunnel-only,e2e"])
def double_bed(request: pytest.FixtureRequest) -> Iterator[tuple[str, BedHandle]]:
    for bed in _bring_up("--ipsec", request.param):
        yield request.param, bed


def tshark_keys(bed: BedHandle) -> list[str]:
    """The `-o` arguments printed by `mip6term testbed keys --tshark` (one line per option)."""
    result = _cli("testbed", "keys", "--prefix", bed.prefix, "--tshark")
    assert result.returncode == 0, result.stderr
    argv: list[str] = []
    for line in result.stdout.splitlines():
        argv += shlex.split(line)
    assert argv[:2] == ["-o", "esp.enable_encryption_decode:TRUE"]
    return argv


def decode(cap: Capture, bed: BedHandle, fields: list[str], display_filter: str = ""
           ) -> list[dict[str, list[str]]]:
    """Like Capture.decode, with the bed's ESP keys given to tshark."""
    argv = ["tshark", "-n", "-r", cap.path, *tshark_keys(bed), "-T", "fields",
            "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    if display_filter:
        argv += ["-Y", display_filter]
    for name in fields:
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    return [{name: [v for v in (values[i] if i < len(values) else "").split(",") if v]
             for i, name in enumerate(fields)}
            for values in (line.split("\t") for line in out.splitlines())]


def guest_ipsec(bed: BedHandle) -> dict[str, Any]:
    return bed.status()["guest"]["ipsec"]


def counters(section: dict[str, Any]) -> dict[str, int]:
    return section.get("counters", {})


def wait_for(predicate: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


# ---------------------------------------------------------------- 1. signalling

def test_protected_registration_decrypts_in_tshark_with_valid_icvs(
        signalling_bed: BedHandle, tmp_path: Path) -> None:
    bed = signalling_bed
    wait_registered(bed, VISITED_B)
    with capture(bed.namespace("sw"), "p-guest", tmp_path / "guest.pcap", "ip6") as cap:
        moved = bed.move("a")  # a new registration: BU from the new CoA, BA back
        assert moved.returncode == 0, moved.stderr
        coa = wait_registered(bed, VISITED_A)
    # without keys nothing of the mobility header is readable
    assert cap.decode(["mip6.mhtype"], "mip6.mhtype") == []
    fields = ["ipv6.src", "ipv6.dst", "esp.spi", "esp.icv_good", "mip6.mhtype",
              "mip6.bu.seqnr", "mip6.ba.status"]
    bus = decode(cap, bed, fields, "mip6.mhtype == 5")
    bas = decode(cap, bed, fields, "mip6.mhtype == 6")
    new_bus = [b for b in bus if b["ipv6.src"] == [str(coa)]]
    assert new_bus, bus
    for bu in new_bus:
        assert bu["esp.spi"] == [SPI_BU] and bu["esp.icv_good"] == ["1"], bu
        assert bu["ipv6.dst"] == [HA]
    accepted = [b for b in bas if b["ipv6.dst"] == [str(coa)] and b["mip6.ba.status"] == ["0"]]
    assert accepted, bas
    for ba in accepted:
        assert ba["esp.spi"] == [SPI_BA] and ba["esp.icv_good"] == ["1"], ba
    ipsec = bed.status()["ha"]["ipsec"]
    assert ipsec["counters"]["in_decrypted"] >= 2 and ipsec["counters"]["out_protected"] >= 2


# ---------------------------------------------------------------- 2. tunnel

def test_esp_tunnel_carries_ipv6_and_ipv4_apps(tunnel_bed: tuple[str, BedHandle],
                                              tmp_path: Path) -> None:
    mode, bed = tunnel_bed
    coa = str(wait_registered(bed, VISITED_B))
    with full_capture(bed.namespace("core"), "eth2", tmp_path / "core.pcap") as cap:
        code, size = curl(bed, URL_INDEX)
        assert code == 200 and size > 0
        v4 = bed.exec("host", "curl", "-4", "-s", "-o", "/dev/null", "--max-time", "15",
                      "-w", "%{http_code}", "http://cn.example/", timeout=25)
        assert v4.stdout == b"200", v4.stderr
    rows = decode(cap, bed, ["ipv6.src", "ipv6.dst", "ipv6.nxt", "esp.spi", "tcp.dstport",
                             "tcp.srcport"])
    assert rows
    rows = [r for r in rows if not r["ipv6.src"][0].startswith("fe80:")]  # core <-> ar-b ND
    for row in rows:  # only ESP between the CoA and the HA on core
        assert {row["ipv6.src"][0], row["ipv6.dst"][0]} == {coa, HA}, row
        assert row["ipv6.nxt"][0] == "50", row
    inside = [r["ipv6.nxt"][1:] for r in rows]
    expected = ["41", "6"] if mode == "tunnel" else ["6"]  # Fig. 21 / Fig. 22
    tcp = [n for n in inside if n[-1:] == ["6"]]
    assert tcp and all(n == expected for n in tcp), inside
    to_http = [r for r in rows if r["tcp.dstport"] == ["80"]]
    assert {r["ipv6.src"][-1] for r in to_http} == {HOA}  # IPv4 apps use the home address too
    ipsec = guest_ipsec(bed)["mobility"]
    assert ipsec["counters"]["out_protected"] > 0 and ipsec["counters"]["in_decrypted"] > 0
    assert ipsec["mismatch"] == {}


# ---------------------------------------------------------------- 3. double termination

def test_end_to_end_inside_esp_tunnel_decrypts_both_layers(
        double_bed: tuple[str, BedHandle], tmp_path: Path) -> None:
    mode, bed = double_bed
    wait_registered(bed, VISITED_B)
    before = guest_ipsec(bed)
    with full_capture(bed.namespace("core"), "eth2", tmp_path / "core.pcap") as tunnel_cap, \
            full_capture(bed.namespace("core"), "eth3", tmp_path / "cn.pcap") as cn_cap:
        code, size = curl(bed, URL_INDEX)
    assert code == 200 and size > 0
    rows = decode(tunnel_cap, bed, ["esp.spi", "esp.icv_good", "tcp.dstport", "tcp.srcport",
                                    "http.request.uri"])
    http = [r for r in rows if r["http.request.uri"]]
    assert http, rows
    assert all(r["esp.icv_good"] == ["1", "1"] for r in rows if r["tcp.srcport"]), rows
    assert http[0]["esp.spi"] == [SPI_TUNNEL_UP, SPI_E2E_UP]  # two layers, one capture
    replies = [r for r in rows if r["tcp.srcport"] == ["80"]]
    assert replies and all(r["esp.spi"] == [SPI_TUNNEL_DOWN, SPI_E2E_DOWN] for r in replies)
    # between the HA and the CN only the end-to-end layer remains
    cn_rows = [r for r in decode(cn_cap, bed, ["ipv6.src", "ipv6.dst", "ipv6.nxt", "esp.spi"])
               if HOA in r["ipv6.src"] + r["ipv6.dst"]]
    assert cn_rows and all(r["ipv6.nxt"][0] == "50" for r in cn_rows), cn_rows
    assert {r["esp.spi"][0] for r in cn_rows} == {SPI_E2E_UP, SPI_E2E_DOWN}
    # the CN's unmodified server saw plaintext HTTP from the home address
    log = (Path(bed.state_dir) / "cn-http.log").read_text()
    assert f"{HOA} - -" in log and '"GET / HTTP/1.1" 200' in log
    after = guest_ipsec(bed)
    for layer in ("mobility", "end_to_end"):
        for key in ("in_decrypted", "out_protected"):
            assert counters(after[layer]).get(key, 0) > counters(before[layer]).get(key, 0), layer
    cn = control.request(str(Path(bed.state_dir) / "cn.sock"), {"cmd": "status"}, 2.0)
    assert cn["ipsec"]["end_to_end"]["counters"]["in_decrypted"] > 0
    del mode


# ---------------------------------------------------------------- 4. replay, ICV, unprotected BU

_HOLD = """
table inet m6hold {
  chain hold {
    type filter hook forward priority 0; policy accept;
    meta l4proto esp ip6 daddr %s counter drop
  }
}
"""

_INJECT = """
import sys
from scapy.all import Ether, rdpcap, sendp
mac, path, flip = sys.argv[1], sys.argv[2], sys.argv[3] == "flip"
frame = bytearray(bytes(rdpcap(path)[-1]))
if flip:
    frame[14 + 40 + 8 + 8 + 4] ^= 0x01  # one bit of the ciphertext (after SPI, seq and IV)
sendp(Ether(bytes(frame)), iface="eth0", verbose=False)
"""

_PLAIN_BU = """
import sys
from scapy.all import IPv6, IPv6ExtHdrDestOpt, HAO, MIP6MH_BU, send
src, ha, hoa = sys.argv[1:4]
send(IPv6(src=src, dst=ha) / IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)])
     / MIP6MH_BU(seq=4242, flags="AH", mhtime=100), verbose=False)
"""


def test_replay_icv_failure_and_unprotected_bu(protected_tunnel_bed: BedHandle,
                                              tmp_path: Path) -> None:
    bed = protected_tunnel_bed
    coa = str(wait_registered(bed, VISITED_B))
    guest_mac = bed.status()["guest"]["neighbor_discovery"]["mac"]
    # hold the HA -> CoA ESP packets at ar-b and capture one on its way in
    hold = netns.run(bed.namespace("ar-b"), ["nft", "-f", "-"],
                     input=(_HOLD % coa).encode(), timeout=10)
    assert hold.returncode == 0, hold.stderr
    pcap = tmp_path / "held.pcap"
    with capture(bed.namespace("ar-b"), "eth1", pcap, f"ip6 dst {coa}"):
        bed.exec("guest", "ping", "-6", "-c", "1", "-W", "1", "-I", HOA, str(CN_ADDRESS))
    netns.run(bed.namespace("ar-b"), ["nft", "delete", "table", "inet", "m6hold"])
    # rewrite the captured frame for the visited link: from ar-b's eth0 to the guest
    rewritten = tmp_path / "inject.pcap"
    mac_ar_b = bed.exec("ar-b", "cat", "/sys/class/net/eth0/address").stdout.decode().strip()
    script = (f"from scapy.all import rdpcap, wrpcap, Ether\n"
              f"p = rdpcap({str(pcap)!r})[-1]\n"
              f"wrpcap({str(rewritten)!r}, [Ether(dst={guest_mac!r}, src={mac_ar_b!r})"
              f" / p.payload])\n")
    assert bed.exec("ar-b", sys.executable, "-c", script).returncode == 0

    def mobility() -> dict[str, int]:
        return counters(guest_ipsec(bed)["mobility"])

    start = mobility()

    def inject(mode: str) -> None:
        result = bed.exec("ar-b", sys.executable, "-c", _INJECT, guest_mac, str(rewritten),
                          mode, timeout=60)
        assert result.returncode == 0, result.stderr.decode()

    inject("flip")
    assert wait_for(lambda: mobility().get("in_icv_failure", 0) == 1), mobility()
    inject("as-is")  # the held packet was never delivered: accepted once...
    assert wait_for(lambda: mobility().get("in_decrypted", 0) > start.get("in_decrypted", 0))
    inject("as-is")  # ...and a replay the second time
    assert wait_for(lambda: mobility().get("in_replayed", 0) == 1), mobility()
    assert mobility().get("in_icv_failure", 0) == 1

    # an unprotected BU for the home address from another care-of address: no binding
    forged_coa = str(VISITED_B.network_address + 0x99)
    sent = bed.exec("ar-b", sys.executable, "-c", _PLAIN_BU, forged_coa, HA, HOA, timeout=60)
    assert sent.returncode == 0, sent.stderr.decode()
    assert wait_for(lambda: bed.status()["counters"]["ha"].get("bu_unprotected_dropped", 0)
                    >= 1), bed.status()["counters"]["ha"]
    cache = bed.status()["binding_cache"]
    assert [e["care_of_address"] for e in cache] == [coa]


# ---------------------------------------------------------------- 5. handover

def test_handover_with_all_protections_keeps_tcp_alive(all_protections_bed: BedHandle,
                                                       tmp_path: Path) -> None:
    bed = all_protections_bed
    wait_registered(bed, VISITED_B)
    big = Path(bed.state_dir) / "www" / "big"
    out = tmp_path / "big.out"
    proc = netns.popen(bed.namespace("guest"), [
        "curl", "-s", "--limit-rate", "3M", "--max-time", "60", "--interface", HOA,
        "-o", str(out), URL_BIG])
    try:
        time.sleep(1.5)
        assert bed.move("a").returncode == 0
        wait_registered(bed, VISITED_A)
        time.sleep(1.5)
        assert bed.move("home").returncode == 0
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(big.read_bytes()).hexdigest()
    status = bed.status()
    assert status["guest"]["at_home"] is True
    ipsec = status["guest"]["ipsec"]
    assert ipsec["mobility"]["mismatch"] == {}
    # the tunnel SAs followed the care-of address: their sequence numbers kept counting
    sas = {sa["name"]: sa for sa in ipsec["mobility"]["sas"]}
    assert sas["mn-ha-tunnel"]["packets"] > 0 and sas["ha-mn-tunnel"]["packets"] > 0
    assert str(sas["mn-ha-tunnel"]["src"]).startswith("2001:db8:a:")
    assert counters(ipsec["end_to_end"])["in_decrypted"] > 1000


def test_restarts_resume_esp_sequence_numbers(protected_tunnel_bed: BedHandle) -> None:
    """Manual keys are never renegotiated: a restarted daemon must not start again at 1."""
    bed = protected_tunnel_bed
    wait_registered(bed, VISITED_B)
    # Move the tunnel SAs' counters well past the replay window first (about 15,000 packets).
    code, size = curl(bed, URL_BIG, timeout=60)
    assert code == 200 and size > 20_000_000
    for node in ("guest", "ha"):
        restarted = bed.cli("agent", "restart", "--node", node)
        assert restarted.returncode == 0, restarted.stderr
        wait_registered(bed, VISITED_B, timeout=20)
        code, _ = curl(bed, URL_INDEX)
        assert code == 200, f"no traffic after restarting {node}"
    status = bed.status()
    assert counters(guest_ipsec(bed)["mobility"]).get("in_replayed", 0) == 0
    assert counters(status["ha"]["ipsec"]).get("in_replayed", 0) == 0
