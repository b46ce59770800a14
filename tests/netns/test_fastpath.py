"""Issue 14 in the test bed: the eBPF fast path under the agents, with real applications.

One bed (fast path on, the default) shared by the module's tests, in this order: programs,
maps and counters while IPv4 apps run; table 230 and the bindings map rebuilt by agent
restarts; a handover during a 20 MB transfer (no packet with the old care-of address once the
new one is in use; byte-exact). The same applications with the fast path off are the
`python-path` variants of tests/netns/test_ipv4_apps.py and test_mobility_e2e.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

import pytest

from provisioning.topology import CN_ADDRESS, HOME_AGENT, VISITED_A, VISITED_B
from tests.netns.capture import capture
from tests.netns.conftest import BedHandle, _bring_up
from tests.netns.test_ipv4_apps import (
    curl4,
    finish,
    resolve_v4,
    sha256_file,
    start_download,
    table_rows,
)
from tests.netns.test_mobility_e2e import wait_registered

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def bed() -> Iterator[BedHandle]:
    yield from _bring_up()


def fastpath(status: dict[str, Any], node: str) -> dict[str, Any]:
    return status[node]["fastpath"]


def cn_row(status: dict[str, Any]) -> dict[str, Any]:
    rows = [r for r in table_rows(status, "translation_table") if r["ipv6"] == str(CN_ADDRESS)]
    assert len(rows) == 1, rows
    return rows[0]


def tc_ingress(bed: BedHandle, node: str, ifname: str) -> str:
    return bed.exec(node, "tc", "filter", "show", "dev", ifname, "ingress").stdout.decode()


def test_programs_maps_and_counters_while_ipv4_apps_run(bed: BedHandle) -> None:
    wait_registered(bed, VISITED_B)
    address = resolve_v4(bed, "cn.example")
    for node, ifname, program in (("guest", "eth1", "mip6term_host"), ("guest", "eth0", "mip6term_visited"),
                                  ("ha", "eth0", "mip6term_ha")):
        assert program in tc_ingress(bed, node, ifname), (node, ifname)
    before = bed.status()
    assert fastpath(before, "guest")["active"] and fastpath(before, "ha")["active"]
    assert fastpath(before, "guest")["maps"]["xlat_v4"] >= 2  # home address + cn.example
    assert fastpath(before, "ha")["maps"]["bindings"] == 1
    assert set(fastpath(before, "ha")["bindings"]) == {"2001:db8:6::1000"}
    packets_before = cn_row(before)["packets"]
    for _ in range(3):
        code, remote, size = curl4(bed, "http://cn.example/")
        assert (code, remote) == (200, str(address)) and size > 0
    iperf = bed.exec("host", "iperf3", "-4", "-c", str(address), "-t", "2", "-J", timeout=40)
    assert iperf.returncode == 0, iperf.stdout.decode()[-500:]
    assert json.loads(iperf.stdout)["end"]["sum_received"]["bytes"] > 100_000
    time.sleep(2.5)  # the agent reads the programs' counters every second
    after = bed.status()
    guest, ha = fastpath(after, "guest")["packets"], fastpath(after, "ha")["packets"]
    assert guest["out_translated"] > fastpath(before, "guest")["packets"]["out_translated"]
    assert guest["in_translated"] > fastpath(before, "guest")["packets"]["in_translated"]
    assert ha["intercepted"] > 0 and ha["detunnelled"] > 0
    assert fastpath(after, "ha")["bindings"]["2001:db8:6::1000"]["packets"] > 20
    assert guest["errors"] == 0 and ha["errors"] == 0
    # The agents' sockets (bound to their ethertypes, served after tc ingress) never saw what
    # the programs redirected: the Python path translated and tunnelled (almost) nothing.
    python_before, python_after = before["counters"]["guest"], after["counters"]["guest"]
    for counter in ("xlat_4to6", "xlat_6to4"):
        assert python_after.get(counter, 0) - python_before.get(counter, 0) <= 2, counter
    assert after["counters"]["ha"].get("tx_tunnelled", 0) - before["counters"]["ha"].get("tx_tunnelled", 0) <= 2
    # table 230 learns what the kernel carried: packets and last use of the CN's row
    row = cn_row(after)
    assert row["packets"] > packets_before + 20
    assert row["idle"] < 5


def test_super_frames_from_the_cn_reach_the_host_and_hoa0_whole(bed: BedHandle, tmp_path: Path) -> None:
    """The CN sends with TSO: the HA tunnels its super-frames whole ([fastpath] super_frames),
    the guest translates them for the host (IPv4) or puts them into hoa0 (its own curl)."""
    wait_registered(bed, VISITED_B)
    big = Path(bed.state_dir) / "www" / "big"
    segments = big.stat().st_size // 1400  # what MTU-sized packets would number
    before = bed.status()
    assert fastpath(before, "ha")["super_frames"] is True  # the lite bed's default
    for node, argv in (("host", ["curl", "-4", "http://cn.example/big"]),
                       ("guest", ["curl", "-6", f"http://[{CN_ADDRESS}]/big"])):
        out = tmp_path / f"{node}.bin"
        done = bed.exec(node, *argv[:-1], "-s", "-S", "--fail", "--max-time", "60", "-o", str(out),
                        argv[-1], timeout=70)
        assert done.returncode == 0, done.stderr.decode()[-300:]
        assert sha256_file(out) == sha256_file(big), node
    after = bed.status()
    guest_before, guest = fastpath(before, "guest")["packets"], fastpath(after, "guest")["packets"]
    translated = guest["in_translated"] - guest_before["in_translated"]
    local = guest["in_local"] - guest_before["in_local"]
    intercepted = (fastpath(after, "ha")["packets"]["intercepted"]
                   - fastpath(before, "ha")["packets"]["intercepted"])
    # carried by the programs, and in far fewer runs than segments: whole super-frames
    assert 0 < translated < segments / 2, (translated, segments)
    assert 0 < local < segments / 2, (local, segments)
    assert translated + local <= intercepted < segments, (intercepted, segments)


def test_restarts_rebuild_the_maps(bed: BedHandle) -> None:
    wait_registered(bed, VISITED_B)
    rows = len(table_rows(bed.status(), "translation_table"))
    for node, message in (("guest", "guest agent restarted"), ("ha", "home agent restarted")):
        result = bed.cli("agent", "restart", "--node", node)
        assert result.returncode == 0 and message in result.stdout, result.stderr
    wait_registered(bed, VISITED_B)
    status = bed.status()
    assert fastpath(status, "guest")["maps"]["xlat_v4"] == rows  # from the persisted table 230
    assert fastpath(status, "ha")["maps"]["bindings"] == 1  # from the persisted binding cache
    carried = fastpath(status, "guest")["packets"]["out_translated"]
    code, _remote, _size = curl4(bed, "http://cn.example/")
    assert code == 200
    assert fastpath(bed.status(), "guest")["packets"]["out_translated"] > carried


def test_handover_never_uses_the_old_care_of_address_after_the_new_one(bed: BedHandle, tmp_path: Path) -> None:
    old_coa = wait_registered(bed, VISITED_B)
    out = tmp_path / "big"
    with capture(bed.namespace("sw"), "p-guest", tmp_path / "guest.pcap", "ip6 and ip6[6] == 41") as cap:
        proc = start_download(bed, "http://cn.example/big", out)
        try:
            time.sleep(2)
            assert proc.poll() is None, "the download ended before the handover"
            moved = bed.move("a")
            assert moved.returncode == 0, moved.stderr
            new_coa = wait_registered(bed, VISITED_A)
            result = finish(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert result.split()[0] == "200"
    assert sha256_file(out) == sha256_file(Path(bed.state_dir, "www", "big"))
    # The guest's tunnel packets to the HA in wire order: once the new CoA has been used
    # (after its BA was accepted), the old one never appears again.
    sources = [IPv6Address(r["ipv6.src"][0]) for r in cap.decode(["ipv6.src", "ipv6.dst"])
               if r["ipv6.dst"][:1] == [str(HOME_AGENT)]]
    assert old_coa in sources and new_coa in sources
    first_new = sources.index(new_coa)
    assert old_coa not in sources[first_new:]
    assert fastpath(bed.status(), "guest")["packets"]["out_translated"] > 0
