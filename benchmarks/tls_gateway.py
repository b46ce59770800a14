"""HTTPS host -> CN through the TLS gateway (patent E8, issue 13) vs direct, in one bed.

A `--tls-gateway` bed of its own (`btls`): curl on `host` (IPv4, translated) fetches the CN's
21 MiB `/big` over HTTPS on port 443 (the guest's policy: terminated in the guest, carried in
TLS to Squid, which connects to the CN) and on port 4443 (outside the policy: the same HTTPS
straight through the MN-HA tunnel), alternating, `runs` times each; then `connects` small
fetches on each path for the set-up time (curl's time_appconnect: TCP + the host's TLS
handshake with the CN, which on the gateway path waits for the guest's outer TLS handshake and
the CONNECT). Medians are reported, and the ratios gateway / direct.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

from benchmarks.report import Measurement, Skipped

GROUP = "tls-gateway"
BIG = 21 * 1024 * 1024


def _cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioning", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def _curl(prefix: str, ca: str, url: str, fields: str, timeout: float = 120) -> list[float]:
    from provisioning import netns
    from provisioning.topology import namespace

    done = netns.run(namespace(prefix, "host"), [
        "curl", "-4", "-s", "-S", "--fail", "--cacert", ca, "-o", "/dev/null",
        "--max-time", str(timeout - 10), "-w", fields, url], timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"curl {url}: {done.stderr.decode().strip()}")
    return [float(v) for v in done.stdout.decode().split()]


def run(prefix: str = "btls", runs: int = 7, connects: int = 10
        ) -> tuple[list[Measurement], list[Skipped]]:
    if os.geteuid() != 0:
        return [], [Skipped(GROUP, "HTTPS via gateway", "needs root (network namespaces)")]
    from provisioning import handover
    from provisioning.nodes import tls_ca
    from provisioning.nodes.gateway import DIRECT_HTTPS_PORT
    from provisioning.topology import state_dir

    paths = {"gateway": "https://cn.example", "direct": f"https://cn.example:{DIRECT_HTTPS_PORT}"}
    speed: dict[str, list[float]] = {k: [] for k in paths}
    setup: dict[str, list[float]] = {k: [] for k in paths}
    try:
        done = _cli("testbed", "up", "--prefix", prefix, "--tls-gateway", timeout=120)
        if done.returncode != 0:
            return [], [Skipped(GROUP, "HTTPS via gateway", done.stderr.strip()[-300:])]
        handover.move(prefix, "b", timeout=20)  # registered before measuring
        ca = tls_ca.ca_certificate_path(state_dir(prefix))
        for _ in range(runs):
            for kind, base in paths.items():
                speed[kind] += _curl(prefix, ca, f"{base}/big", "%{speed_download}")
        for _ in range(connects):
            for kind, base in paths.items():
                setup[kind] += _curl(prefix, ca, f"{base}/", "%{time_appconnect}")
    except Exception as exc:  # a failed run is a result to report, not a crash
        return [], [Skipped(GROUP, "HTTPS via gateway", f"{type(exc).__name__}: {exc}")]
    finally:
        _cli("testbed", "down", "--prefix", prefix, timeout=120)
    results = []
    for kind in paths:
        mbit = statistics.median(speed[kind]) * 8 / 1e6
        results.append(Measurement(
            group=GROUP, name=f"host IPv4 HTTPS 21 MiB, {kind}", mbit_s=mbit,
            detail={"note": "runs " + "/".join(str(round(v * 8 / 1e6)) for v in speed[kind])}))
        results.append(Measurement(
            group=GROUP, name=f"connection set-up (TCP + inner TLS), {kind}",
            seconds=statistics.median(setup[kind]),
            detail={"median_ms": round(statistics.median(setup[kind]) * 1000, 1),
                    "min_ms": round(min(setup[kind]) * 1000, 1),
                    "max_ms": round(max(setup[kind]) * 1000, 1)}))
    ratio = statistics.median(speed["gateway"]) / statistics.median(speed["direct"])
    added = statistics.median(setup["gateway"]) - statistics.median(setup["direct"])
    results.append(Measurement(group=GROUP, name="gateway / direct", detail={
        "throughput_ratio": round(ratio, 3), "setup_added_ms": round(added * 1000, 1),
        "note": f"throughput x{ratio:.2f}, set-up +{added * 1000:.1f} ms"}))
    return results, []
