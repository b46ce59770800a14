"""Issue 13, "must be shown": TLS inside TLS through the Squid gateway (patent E8, Fig. 38-39).

One `--tls-gateway` bed for the module (the tests run in order and leave it usable): curl on
`host` (IPv4 through translation, IPv6 with the home address) verifies the CN's certificate
itself, while the guest terminates the outer TLS session to Squid (`gw.example`). The wire is
checked by tcpdump + tshark, the outer layer decrypted with the guest's key log.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from pathlib import Path
from typing import Any

import pytest

from provisioning import netns, processes
from provisioning.nodes import gateway, tls_ca
from provisioning.topology import CN_ADDRESS, CN_EXTRA_ADDRESSES, HOME_ADDRESS, VISITED_B
from tests.netns.capture import capture
from tests.netns.conftest import BedHandle, _bring_up
from tests.netns.test_ipv4_apps import sha256_file
from tests.netns.test_mobility_e2e import wait_registered

pytestmark = pytest.mark.netns

POOL = IPv4Network("198.18.0.0/24")
CN_AUTHORITY = f"[{CN_ADDRESS}]:443"
CURL_RESET = {7, 35, 52, 55, 56}  # connect failed, TLS handshake, empty reply, send, recv
CURL_TIMEOUT = 28


@pytest.fixture(scope="module")
def bed() -> Iterator[BedHandle]:
    yield from _bring_up("--tls-gateway")


@pytest.fixture(scope="module")
def ca(bed: BedHandle) -> str:
    result = bed.cli("testbed", "ca")
    assert result.returncode == 0, result.stderr
    path = result.stdout.strip()
    assert Path(path).read_text().startswith("-----BEGIN CERTIFICATE-----")
    return path


def curl(bed: BedHandle, family: str, url: str, *extra: str, max_time: float = 25
         ) -> tuple[int, str]:
    """(curl exit code, "<http code> <remote ip> <bytes>") of curl on host."""
    result = bed.exec("host", "curl", family, "-s", "-S", "-o", "/dev/null", "--max-time",
                      str(max_time), "-w", "%{http_code} %{remote_ip} %{size_download}",
                      *extra, url, timeout=max_time + 15)
    return result.returncode, result.stdout.decode()


def tls_status(bed: BedHandle) -> tuple[dict[str, Any], dict[str, int]]:
    status = bed.status()
    return status["guest"]["tls_gateway"], status["counters"]["guest"]


def tshark(pcap: str | Path, display_filter: str, fields: list[str], *options: str
           ) -> list[list[str]]:
    argv = ["tshark", "-n", "-r", str(pcap), *options, "-Y", display_filter, "-T", "fields",
            "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in fields:
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


# ---------------------------------------------------------------- 1

def test_curl_https_through_the_gateway_ipv4_and_ipv6(bed: BedHandle, ca: str) -> None:
    wait_registered(bed, VISITED_B)
    rc, out = curl(bed, "-4", "https://cn.example/", "--cacert", ca)
    code, remote4, size = out.split()
    assert (rc, code) == (0, "200") and IPv4Address(remote4) in POOL and int(size) > 0, out
    rc, out = curl(bed, "-6", "https://cn.example/", "--cacert", ca)
    code, remote, _size = out.split()
    assert (rc, code, IPv6Address(remote)) == (0, "200", CN_ADDRESS), out
    # the inner session is the host's own: without the CA, curl itself refuses the CN
    rc, _out = curl(bed, "-4", "https://cn.example/")
    assert rc == 60  # SSL certificate problem: unable to get local issuer certificate
    tls, counters = tls_status(bed)
    assert tls["gateway"]["name"] == "gw.example"
    flows = [f for f in tls["recent"] if f["destination"] == CN_AUTHORITY]
    assert len(flows) >= 3 and all(f["tls_version"].startswith("TLSv1.") for f in flows)
    assert all(f["outer_local"].startswith(f"[{HOME_ADDRESS}]:") for f in flows)
    views = [f["host_view"] for f in flows]
    assert views[0].startswith("IPv4 198.18.0.2:") and views[0].endswith(f"{remote4}:443")
    assert views[1].startswith(f"IPv6 [{HOME_ADDRESS}]:") and views[1].endswith(CN_AUTHORITY)
    assert counters["tls_relay_flows"] == counters["tls_outer_sessions"] == 3
    # Squid tunnelled each one for the home address; the CN saw only the gateway
    deadline = time.monotonic() + 10  # Squid logs a tunnel when it closes
    while True:
        access = Path(gateway.access_log_path(bed.state_dir)).read_text()
        tunnels = [line for line in access.splitlines() if "TCP_TUNNEL/200" in line]
        if len(tunnels) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(tunnels) == 3 and all(str(HOME_ADDRESS) in t and f"CONNECT {CN_AUTHORITY}" in t
                                     for t in tunnels), access
    served = Path(bed.state_dir, "cn-https.log").read_text().splitlines()
    gets = [line for line in served if '"GET / HTTP/1.1" 200' in line]
    assert len(gets) == 2 and all(g.startswith(str(gateway.GW_ADDRESS)) for g in gets), served


def test_gateway_admits_only_terminals_with_a_certificate_from_the_ca(
        bed: BedHandle, ca: str) -> None:
    """Squid requires a client certificate from the bed's CA: the guest presents the
    terminal's (mn.example); a host of the home prefix without one is turned away."""
    terminal = tls_ca.server_files(bed.state_dir, gateway.TERMINAL_NAME)
    via_gateway = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "15",
                   "--proxy", f"https://gw.example:{gateway.GW_PORT}",
                   "--resolve", f"gw.example:{gateway.GW_PORT}:{gateway.GW_ADDRESS}",
                   "--resolve", f"cn.example:443:{CN_ADDRESS}",
                   "--proxy-cacert", ca, "--cacert", ca]
    refused = bed.exec("dns", *via_gateway, "https://cn.example/", timeout=30)
    assert refused.returncode in CURL_RESET, refused.stderr
    cache_log = Path(gateway.gw_dir(bed.state_dir), "cache.log").read_text()
    assert "failure while accepting a TLS connection" in cache_log
    admitted = bed.exec("dns", *via_gateway, "--proxy-cert", terminal.certificate,
                        "--proxy-key", terminal.key, "https://cn.example/", timeout=30)
    assert (admitted.returncode, admitted.stdout) == (0, b"200"), admitted.stderr


