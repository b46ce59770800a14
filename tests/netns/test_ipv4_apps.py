"""Issue 3, "must be shown": unmodified IPv4 applications on `host` reach the IPv6-only CN
through the guest agent (translation table 230, scenario policy 220, DNS on the host link).

Every test brings up its own Fig. 1 bed (the `host` node configured by host_shim at
`testbed up`) and drives real tools: curl, ping, iperf3, getent, Python sockets; the wire
is checked with tcpdump + tshark.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from provisioning import netns, processes
from provisioning.topology import CN_ADDRESS, CN_EXTRA_ADDRESSES, HOME_ADDRESS, VISITED_A, VISITED_B
from tests.netns.capture import capture
from tests.netns.conftest import BedHandle, _bring_up
from tests.netns.test_mobility_e2e import wait_registered

pytestmark = pytest.mark.netns

POOL = IPv4Network("198.18.0.0/24")
GATEWAY_V4 = IPv4Address("198.18.0.1")
HOME_V4 = IPv4Address("198.18.0.2")
SMALL_POOL = IPv4Network("198.18.0.0/29")  # .3-.6: four dynamic addresses
IDLE_TIMEOUT = 3
UDP_PORT = 9999
SCENARIOS = {10000, 10001, 10010, 10011, 11000, 11001, 10100, 10200, 10300}


# ---------------------------------------------------------------- helpers

def resolve_v4(bed: BedHandle, name: str) -> IPv4Address:
    """The glibc resolver on host (its /etc/resolv.conf points at the agent)."""
    result = bed.exec("host", "getent", "ahostsv4", name, timeout=15)
    assert result.returncode == 0, f"{name} did not resolve: {result.stderr!r}"
    return IPv4Address(result.stdout.split()[0].decode())


def curl4(bed: BedHandle, url: str, *extra: str, timeout: float = 30) -> tuple[int, str, int]:
    """(HTTP code, remote IP, bytes) of an IPv4 curl on host."""
    result = bed.exec("host", "curl", "-4", "-s", "-o", "/dev/null", "--max-time",
                      str(timeout - 5), "-w", "%{http_code} %{remote_ip} %{size_download}",
                      *extra, url, timeout=timeout)
    code, remote, size = result.stdout.decode().split()
    return int(code), remote, int(size)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def start_download(bed: BedHandle, url: str, out: Path, rate: str = "2M"
                   ) -> subprocess.Popen[bytes]:
    """A long IPv4 curl on host in the background (rate-limited so it spans the events)."""
    return netns.popen(bed.namespace("host"), [
        "curl", "-4", "-s", "-S", "--fail", "--limit-rate", rate, "--max-time", "120",
        "-o", str(out), "-w", "%{http_code} %{remote_ip}", url,
    ], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes], timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"curl failed ({proc.returncode}): {err.decode()}"
    return out.decode()


def wait_at_home(bed: BedHandle, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bed.status()["guest"].get("at_home") is True:
            return
        time.sleep(0.2)
    raise AssertionError("the guest did not come home")


def table_rows(status: dict[str, Any], key: str) -> list[dict[str, Any]]:
    rows = status["guest"][key]
    if isinstance(rows, dict):
        rows = rows.get("entries", list(rows.values()))
    assert isinstance(rows, list), rows
    return rows


def assert_data_path(bed: BedHandle) -> None:
    """Issue 14: the path the bed was asked for carried the traffic (status says which)."""
    status = bed.status()
    for node in ("guest", "ha"):
        fastpath = status[node]["fastpath"]
        assert fastpath["active"] is bed.fastpath, fastpath
        if not bed.fastpath:
            assert "disabled" in fastpath["reason"]
    if bed.fastpath:
        assert status["guest"]["fastpath"]["packets"]["out_translated"] > 0
        assert status["guest"]["fastpath"]["packets"]["in_translated"] > 0
        assert status["ha"]["fastpath"]["packets"]["intercepted"] > 0
    else:
        assert status["counters"]["guest"].get("xlat_4to6", 0) > 0


def translation_pairs(bed: BedHandle) -> set[tuple[str, str]]:
    return {(e["ipv6"], e["ipv4"]) for e in table_rows(bed.status(), "translation_table")}


# ---------------------------------------------------------------- 1, 3

def test_curl_ping_iperf3_over_ipv4_reach_the_ipv6_only_cn(testbed_either_path: BedHandle) -> None:
    bed = testbed_either_path
    wait_registered(bed, VISITED_B)
    address = resolve_v4(bed, "cn.example")  # the home resolver has only AAAA for it
    assert address in POOL and address not in (GATEWAY_V4, HOME_V4)
    code, remote, size = curl4(bed, "http://cn.example/")
    assert (code, IPv4Address(remote)) == (200, address) and size > 0
    # curl without options also works (E2 lets it use IPv6 when it prefers to)
    plain = bed.exec("host", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                     "--max-time", "20", "http://cn.example/", timeout=30)
    assert plain.stdout == b"200"
    ping = bed.exec("host", "ping", "-4", "-n", "-c", "3", "-W", "2", str(address), timeout=20)
    assert ping.returncode == 0, ping.stdout.decode()
    assert b"3 received" in ping.stdout
    iperf = bed.exec("host", "iperf3", "-4", "-c", str(address), "-t", "3", "-J", timeout=40)
    assert iperf.returncode == 0, iperf.stdout.decode()[-500:]
    report = json.loads(iperf.stdout)
    assert report["end"]["sum_received"]["bytes"] > 100_000
    # the CN saw the connection come from the home address (translated, tunnelled)
    assert (str(CN_ADDRESS), str(address)) in {
        (e["ipv6"], e["ipv4"]) for e in table_rows(bed.status(), "translation_table")}
    assert_data_path(bed)


def test_ipv6_app_with_the_home_address_while_ipv4_works(testbed: BedHandle) -> None:
    bed = testbed
    wait_registered(bed, VISITED_B)
    v6 = bed.exec("host", "curl", "-6", "-s", "-o", "/dev/null", "-w", "%{http_code} %{remote_ip}",
                  "--max-time", "20", "--interface", str(HOME_ADDRESS),
                  f"http://[{CN_ADDRESS}]/", timeout=30)
    assert v6.stdout.decode().split() == ["200", str(CN_ADDRESS)], v6.stderr
    code, remote, _ = curl4(bed, "http://cn.example/")
    assert code == 200 and IPv4Address(remote) in POOL
    # both at once: an IPv6 and an IPv4 download side by side
    procs = [
        netns.popen(bed.namespace("host"), [
            "curl", "-6", "-s", "--fail", "--interface", str(HOME_ADDRESS), "-o", "/dev/null",
            "--max-time", "60", f"http://[{CN_ADDRESS}]/big"], stderr=subprocess.PIPE),
        netns.popen(bed.namespace("host"), [
            "curl", "-4", "-s", "--fail", "-o", "/dev/null", "--max-time", "60",
            "http://cn.example/big"], stderr=subprocess.PIPE),
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err.decode()


# ---------------------------------------------------------------- 2

def test_long_ipv4_transfer_survives_move_a_and_home(testbed_either_path: BedHandle, tmp_path: Path) -> None:
    bed = testbed_either_path
    wait_registered(bed, VISITED_B)
    resolve_v4(bed, "cn.example")
    out = tmp_path / "big"
    proc = start_download(bed, "http://cn.example/big", out)
    try:
        time.sleep(2)
        assert proc.poll() is None, "the download ended before the first handover"
        moved = bed.move("a")
        assert moved.returncode == 0, moved.stderr
        wait_registered(bed, VISITED_A)
        time.sleep(1)
        assert proc.poll() is None, "the download ended before the second handover"
        moved = bed.move("home")
        assert moved.returncode == 0, moved.stderr
        wait_at_home(bed)
        result = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert result.split()[0] == "200"
    assert sha256_file(out) == sha256_file(Path(bed.state_dir, "www", "big"))
    assert_data_path(bed)


# ---------------------------------------------------------------- 4, 6

def test_agent_restart_mid_transfer_keeps_table_230(testbed: BedHandle, tmp_path: Path) -> None:
    bed = testbed
    wait_registered(bed, VISITED_B)
    resolve_v4(bed, "cn.example")
    old_pid = processes.read_pid(bed.state_dir, "guest")
    out = tmp_path / "big"
    proc = start_download(bed, "http://cn.example/big", out)
    try:
        time.sleep(2)
        assert proc.poll() is None, "the download ended before the restart"
        before = translation_pairs(bed)
        assert (str(HOME_ADDRESS), str(HOME_V4)) in before
        assert any(v6 == str(CN_ADDRESS) for v6, _ in before)
        restarted = bed.cli("agent", "restart")
        assert restarted.returncode == 0, restarted.stderr
        assert "guest agent restarted" in restarted.stdout
        new_pid = processes.read_pid(bed.state_dir, "guest")
        assert new_pid is not None and new_pid != old_pid and netns.pid_alive(new_pid)
        result = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert result.split()[0] == "200"
    assert sha256_file(out) == sha256_file(Path(bed.state_dir, "www", "big"))
    assert translation_pairs(bed) == before


def test_status_json_shows_table_230_and_policy_220(testbed: BedHandle) -> None:
    bed = testbed
    wait_registered(bed, VISITED_B)
    resolve_v4(bed, "cn.example")
    result = bed.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    entries = table_rows(status, "translation_table")
    assert entries and all({"ipv6", "ipv4", "lifetime"} <= set(e) for e in entries)
    assert all(isinstance(e["lifetime"], int | float) and e["lifetime"] > 0 for e in entries)
    by_v6 = {e["ipv6"]: e["ipv4"] for e in entries}
    assert by_v6[str(HOME_ADDRESS)] == str(HOME_V4)
    assert IPv4Address(by_v6[str(CN_ADDRESS)]) in POOL
    assert len(set(by_v6.values())) == len(by_v6)  # one IPv4 address per IPv6 address
    policy = table_rows(status, "scenario_policy")
    assert all({"number", "content", "state"} <= set(e) for e in policy)
    numbers = {int(e["number"]): e for e in policy}
    assert set(numbers) >= SCENARIOS
    assert all(e["state"] in ("on", "off") and e["content"] for e in policy)
    assert numbers[10000]["state"] == "on" and numbers[10001]["state"] == "on"


# ---------------------------------------------------------------- 5

@pytest.fixture
def small_pool_testbed() -> Iterator[BedHandle]:
    yield from _bring_up("--pool", str(SMALL_POOL), "--idle-timeout", str(IDLE_TIMEOUT))


LISTENER = f"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", {UDP_PORT}))
print("ready", flush=True)
while True:
    data, (src, _) = s.recvfrom(2048)
    print(src, data.decode(), flush=True)
"""

