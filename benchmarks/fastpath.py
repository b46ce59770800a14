"""Issue 14: the eBPF fast path against the Python path, TAYGA and plain kernel forwarding.

One run, one table (group "fastpath"), everything measured back to back on this machine:
  * bed `<prefix>f` (fast path on): iperf3 from `host` (IPv4) to the CN and back: UDP 100 B,
    TCP, TCP -R; meanwhile BPF_ENABLE_STATS gives each tc program's run time per packet;
  * the same bed's reference: a probe namespace on visited network 5b with the kernel's own
    IPv6 stack (veth defaults: transmit offloads on, like the links the fast path redirects
    to) runs the same iperf3 to the CN, forwarded by the bed's routers only (ar-b, core): plain
    kernel IPv6 forwarding through the same namespaces, without the guest and HA hops;
  * bed `<prefix>p` (`--no-fastpath`): the pure Python path, same iperf3 runs;
  * TAYGA (benchmarks.tayga): the same iperf3 runs through TAYGA;
  * the HA program alone (BPF_PROG_TEST_RUN, single runs, kernel-timed) with 1k and 100k
    bindings in its map: intercept and reverse-tunnel packets per second;
  * ratios: fast path vs TAYGA (UDP pkt/s, TCP Mbit/s) and vs kernel forwarding.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from ipaddress import IPv6Address, IPv6Network

from benchmarks import tayga
from benchmarks.report import Measurement, Skipped
from benchmarks.testbed import (
    CN_ADDRESS,
    CommandFailed,
    _cli,
    cn_ipv4_address,
    iperf3_client_args,
    iperf3_from_host,
    parse_iperf3,
    tcp_measurement,
    teardown,
    udp_measurement,
    wait_for_binding,
)

GROUP = "fastpath"
PROGRAMS = (("guest", "eth1"), ("guest", "eth0"), ("ha", "eth0"))
HA_RUNS = 20_000  # single runs: a repeated test run would re-run on the rewritten packet


def _up(prefix: str, *extra: str) -> None:
    done = _cli("testbed", "up", "--prefix", prefix, *extra, timeout=120)
    if done.returncode != 0:
        raise CommandFailed(f"testbed up {prefix} failed: {done.stderr.strip()[-300:]}")
    wait_for_binding(prefix)


def _host_runs(prefix: str, label: str, duration: int) -> list[Measurement]:
    server4 = cn_ipv4_address(prefix)
    via = f"host IPv4 -> guest ({label}) -> HA -> CN"
    out = []
    for name, udp, reverse in (("UDP 100 B host->CN", True, False), ("TCP host->CN", False, False),
                               ("TCP CN->host (-R)", False, True)):
        data = iperf3_from_host(prefix, server4, udp=udp, duration=duration, reverse=reverse)
        make = udp_measurement if udp else tcp_measurement
        out.append(make(GROUP, f"{name} ({label})", data, via))
        time.sleep(1.0)
    return out


def _program_ids(prefix: str) -> dict[str, int]:
    from provisioning import netns
    from provisioning.topology import namespace

    ids = {}
    for node, ifname in PROGRAMS:
        done = netns.run(namespace(prefix, node), ["tc", "-j", "filter", "show", "dev", ifname,
                                                    "ingress"], timeout=10)
        for entry in json.loads(done.stdout or b"[]"):
            prog = entry.get("options", {}).get("prog")
            if prog:
                ids[f"{node}/{prog['name']}"] = int(prog["id"])
    return ids


def _run_time(ids: dict[str, int]) -> dict[str, tuple[int, int]]:
    from netstack.fastpath.libbpf import program_fd_by_id, program_run_stats

    stats = {}
    for name, prog_id in ids.items():
        fd = program_fd_by_id(prog_id)
        try:
            stats[name] = program_run_stats(fd)
        finally:
            os.close(fd)
    return stats


def _kernel_reference(prefix: str, duration: int) -> list[Measurement]:
    """iperf3 from a kernel-IPv6 probe on visited network 5b to the CN (routers only)."""
    from provisioning import netns, testbed
    from provisioning.topology import VISITED_B

    ns = testbed.add_probe(prefix, "b", "kref")  # veth defaults: TSO/GSO on, as the fast path's links
    deadline = time.monotonic() + 20
    address = None
    while address is None and time.monotonic() < deadline:
        shown = netns.run(ns, ["ip", "-j", "-6", "addr", "show", "dev", "eth0"], timeout=10)
        for link in json.loads(shown.stdout or b"[]"):
            for info in link.get("addr_info", []):
                if IPv6Address(info["local"]) in IPv6Network(VISITED_B) and "tentative" not in info:
                    address = info["local"]
        time.sleep(0.5)
    if address is None:
        raise CommandFailed("the kernel reference probe got no address in 5b")
    out = []
    via = "probe on 5b (kernel IPv6) -> ar-b -> core -> CN"
    for name, udp, reverse in (("UDP 100 B probe->CN", True, False), ("TCP probe->CN", False, False),
                               ("TCP CN->probe (-R)", False, True)):
        argv = iperf3_client_args(CN_ADDRESS, udp=udp, duration=duration, bind=address, reverse=reverse)
        done = netns.run(ns, argv, timeout=duration + 30)
        make = udp_measurement if udp else tcp_measurement
        out.append(make(GROUP, f"{name} (kernel forwarding)", parse_iperf3(done.stdout.decode()), via))
        time.sleep(1.0)
    return out


def _fastpath_bed(prefix: str, duration: int) -> list[Measurement]:
    from netstack.fastpath.libbpf import enable_run_time_stats

    _up(prefix)
    stats_fd = enable_run_time_stats()  # run-time accounting while this fd stays open
    try:
        ids = _program_ids(prefix)
        before = _run_time(ids)
        results = _host_runs(prefix, "fast path", duration)
        after = _run_time(ids)
    finally:
        os.close(stats_fd)
    for name in sorted(ids):
        runs = after[name][1] - before[name][1]
        ns = after[name][0] - before[name][0]
        if runs:
            results.append(Measurement(GROUP, f"BPF run time {name}", seconds=ns / 1e9, packets=runs,
                                       detail={"note": f"{ns / runs:.0f} ns/packet over {runs} runs"}))
    results += _kernel_reference(prefix, duration)
    return results


def _ha_map_scale() -> list[Measurement]:
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import IPv6

    from netstack.fastpath.home_agent import HomeAgentFastPath, HomeAgentState
    from netstack.fastpath.libbpf import TC_ACT_REDIRECT, prog_test_run
    from netstack.wire.ip6ip6 import encapsulate

    ha, hoa, coa = (IPv6Address(a).packed for a in ("2001:db8:6::1", "2001:db8:6::1000", "2001:db8:a::2"))
    eth = bytes.fromhex("020000000005020000000006") + b"\x86\xdd"
    payload = b"\x00" * 100
    intercept = eth + bytes(IPv6(src=CN_ADDRESS, dst="2001:db8:6::1000") / UDP(sport=1, dport=2) / payload)
    inner = bytes(IPv6(src="2001:db8:6::1000", dst=CN_ADDRESS) / UDP(sport=2, dport=1) / payload)
    reverse = eth + bytes(encapsulate(inner, coa, ha))
    fp = HomeAgentFastPath(max_bindings=131072)
    out = []
    try:
        fp.set_state(HomeAgentState(ha, IPv6Network("2001:db8:6::/64"), eth[:6], eth[6:12], ifindex=1))
        fp.bind(hoa, coa)
        filled = 1
        for size in (1_000, 100_000):
            while filled < size:
                fp.bind(IPv6Address(int(IPv6Address("2001:db8:6::1:0")) + filled).packed,
                        IPv6Address(int(IPv6Address("2001:db8:c::")) + filled).packed)
                filled += 1
            for name, frame in (("intercept", intercept), ("reverse tunnel", reverse)):
                total = 0
                for _ in range(HA_RUNS):
                    verdict, _out, ns = prog_test_run(fp.program_fd, frame)
                    if verdict != TC_ACT_REDIRECT:
                        raise CommandFailed(f"HA program returned {verdict} for {name}")
                    total += ns
                per_packet = total / HA_RUNS
                out.append(Measurement(GROUP, f"HA program {name}, {size:,} bindings (test run)",
                                       pps=1e9 / max(per_packet, 1), packets=HA_RUNS,
                                       detail={"payload": 100, "note": f"{per_packet:.0f} ns/packet"}))
    finally:
        fp.close()
    return out


def _ratio_rows(results: list[Measurement]) -> list[Measurement]:
    def find(prefix: str, group: str = GROUP) -> Measurement | None:
        return next((m for m in results if m.group == group and m.name.startswith(prefix)), None)

    rows = []
    pairs: list[tuple[str, Measurement | None, Measurement | None, Callable[[Measurement], float | None]]] = [
        ("UDP pkt/s fast path / TAYGA", find("UDP 100 B host->CN (fast path)"),
         find("UDP 100 B v4->v6", "tayga"), lambda m: m.pps),
        ("TCP Mbit/s fast path / TAYGA", find("TCP host->CN (fast path)"), find("TCP v4->v6", "tayga"),
         lambda m: m.mbit_s),
        ("UDP pkt/s fast path / kernel forwarding", find("UDP 100 B host->CN (fast path)"),
         find("UDP 100 B probe->CN"), lambda m: m.pps),
        ("TCP Mbit/s fast path / kernel forwarding", find("TCP host->CN (fast path)"),
         find("TCP probe->CN"), lambda m: m.mbit_s),
        ("TCP -R Mbit/s fast path / kernel forwarding", find("TCP CN->host (-R) (fast path)"),
         find("TCP CN->probe (-R)"), lambda m: m.mbit_s),
        ("UDP pkt/s fast path / Python path", find("UDP 100 B host->CN (fast path)"),
         find("UDP 100 B host->CN (Python path)"), lambda m: m.pps),
        ("TCP Mbit/s fast path / Python path", find("TCP host->CN (fast path)"),
         find("TCP host->CN (Python path)"), lambda m: m.mbit_s),
    ]
    for name, a, b, value in pairs:
        if a is not None and b is not None and value(a) and value(b):
            rows.append(Measurement(GROUP, f"ratio {name}", detail={"note": f"{value(a) / value(b):.2f}x"}))
    return rows


def run(prefix: str = "bench", duration: int = 5) -> tuple[list[Measurement], list[Skipped]]:
    if os.geteuid() != 0:
        return [], [Skipped(GROUP, "fast path benchmarks", "needs root (BPF, namespaces)")]
    results: list[Measurement] = []
    skipped: list[Skipped] = []
    steps: list[tuple[str, Callable[[], list[Measurement]], str | None]] = [
        ("fast path bed", lambda: _fastpath_bed(f"{prefix}f", duration), f"{prefix}f"),
        ("Python path bed", lambda: (_up(f"{prefix}p", "--no-fastpath"),
                                     _host_runs(f"{prefix}p", "Python path", duration))[1], f"{prefix}p"),
        ("HA map scale", _ha_map_scale, None),
    ]
    for name, step, bed in steps:
        try:
            results += step()
        except (CommandFailed, OSError, ValueError, KeyError) as exc:
            skipped.append(Skipped(GROUP, name, str(exc)))
        finally:
            if bed is not None:
                teardown(bed)
    found, missing = tayga.run(duration)
    results += found
    skipped += missing
    return results + _ratio_rows(results), skipped
