"""Issue 14: the eBPF fast path against the Python path, TAYGA and plain kernel forwarding.

One run, one table (group "fastpath"), everything measured back to back on this machine:
  * bed `<prefix>f` (fast path on): iperf3 from `host` (IPv4) to the CN and back: UDP 100 B,
    TCP, TCP -R; meanwhile BPF_ENABLE_STATS gives each tc program's run time per packet;
  * bed `<prefix>k` (benchmarks.kernel_path): the same namespaces and link settings without
    agents, the guest and the HA as plain kernel IPv6 routers, the core sending the flow
    through the HA both ways: plain kernel forwarding over the same hops, the same iperf3 runs
    from the host (IPv6);
  * bed `<prefix>p` (`--no-fastpath`): the pure Python path, same iperf3 runs;
  * TAYGA (benchmarks.tayga): the same iperf3 runs through TAYGA, with its receiving link's
    NAPI in softirq and in a thread (the guest's host link setting); ratios take its better;
  * the HA program alone (BPF_PROG_TEST_RUN, single runs, kernel-timed) with 1k and 100k
    bindings in its map: intercept and reverse-tunnel packets per second;
  * ratios: fast path vs TAYGA (UDP pkt/s, TCP Mbit/s) and vs kernel forwarding.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from functools import partial
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from benchmarks import kernel_path, tayga
from benchmarks.report import Measurement, Skipped
from benchmarks.testbed import (
    CN_ADDRESS,
    CommandFailed,
    _cli,
    cn_ipv4_address,
    counting_udp6_arrivals,
    iperf3_from_host,
    tcp_measurement,
    teardown,
    udp_measurement,
    wait_for_binding,
)

GROUP = "fastpath"
PROGRAMS = (("guest", "eth1"), ("guest", "eth0"), ("ha", "eth0"))
HA_RUNS = 20_000  # single runs: a repeated test run would re-run on the rewritten packet


def cn_namespace(prefix: str) -> str:
    from provisioning.topology import namespace

    return namespace(prefix, "cn")


def _up(prefix: str, *extra: str) -> None:
    done = _cli("testbed", "up", "--prefix", prefix, *extra, timeout=120)
    if done.returncode != 0:
        raise CommandFailed(f"testbed up {prefix} failed: {done.stderr.strip()[-300:]}")
    wait_for_binding(prefix)


RUNS = (("UDP 100 B host->CN", True, False), ("TCP host->CN", False, False),
        ("TCP CN->host (-R)", False, True))


def _runs(prefix: str, label: str, via: str,
          iperf3: Callable[[bool, bool], dict[str, Any]]) -> list[Measurement]:
    """The three iperf3 runs of a bed; iperf3(udp, reverse) runs one from the host. A UDP run
    also counts what reached the CN's UDP layer (host->CN: the CN receives)."""
    out = []
    for name, udp, reverse in RUNS:
        row = f"{name} ({label})"
        if udp:
            data, arrived = counting_udp6_arrivals(cn_namespace(prefix), partial(iperf3, udp, reverse))
            out.append(udp_measurement(GROUP, row, data, via, arrived=arrived))
        else:
            out.append(tcp_measurement(GROUP, row, iperf3(udp, reverse), via))
        time.sleep(1.0)
    return out


def _host_runs(prefix: str, label: str, duration: int) -> list[Measurement]:
    server4 = cn_ipv4_address(prefix)

    def iperf3(udp: bool, reverse: bool) -> dict[str, Any]:
        return iperf3_from_host(prefix, server4, udp=udp, duration=duration, reverse=reverse)

    return _runs(prefix, label, f"host IPv4 -> guest ({label}) -> HA -> CN", iperf3)


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
    """The same iperf3 runs through the same namespaces, forwarded by the kernel alone."""
    from provisioning import testbed

    testbed.up(testbed.UpOptions(prefix=prefix, agents=False))
    kernel_path.configure(prefix)

    def iperf3(udp: bool, reverse: bool) -> dict[str, Any]:
        return kernel_path.iperf3_from_host(prefix, udp=udp, duration=duration, reverse=reverse)

    return _runs(prefix, "kernel forwarding", kernel_path.VIA, iperf3)


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


def _best(results: list[Measurement], group: str, prefix: str,
          value: Callable[[Measurement], float | None]) -> Measurement | None:
    """The best of the rows whose name starts with `prefix` (TAYGA in both link settings)."""
    rows = [m for m in results if m.group == group and m.name.startswith(prefix) and value(m)]
    return max(rows, key=lambda m: value(m) or 0.0, default=None)


def _ratio_rows(results: list[Measurement]) -> list[Measurement]:
    def pps(m: Measurement) -> float | None:
        return m.pps

    def mbit(m: Measurement) -> float | None:
        return m.mbit_s

    def arrived(m: Measurement) -> float | None:
        return m.detail.get("arrived_pps")

    def ours(name: str, value: Callable[[Measurement], float | None] | None = None
             ) -> Measurement | None:
        return _best(results, GROUP, name, value or (pps if name.startswith("UDP") else mbit))

    rows = []
    pairs: list[tuple[str, Measurement | None, Measurement | None, Callable[[Measurement], float | None]]] = [
        ("UDP pkt/s fast path / TAYGA (its better link setting)", ours("UDP 100 B host->CN (fast path)"),
         _best(results, "tayga", "UDP 100 B v4->v6", pps), pps),
        ("UDP pkt/s arrived at the receiver's UDP layer, fast path / TAYGA (its better link setting)",
         ours("UDP 100 B host->CN (fast path)", arrived),
         _best(results, "tayga", "UDP 100 B v4->v6", arrived), arrived),
        ("TCP Mbit/s fast path / TAYGA (its better link setting)", ours("TCP host->CN (fast path)"),
         _best(results, "tayga", "TCP v4->v6", mbit), mbit),
        ("TCP -R Mbit/s fast path / TAYGA (its better link setting)", ours("TCP CN->host (-R) (fast path)"),
         _best(results, "tayga", "TCP v6->v4 (-R)", mbit), mbit),
    ]
    for other in ("kernel forwarding", "Python path"):
        pairs += [
            (f"UDP pkt/s fast path / {other}", ours("UDP 100 B host->CN (fast path)"),
             ours(f"UDP 100 B host->CN ({other})"), pps),
            (f"UDP pkt/s arrived at the CN's UDP layer, fast path / {other}",
             ours("UDP 100 B host->CN (fast path)", arrived),
             ours(f"UDP 100 B host->CN ({other})", arrived), arrived),
            (f"TCP Mbit/s fast path / {other}", ours("TCP host->CN (fast path)"),
             ours(f"TCP host->CN ({other})"), mbit),
            (f"TCP -R Mbit/s fast path / {other}", ours("TCP CN->host (-R) (fast path)"),
             ours(f"TCP CN->host (-R) ({other})"), mbit),
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
        ("kernel forwarding bed", lambda: _kernel_reference(f"{prefix}k", duration), f"{prefix}k"),
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
    for threaded in (False, True):  # TAYGA under both settings of its receiving link
        found, missing = tayga.run(duration, threaded=threaded)
        results += found
        skipped += missing
    return results + _ratio_rows(results), skipped