SENDER = """
import socket, sys
home, port = sys.argv[1], int(sys.argv[2])
for src in sys.argv[3:]:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.sendto(("from " + src).encode(), (home, port))
    s.close()
"""


ARP_REQUEST = """
import socket, struct, sys
ifname, sender, target = sys.argv[1], socket.inet_aton(sys.argv[2]), socket.inet_aton(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0x0806))
mac = s.getsockname()[4]
arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, sender, bytes(6), target)
s.send(b"\\xff" * 6 + mac + b"\\x08\\x06" + arp)
"""


class Listener:
    """An IPv4 UDP listener on host; lines "src-ipv4 from <ipv6-source>"."""

    def __init__(self, bed: BedHandle) -> None:
        self.proc = netns.popen(bed.namespace("host"), [sys.executable, "-u", "-c", LISTENER],
                                stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = b""
        assert self.read(5.0, until=lambda lines: "ready" in lines) == ["ready"]

    def read(self, seconds: float, until: Any = None) -> list[str]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + seconds
        lines: list[str] = []
        while time.monotonic() < deadline:
            select.select([self.proc.stdout], [], [], 0.1)
            self.buffer += self.proc.stdout.read() or b""
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                lines.append(line.decode())
            if until is not None and until(lines):
                break
        return lines

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def send_from(bed: BedHandle, *sources: str) -> None:
    result = bed.exec("cn", sys.executable, "-c", SENDER, str(HOME_ADDRESS), str(UDP_PORT),
                      *sources)
    assert result.returncode == 0, result.stderr.decode()


def test_pool_of_four_fifth_destination_prohibited_then_reuses_expired(
        small_pool_testbed: BedHandle, tmp_path: Path) -> None:
    bed = small_pool_testbed
    wait_registered(bed, VISITED_B)
    sources = [str(a) for a in (CN_ADDRESS, *CN_EXTRA_ADDRESSES)]
    dynamic = {SMALL_POOL.network_address + i for i in range(3, 7)}
    # The agent drops (counted) what it would send to a host it has not heard from yet: let
    # it learn the host's MAC from an ARP request first, which takes no pool entry.
    arp = bed.exec("host", sys.executable, "-c", ARP_REQUEST, "eth0", str(HOME_V4),
                   str(GATEWAY_V4))
    assert arp.returncode == 0, arp.stderr.decode()
    time.sleep(0.3)
    assert translation_pairs(bed) == {(str(HOME_ADDRESS), str(HOME_V4))}
    listener = Listener(bed)
    try:
        with capture(bed.namespace("cn"), "eth0", tmp_path / "cn.pcap", "icmp6") as cap:
            started = time.monotonic()
            for source in sources:  # one at a time: the pool fills in this order
                send_from(bed, source)
                time.sleep(0.1)
            lines = listener.read(3.0, until=lambda got: len(got) >= 5)
        got = {line.split()[2]: IPv4Address(line.split()[0]) for line in lines}
        assert set(got) == set(sources[:4]), lines
        assert set(got.values()) == dynamic  # four distinct pool addresses, the whole pool
        prohibited = cap.decode(["ipv6.dst", "icmpv6.type", "icmpv6.code"],
                                "icmpv6.type == 1 && icmpv6.code == 1")
        assert prohibited, "no ICMPv6 administratively prohibited reached the CN"
        assert {row["ipv6.dst"][0] for row in prohibited} == {sources[4]}
        # the first four entries idle out after IDLE_TIMEOUT; the fifth source then gets one
        reused: IPv4Address | None = None
        while reused is None and time.monotonic() - started < IDLE_TIMEOUT + 10:
            send_from(bed, sources[4])
            for line in listener.read(1.0, until=lambda got: bool(got)):
                src, _, origin = line.split()
                if origin == sources[4]:
                    reused = IPv4Address(src)
        elapsed = time.monotonic() - started
        assert reused is not None, "the fifth source never got an expired entry"
        assert reused in dynamic
        assert elapsed >= IDLE_TIMEOUT - 1, f"accepted after {elapsed:.1f}s: pool not exhausted"
        pairs = translation_pairs(bed)
        assert (sources[4], str(reused)) in pairs
        assert sum(1 for _, v4 in pairs if v4 == str(reused)) == 1  # the old owner lost it
    finally:
        listener.close()
