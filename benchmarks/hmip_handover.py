"""Intra-MAP handover (HMIPv6) against the full Mobile IPv6 handover, in the same run.

Two beds of its own, up at the same time: `<prefix>h` (`testbed up --hmip`) and `<prefix>p`
(the plain Fig. 1 bed), their moves interleaved so the machine's load hits both alike. In each, UDP flows every 5 ms from the CN to the home address and back (so data
crosses the tunnels both ways) while the guest is moved a <-> b `cycles` times (carrier down/up on its switch port,
`provisioning.handover.reattach`). tcpdump on the guest's switch port records the tunnelled
packets; for each move the latency is from the link change (wall clock just before the
re-attach) to the first tunnelled data packet (IPv6-in-IPv6, any direction) that carries a
care-of address of the new network: the new LCoA in the MAP domain, the new CoA in plain
Mobile IPv6. Reported: min / median / max per bed, the median from the guest's Router
Solicitation on the new link to that packet (the protocol's own part, without carrier
detection), and the ratio of the medians.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv6Address

from benchmarks.report import Measurement, Skipped

INTERVAL = 0.005
_SENDER = f"""
import socket, sys, time
dst, src = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
if src:
    s.bind((src, 0))
while True:
    try:
        s.sendto(b"x" * 64, (dst, 9))
    except OSError:
        pass
    time.sleep({INTERVAL})