# ---------------------------------------------------------------- 2

def inner_client_hello_names(payload: bytes, tmp: Path) -> list[str]:
    """tshark's SNI of `payload` (the decrypted first bytes of the CONNECT tunnel), given to
    it as one TCP segment to port 443."""
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    path = tmp / "inner.pcap"
    wrpcap(str(path), [Ether() / IPv6(src=str(HOME_ADDRESS), dst=str(CN_ADDRESS))
                       / TCP(sport=40000, dport=443, flags="PA", seq=1) / payload])
    rows = tshark(path, "tls.handshake.type == 1", ["tls.handshake.extensions_server_name"])
    return [row[0] for row in rows]


def test_captures_show_only_the_gateway_outside_and_the_cn_inside(
        bed: BedHandle, ca: str, tmp_path: Path) -> None:
    keys = bed.cli("testbed", "keys", "--tls-keylog")
    assert keys.returncode == 0, keys.stderr
    keylog = keys.stdout.strip()
    visited, cn_link = tmp_path / "visited.pcap", tmp_path / "cn.pcap"
    with capture(bed.namespace("ar-b"), "eth0", visited, snaplen=0), \
            capture(bed.namespace("cn"), "eth0", cn_link, snaplen=0):
        rc, out = curl(bed, "-4", "https://cn.example/", "--cacert", ca)
    assert (rc, out.split()[0]) == (0, "200"), out
    as_tls = ["-d", f"tcp.port=={gateway.GW_PORT},tls"]
    # visited link: TLS to the gateway only, SNI gw.example, no TCP 443 at all
    names = tshark(visited, "tls.handshake.type == 1",
                   ["ipv6.dst", "tls.handshake.extensions_server_name"], *as_tls)
    assert names and all(row[1] == "gw.example" for row in names), names
    assert all(row[0].split(",")[-1] == str(gateway.GW_ADDRESS) for row in names), names
    assert tshark(visited, "tcp.port == 443", ["frame.number"]) == []
    # the gateway's link to the CN: TLS from the gateway with SNI cn.example
    names = tshark(cn_link, "tls.handshake.type == 1",
                   ["ipv6.src", "tls.handshake.extensions_server_name"])
    assert names == [[str(gateway.GW_ADDRESS), "cn.example"]], names
    # with the outer session's keys, the visited-link capture opens up: CONNECT, then the
    # host's own ClientHello for cn.example inside
    decrypt = [*as_tls, "-o", f"tls.keylog_file:{keylog}"]
    connects = tshark(visited, "http.request.method == \"CONNECT\"",
                      ["tcp.stream", "http.request.uri"], *decrypt)
    assert connects and connects[-1][1] == CN_AUTHORITY, connects
    stream = connects[-1][0]
    data = tshark(visited, f"tcp.stream == {stream} && data && ipv6.dst == {gateway.GW_ADDRESS}",
                  ["data.data"], *decrypt)
    assert data, "nothing decrypted after CONNECT"
    first = bytes.fromhex(data[0][0].split(",")[0].replace(":", ""))
    assert first[:1] == b"\x16" and first[5:6] == b"\x01"  # handshake record, ClientHello
    assert inner_client_hello_names(first, tmp_path) == ["cn.example"]


