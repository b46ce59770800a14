"""Route optimisation benchmarks (issue 9): handover with RO, and direct vs tunnelled throughput.

Handover: a `--ro` bed; the guest sends a UDP datagram from its home address to the CN every
2 ms; around each `move` the guest's switch port is captured, and from the capture (tcpdump
timestamps, the same wall clock as the link change) come, per move, the time from the link
change to the first datagram through the tunnel from the new CoA and to the first one on the
direct path (CoA -> CN with a Home Address option). The reference in the same run is the
time to the accepted home BA (`mip6term move`'s own number, which polls the guest every
50 ms and so reads high). A move whose direct path came back within one sending interval of
the home BA has no tunnelled datagram: it counts for the direct path only.

Throughput: iperf3 TCP guest <-> CN in a `--ro` bed (direct path) and in a bed without `--ro`
(the reverse tunnel through the HA), one after the other in the same run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv6Address, IPv6Network

from benchmarks import testbed as tb
from benchmarks.report import Measurement, Skipped

HOME_ADDRESS = "2001:db8:6::1000"
HOME_AGENT = "2001:db8:6::1"
CN = "2001:db8:8::1001"
PREFIXES = {"a": IPv6Network("2001:db8:a::/64"), "b": IPv6Network("2001:db8:b::/64")}
SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    s.sendto(b"x" * 32, (sys.argv[2], 9))
    time.sleep(0.002)
"""


def _first_packets(pcap: str, prefix: IPv6Network) -> tuple[float | None, float | None]:
    """(epoch of the first tunnelled, of the first direct datagram from a CoA in `prefix`)."""
    out = subprocess.run(
        ["tshark", "-n", "-r", pcap, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,",
         "-e", "frame.time_epoch", "-e", "ipv6.src", "-e", "ipv6.dst",
         "-e", "ipv6.opt.mipv6.home_address", "-Y", "udp.dstport == 9"],
        capture_output=True, text=True, timeout=60, check=False).stdout
    tunnel = direct = None
    for line in out.splitlines():
        cols = line.split("\t") + ["", "", "", ""]
        when, srcs, dsts, hao = float(cols[0]), cols[1].split(","), cols[2].split(","), cols[3]
        if not srcs[0] or IPv6Address(srcs[0]) not in prefix:
            continue
        if dsts[0] == HOME_AGENT and tunnel is None:
            tunnel = when
        if dsts[0] == CN and hao == HOME_ADDRESS and direct is None:
            direct = when
    return tunnel, direct