"""


def _cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioning", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def _analyse(pcap: str, starts: list[tuple[float, float, str]]
             ) -> list[tuple[float, float, float]]:
    """Per move (start, port up, target): (link change -> first data packet of the new
    network, port up on the new bridge -> that packet, the guest's RS -> that packet)."""
    from scapy.layers.inet6 import ICMPv6ND_RS, IPv6
    from scapy.utils import PcapReader

    from provisioning.handover import TARGET_PREFIXES

    first: list[float | None] = [None] * len(starts)
    solicit: list[float | None] = [None] * len(starts)
    bounds = [t0 for t0, _, _ in starts[1:]] + [float("inf")]
    with PcapReader(pcap) as reader:
        for frame in reader:
            if IPv6 not in frame:
                continue
            when = float(frame.time)
            for i, (t0, _up, target) in enumerate(starts):
                if not t0 <= when < bounds[i]:
                    continue
                if ICMPv6ND_RS in frame:
                    if solicit[i] is None:
                        solicit[i] = when
                elif first[i] is None and frame[IPv6].nh == 41:
                    ends = (IPv6Address(frame[IPv6].src), IPv6Address(frame[IPv6].dst))
                    if any(a in TARGET_PREFIXES[target] for a in ends):
                        first[i] = when
    out = []
    for i, (t0, up, _target) in enumerate(starts):
        data, rs = first[i], solicit[i]
        if data is not None:  # a move whose RS the capture missed counts with rs_to_data = nan
            out.append((data - t0, data - up, data - rs if rs is not None else float("nan")))
    if len(out) < len(starts) // 2:
        raise RuntimeError(f"only {len(out)} of {len(starts)} moves showed a data packet")
    return out


class _Bed:
    """One bed with traffic both ways and a capture on the guest's switch port."""

    def __init__(self, prefix: str, hmip: bool) -> None:
        self.prefix, self.hmip = prefix, hmip
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pcap = tempfile.mktemp(prefix=f"hmip-{prefix}-", suffix=".pcap")
        self.starts: list[tuple[float, float, str]] = []

    def up(self) -> None:
        from provisioning import handover, netns
        from provisioning.nodes.agents import GUEST, socket_path
        from provisioning.topology import CN_ADDRESS, HOME_ADDRESS, namespace, state_dir

        args = ["testbed", "up", "--prefix", self.prefix] + (["--hmip"] if self.hmip else [])
        done = _cli(*args, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip()[-300:])
        self.sock = socket_path(state_dir(self.prefix), GUEST)
        handover.wait_for_move(self.sock, "b", 20, start=time.monotonic())
        ns = namespace
        self.procs.append(netns.popen(ns(self.prefix, "sw"), [
            "tcpdump", "-i", "p-guest", "--immediate-mode", "-U", "-n", "-s", "128", "-w",
            self.pcap, "ip6 and (ip6[6] == 41 or (ip6[6] == 58 and ip6[40] == 133))"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # UDP every 5 ms both ways: CN -> home address, and the home address -> CN
        for node, dst, src in (("cn", HOME_ADDRESS, ""), ("guest", CN_ADDRESS, HOME_ADDRESS)):
            self.procs.append(netns.popen(ns(self.prefix, node), [
                sys.executable, "-c", _SENDER, str(dst), str(src)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def move(self, target: str) -> None:
        from provisioning import handover

        t0 = time.time()
        handover.reattach(self.prefix, target)  # port down, to the new bridge, port up
        up = time.time()
        handover.wait_for_move(self.sock, target, 20, start=time.monotonic())
        self.starts.append((t0, up, target))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs = []

    def down(self) -> None:
        self.stop()
        _cli("testbed", "down", "--prefix", self.prefix, timeout=120)
        if os.path.exists(self.pcap):
            os.unlink(self.pcap)


INTRA_MAP = "intra-MAP (local BU only)"
FULL = "full Mobile IPv6 (BU to the HA)"


def run(prefix: str = "bhm", cycles: int = 10) -> tuple[list[Measurement], list[Skipped]]:
    """Both beds up at once; their moves interleaved, so machine load hits both alike."""
    if os.geteuid() != 0:
        return [], [Skipped("handover", INTRA_MAP, "needs root (network namespaces)")]
    beds = {INTRA_MAP: _Bed(prefix + "h", True), FULL: _Bed(prefix + "p", False)}
    samples: dict[str, list[tuple[float, float, float]]] = {}
    try:
        for bed in beds.values():
            bed.up()
        time.sleep(1.0)
        for i in range(cycles * 2):
            for bed in beds.values():
                bed.move("a" if i % 2 == 0 else "b")
            time.sleep(0.7)  # data settles on the new path before the next move
        for kind, bed in beds.items():
            bed.stop()
            samples[kind] = _analyse(bed.pcap, bed.starts)
    except Exception as exc:  # a failed run is a result to report, not a crash
        return [], [Skipped("handover", INTRA_MAP, f"{type(exc).__name__}: {exc}")]
    finally:
        for bed in beds.values():
            bed.down()
    medians = {kind: statistics.median(v[0] for v in values) for kind, values in samples.items()}
    results = []
    for kind, values in samples.items():
        total = [v[0] for v in values]
        after_up = [v[1] for v in values]
        after_rs = [v[2] for v in values if v[2] == v[2]] or [float("nan")]
        results.append(Measurement(
            group="handover", name=f"{kind}: link change to first data packet",
            packets=len(values), seconds=medians[kind],
            detail={"min_ms": round(min(total) * 1000, 1),
                    "median_ms": round(medians[kind] * 1000, 1),
                    "max_ms": round(max(total) * 1000, 1),
                    "port_up_to_data_median_ms": round(statistics.median(after_up) * 1000, 1),
                    "rs_to_data_median_ms": round(statistics.median(after_rs) * 1000, 1),
                    "samples": len(values), "moves": cycles * 2,
                    "ratio_to_full_mipv6": round(medians[kind] / medians[FULL], 3),
                    "note": (f"port up->data {statistics.median(after_up) * 1000:.1f} ms, "
                             f"RS->data {statistics.median(after_rs) * 1000:.1f} ms, "
                             f"ratio to full MIPv6 {medians[kind] / medians[FULL]:.2f}")},
        ))
    return results, []


if __name__ == "__main__":
    found, missing = run()
    for m in found:
        print(m.name, m.detail)
    for s in missing:
        print("skipped:", s.name, s.reason)
