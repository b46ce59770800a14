"""NEMO throughput in the test bed (`testbed up --nemo`), against the plain MN paths of the
same bed in the same run (issue 11).

Paths (TCP, iperf3 to the CN, both directions):
- reference "host HoA (E2)": an IPv6 app on `host` bound to the home address: host link ->
  guest agent -> MR-HA tunnel -> HA -> CN (scenario 10001 passthrough);
- "mobile network": the same app bound to the host's SLAAC address in 2001:db8:6:100::/64:
  the same links, forwarded by the mobile router (prefix routed by the HA);
- reference "guest hoa0": an app in the guest on its own home address (TUN);
- "nested": `vmn`'s app on its home address (TUN), its tunnel inside the MR's: two agents
  and two tunnel layers at the HA.
Ratios: mobile network / host HoA, nested / guest hoa0.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from benchmarks.report import Measurement, Skipped
from benchmarks.testbed import (
    CN_ADDRESS,
    HOME_ADDRESS,
    UP_TIMEOUT,
    CommandFailed,
    _cli,
    bed_exists,
    iperf3_client_args,
    iperf3_in,
    node_exec,
    tcp_measurement,
    teardown,
)

GROUP = "nemo"
MNP_START = "2001:db8:6:100:"


def _ready(prefix: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = _cli("status", "--prefix", prefix, "--json", timeout=20)
        try:
            cache = json.loads(done.stdout)["binding_cache"]
        except (ValueError, KeyError):
            cache = []
        if len([b for b in cache if b.get("lifetime", 0) > 0]) >= 2:
            return
        time.sleep(0.5)
    raise CommandFailed(f"mobile router and vmn not both registered in {prefix}")


def _host_mnp_address(prefix: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = node_exec(prefix, "host", ["ip", "-6", "-o", "addr", "show", "dev", "eth0",
                                          "scope", "global"], timeout=10)
        for line in done.stdout.splitlines():
            address = line.split()[3].split("/")[0]
            if address.startswith(MNP_START):
                return address
        time.sleep(0.5)
    raise CommandFailed("the host has no SLAAC address in the mobile network prefix")


def _tcp(prefix: str, node: str, bind: str | None, duration: int, reverse: bool) -> dict[str, Any]:
    argv = iperf3_client_args(CN_ADDRESS, udp=False, duration=duration, bind=bind,
                              reverse=reverse)
    return iperf3_in(prefix, node, argv, duration)


def measure(prefix: str, duration: int, repeats: int = 3
            ) -> tuple[list[Measurement], list[Skipped]]:
    _ready(prefix)
    mnp_address = _host_mnp_address(prefix)
    paths = (
        ("host HoA (E2)", "host", HOME_ADDRESS, "host IPv6 (HoA) -> guest -> tunnel -> HA"),
        ("mobile network", "host", mnp_address, "host IPv6 (MNP) -> MR -> tunnel -> HA"),
        ("guest hoa0", "guest", HOME_ADDRESS, "guest hoa0 -> tunnel -> HA"),
        ("nested vmn", "vmn", None, "vmn hoa0 -> vmn tunnel -> MR tunnel -> HA"),
    )
    results: list[Measurement] = []
    skipped: list[Skipped] = []
    rates: dict[tuple[str, bool], float] = {}
    for reverse in (False, True):
        runs: dict[str, list[Measurement]] = {label: [] for label, *_ in paths}
        # Interleaved rounds, median per path: this shared machine's load drifts by 2x.
        for _round in range(repeats):
            for label, node, bind, via in paths:
                name = f"TCP {label} {'<-' if reverse else '->'} CN"
                try:
                    runs[label].append(tcp_measurement(
                        GROUP, name, _tcp(prefix, node, bind, duration, reverse), via))
                except CommandFailed as exc:
                    skipped.append(Skipped(GROUP, name, str(exc)))
                time.sleep(1.0)  # the single-client iperf3 server
        for label, measured in runs.items():
            if not measured:
                continue
            median = sorted(measured, key=lambda m: m.mbit_s or 0.0)[len(measured) // 2]
            median.detail["note"] = "median of " + "/".join(
                f"{m.mbit_s or 0:.0f}" for m in measured)
            rates[(label, reverse)] = median.mbit_s or 0.0
            results.append(median)
    for reverse in (False, True):
        for label, reference in (("mobile network", "host HoA (E2)"),
                                 ("nested vmn", "guest hoa0")):
            base = rates.get((reference, reverse))
            value = rates.get((label, reverse))
            if base and value is not None:
                results.append(Measurement(
                    group=GROUP,
                    name=f"ratio {label} / {reference} ({'CN->' if reverse else '->CN'})",
                    detail={"ratio": round(value / base, 3), "mbit_s": round(value, 1),
                            "reference_mbit_s": round(base, 1),
                            "note": f"{value / base:.2f} ({value:.0f} / {base:.0f} Mbit/s)"}))
    return results, skipped


def run(prefix: str = "benchn", duration: int = 5, *, keep: bool = False
        ) -> tuple[list[Measurement], list[Skipped]]:
    if os.geteuid() != 0:
        return [], [Skipped(GROUP, "iperf3 via the NEMO bed", "needs root (network namespaces)")]
    try:
        if not bed_exists(prefix):
            done = _cli("testbed", "up", "--prefix", prefix, "--nemo", timeout=UP_TIMEOUT)
            if done.returncode != 0:
                raise CommandFailed(f"testbed up --nemo failed: {done.stderr.strip()[-400:]}")
        return measure(prefix, duration)
    except CommandFailed as exc:
        return [], [Skipped(GROUP, "iperf3 via the NEMO bed", str(exc))]
    finally:
        if not keep:
            teardown(prefix)