# ---------------------------------------------------------------- 3

def relaying(bed: BedHandle, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tls, _ = tls_status(bed)
        active = [f for f in tls["outer_sessions"] if f["state"] == "relaying"
                  and f["bytes_down"] > 0 and f["outer_session"]]
        if active:
            return active[0]
        time.sleep(0.2)
    raise AssertionError("no relayed download in status")


def test_20mb_download_survives_moves_in_one_outer_session(
        bed: BedHandle, ca: str, tmp_path: Path) -> None:
    out = tmp_path / "big"
    _tls, before = tls_status(bed)
    proc = netns.popen(bed.namespace("host"), [
        "curl", "-4", "-s", "-S", "--fail", "--cacert", ca, "--limit-rate", "2M",
        "--max-time", "120", "-o", str(out), "https://cn.example/big",
    ], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = relaying(bed)
        assert bed.move("a").returncode == 0
        time.sleep(1)
        assert bed.move("home").returncode == 0
        tls, _ = tls_status(bed)
        same = [f for f in tls["outer_sessions"] if f["id"] == first["id"]]
        assert same, f"the outer session of flow {first['id']} is gone: {tls}"
        after = same[0]
        for key in ("outer_local", "outer_session", "client", "tls_version", "cipher"):
            assert after[key] == first[key], key
        assert after["state"] == "relaying"
        assert after["outer_uptime"] > first["outer_uptime"]
        assert after["bytes_down"] > first["bytes_down"]
        _out, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert sha256_file(out) == sha256_file(Path(bed.state_dir, "www", "big"))
    _tls, counters = tls_status(bed)
    assert counters["tls_outer_sessions"] - before["tls_outer_sessions"] == 1
    assert counters.get("tls_relay_aborted", 0) == before.get("tls_relay_aborted", 0)


# ---------------------------------------------------------------- 4

def test_gateway_down_resets_fast_and_back_up_works(bed: BedHandle, ca: str) -> None:
    _tls, before = tls_status(bed)
    processes.stop(bed.state_dir, "squid")
    # refused: the host's connection is reset well within 2 s (curl's own limit), not hung
    rc, out = curl(bed, "-4", "https://cn.example/", "--cacert", ca, max_time=2)
    assert rc in CURL_RESET, (rc, out)
    rc, out = curl(bed, "-6", "https://cn.example/", "--cacert", ca, max_time=2)
    assert rc in CURL_RESET, (rc, out)
    tls, counters = tls_status(bed)
    assert counters["tls_gateway_refused"] - before.get("tls_gateway_refused", 0) == 2
    assert tls["last_error"].startswith("refused")
    assert processes.is_running(bed.state_dir, "guest")
    gateway.start_squid(bed.state_dir, bed.prefix)
    # unreachable (the gateway's packets vanish): reset after the connect timeout
    drop = bed.exec("gw", "nft", "add table inet m6drop; add chain inet m6drop in "
                    "{ type filter hook input priority 0; policy accept; }; "
                    f"add rule inet m6drop in tcp dport {gateway.GW_PORT} drop")
    assert drop.returncode == 0, drop.stderr
    rc, out = curl(bed, "-4", "https://cn.example/", "--cacert", ca, max_time=5)
    assert rc in CURL_RESET, (rc, out)
    assert bed.exec("gw", "nft", "delete table inet m6drop").returncode == 0
    _tls, counters = tls_status(bed)
    assert counters["tls_gateway_unreachable"] - before.get("tls_gateway_unreachable", 0) == 1
    # refusing: Squid answers CONNECT with an error (nothing listens there) -> reset, counted
    rc, out = curl(bed, "-6", f"https://[{CN_EXTRA_ADDRESSES[0]}]:8443/", "--cacert", ca,
                   max_time=10)
    assert rc in CURL_RESET, (rc, out)
    tls, counters = tls_status(bed)
    assert counters["tls_gateway_refused"] - before.get("tls_gateway_refused", 0) == 3
    assert "CONNECT answered 503" in tls["last_error"], tls["last_error"]
    # back up: new connections work again
    deadline = time.monotonic() + 20
    while True:
        rc, out = curl(bed, "-4", "https://cn.example/", "--cacert", ca)
        if rc == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (rc, out.split()[0]) == (0, "200"), out