def handover(prefix: str = "bror", cycles: int = 5) -> tuple[list[Measurement], list[Skipped]]:
    if os.geteuid() != 0:
        return [], [Skipped("handover-ro", "move latency with RO", "needs root")]
    from provisioning import handover as ho
    from provisioning import netns

    samples: dict[str, list[float]] = {"BA": [], "tunnel": [], "direct": [], "gap": []}
    sender = None
    try:
        done = tb._cli("testbed", "up", "--prefix", prefix, "--ro", timeout=tb.UP_TIMEOUT)
        if done.returncode != 0:
            return [], [Skipped("handover-ro", "move latency with RO", done.stderr[-300:])]
        ho.move(prefix, "b", timeout=20)
        sender = netns.popen(f"{prefix}-guest", [sys.executable, "-c", SENDER, HOME_ADDRESS, CN,
                                                 str(cycles * 2 * 4 + 30)])
        time.sleep(3)  # RR and the BU to the CN, on the first datagrams
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(cycles):
                for target in ("a", "b"):
                    pcap = os.path.join(tmp, f"{i}{target}.pcap")
                    dump = netns.popen(f"{prefix}-sw", ["tcpdump", "-i", "p-guest", "-n", "-U",
                                                        "-s", "200", "-w", pcap, "ip6"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(1.0)
                    changed = time.time()
                    samples["BA"].append(ho.move(prefix, target, timeout=20))
                    time.sleep(1.5)
                    dump.terminate()
                    dump.wait(timeout=10)
                    tunnel, direct = _first_packets(pcap, PREFIXES[target])
                    if tunnel is not None:
                        samples["tunnel"].append(tunnel - changed)
                    if direct is not None:
                        samples["direct"].append(direct - changed)
                    if tunnel is not None and direct is not None:
                        samples["gap"].append(direct - tunnel)
    except Exception as exc:  # a failed move is a result to report, not a crash
        return [], [Skipped("handover-ro", "move latency with RO", f"{type(exc).__name__}: {exc}")]
    finally:
        if sender is not None and sender.poll() is None:
            sender.kill()
        tb.teardown(prefix)
    names = {"BA": "link change to home BA (reference)",
             "tunnel": "link change to first packet via the tunnel",
             "direct": "link change to first packet on the direct path (RO)",
             "gap": "first tunnelled to first direct packet, same move (CoTI/CoT + BU/BA)"}
    results = []
    for kind, values in samples.items():
        if values:
            results.append(Measurement(
                group="handover-ro", name=f"visited -> visited, {names[kind]}",
                packets=len(values), seconds=statistics.median(values),
                detail={"min_ms": round(min(values) * 1000),
                        "median_ms": round(statistics.median(values) * 1000),
                        "max_ms": round(max(values) * 1000), "samples": len(values)}))
    return results, []


def _ro_off_and_restart(prefix: str) -> None:
    """The same bed, the guest without route optimisation: the tunnel to the same CN daemon."""
    from provisioning.nodes.agents import GUEST, config_path, restart_agent
    from provisioning.topology import state_dir

    sdir = state_dir(prefix)
    path = config_path(sdir, GUEST)
    with open(path) as f:
        text = f.read()
    head, _, tail = text.partition("[route_optimisation]")
    with open(path, "w") as f:
        f.write(head + "[route_optimisation]" + tail.replace("enabled = true", "enabled = false", 1))
    restart_agent(sdir, GUEST)


def throughput(prefix: str = "brot", duration: int = 5) -> tuple[list[Measurement], list[Skipped]]:
    """TCP guest <-> CN: direct (--ro), then the tunnel in the same bed (guest RO off, the same
    userspace CN), then a bed without --ro (kernel CN), all in the same run."""
    if os.geteuid() != 0:
        return [], [Skipped("ro", "throughput", "needs root")]
    results: list[Measurement] = []
    skipped: list[Skipped] = []

    def measure(name: str, label: str, via: str) -> None:
        tb.wait_for_binding(name)
        for direction, reverse in (("guest->CN", False), ("CN->guest (-R)", True)):
            data = tb.iperf3_from_guest(name, udp=False, duration=duration, reverse=reverse)
            results.append(tb.tcp_measurement("ro", f"TCP {direction}, {label}", data, via))

    for ro in (True, False):
        name = f"{prefix}{'d' if ro else 't'}"
        try:
            done = tb._cli("testbed", "up", "--prefix", name, *(["--ro"] if ro else []),
                           timeout=tb.UP_TIMEOUT)
            if done.returncode != 0:
                raise tb.CommandFailed(done.stderr[-300:])
            if ro:
                tb.wait_for_binding(name)
                # RR on a first exchange, then the binding at the CN
                tb.node_exec(name, "guest", ["curl", "-s", "-o", "/dev/null", "--interface",
                                             HOME_ADDRESS, f"http://[{CN}]/"], timeout=20)
                time.sleep(2)
                measure(name, "direct (RO)", "CoA <-> userspace CN, HAO/RH2")
                _ro_off_and_restart(name)
                measure(name, "tunnel, same userspace CN (reference)", "via HA")
            else:
                measure(name, "tunnel, kernel CN (bed without --ro)", "via HA")
        except tb.CommandFailed as exc:
            skipped.append(Skipped("ro", f"throughput {name}", str(exc)))
        finally:
            tb.teardown(name)
    return results, skipped


def run(duration: int = 5) -> tuple[list[Measurement], list[Skipped]]:
    found, missing = handover()
    more, absent = throughput(duration=duration)
    return found + more, missing + absent
