"""Benchmarks through the netns test bed: iperf3 from the guest's home address to the CN.

The guest's applications bind the home address 2001:db8:6::1000 (TUN hoa0); their packets are
reverse-tunnelled to the HA by the guest agent and forwarded to the CN (2001:db8:8::1001, which
runs `iperf3 -s`). The reverse runs (-R) exercise the HA's intercept/encapsulate path and the
guest's receive routine. Everything goes through the `mip6term` CLI (python -m provisioning),
and every subprocess is bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.report import Measurement, Skipped

HOME_ADDRESS = "2001:db8:6::1000"
CN_ADDRESS = "2001:db8:8::1001"
CLI = (sys.executable, "-m", "provisioning")
UP_TIMEOUT = 120.0
DOWN_TIMEOUT = 60.0
BINDING_TIMEOUT = 30.0
SMALL_PAYLOAD = 100


class CommandFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


def run_bounded(argv: Sequence[str], timeout: float) -> Completed:
    """Run argv with a hard timeout; on expiry kill its whole process group (iperf3 included)."""
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise CommandFailed(f"{' '.join(argv)} timed out after {timeout:.0f}s") from None
    return Completed(proc.returncode, out, err)


# ------------------------------------------------------------------------------- iperf3


def iperf3_client_args(server: str, *, udp: bool, duration: int, bind: str | None = None,
                       reverse: bool = False) -> list[str]:
    argv = ["iperf3", "-c", server, "-t", str(duration), "-J"]
    if udp:
        argv += ["-u", "-l", str(SMALL_PAYLOAD), "-b", "0"]
    if bind:
        argv += ["--bind", bind]
    if reverse:
        argv.append("-R")
    return argv


def parse_iperf3(text: str) -> dict[str, Any]:
    """iperf3 -J output; raises CommandFailed with iperf3's own error message."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandFailed(f"iperf3 printed no JSON: {text[:200]!r}") from exc
    if data.get("error"):
        raise CommandFailed(f"iperf3: {data['error']}")
    return data


def udp6_arrived(namespace: str) -> int:
    """Datagrams that reached the IPv6 UDP layer of `namespace` so far: read by a socket
    (Udp6InDatagrams) or dropped there because the receiver had not read its buffer empty
    (Udp6RcvbufErrors). Their sum is what the path delivered, whatever the application kept."""
    from provisioning import netns

    done = netns.run(namespace, ["cat", "/proc/net/snmp6"], timeout=10)
    counters = dict(line.split()[:2] for line in done.stdout.decode().splitlines()
                    if len(line.split()) >= 2)
    return int(counters.get("Udp6InDatagrams", 0)) + int(counters.get("Udp6RcvbufErrors", 0))


def counting_udp6_arrivals(namespace: str, run: Callable[[], dict[str, Any]]
                           ) -> tuple[dict[str, Any], int]:
    """`run()` (an iperf3 UDP test towards `namespace`) and the datagrams that arrived there."""
    before = udp6_arrived(namespace)
    data = run()
    return data, udp6_arrived(namespace) - before


def udp_measurement(group: str, name: str, data: dict[str, Any], via: str,
                    arrived: int | None = None) -> Measurement:
    """Sent and received packets per second and loss, from an iperf3 UDP run.

    iperf3 >= 3.10 reports the sender's view in end.sum_sent and the receiver's in
    end.sum_received; end.sum carries lost_packets (older versions only have end.sum).
    `arrived` (counting_udp6_arrivals) adds the rate at which datagrams reached the
    receiver's UDP layer over the sender's seconds (detail "arrived_pps"): a forwarder's
    rate, where iperf3's received count also holds the receiving process's own limit.
    """
    end = data["end"]
    total = end["sum"]
    sent = end.get("sum_sent", total)
    received = end.get("sum_received", total)
    sent_packets = int(sent.get("packets", total["packets"]))
    lost = int(total.get("lost_packets", 0))
    received_packets = max(0, int(total["packets"]) - lost)
    sent_seconds = float(sent["seconds"]) or 1e-9
    received_seconds = float(received["seconds"]) or 1e-9
    received_pps = received_packets / received_seconds
    return Measurement(
        group=group,
        name=name,
        pps=received_pps,
        mbit_s=received_pps * SMALL_PAYLOAD * 8 / 1e6,
        loss_percent=float(total.get("lost_percent", 0.0)),
        packets=received_packets,
        seconds=received_seconds,
        detail={
            "payload": SMALL_PAYLOAD,
            "sent_pps": round(sent_packets / sent_seconds),
            "sent_packets": sent_packets,
            "received_packets": received_packets,
            "arrived_pps": None if arrived is None else round(arrived / sent_seconds),
            "cpu_percent": _cpu(end),
            "via": via,
        },
    )


def tcp_measurement(group: str, name: str, data: dict[str, Any], via: str) -> Measurement:
    end = data["end"]
    received = end["sum_received"]
    sent = end.get("sum_sent", {})
    return Measurement(
        group=group,
        name=name,
        mbit_s=float(received["bits_per_second"]) / 1e6,
        seconds=float(received["seconds"]),
        detail={"retransmits": sent.get("retransmits"), "cpu_percent": _cpu(end), "via": via},
    )


def _cpu(end: dict[str, Any]) -> str | None:
    cpu = end.get("cpu_utilization_percent")
    if not cpu:
        return None
    return f"{cpu.get('host_total', 0):.0f}/{cpu.get('remote_total', 0):.0f}"


# ------------------------------------------------------------------------------- test bed


def _cli(*args: str, timeout: float) -> Completed:
    return run_bounded([*CLI, *args], timeout)


def bed_exists(prefix: str) -> bool:
    return os.path.exists(f"/run/netns/{prefix}-guest")


def _binding_registered(prefix: str) -> bool:
    done = _cli("status", "--prefix", prefix, "--json", timeout=20)
    if done.returncode != 0:
        return False
    try:
        status = json.loads(done.stdout)
    except json.JSONDecodeError:
        return False
    return any(entry.get("state") == "registered"
               for entry in status.get("binding_update_list", []))


def wait_for_binding(prefix: str, timeout: float = BINDING_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _binding_registered(prefix):
            return
        time.sleep(0.5)
    raise CommandFailed(f"no registered binding in test bed {prefix} after {timeout:.0f}s")


def node_exec(prefix: str, node: str, argv: Sequence[str], timeout: float) -> Completed:
    return _cli("testbed", "exec", "--prefix", prefix, node, "--", *argv, timeout=timeout)


def iperf3_in(prefix: str, node: str, argv: Sequence[str], duration: int) -> dict[str, Any]:
    """Run an iperf3 client in `node`; retried while the single-client server is still busy."""
    last: CommandFailed | None = None
    for _attempt in range(3):
        done = node_exec(prefix, node, argv, timeout=duration + 30)
        try:
            return parse_iperf3(done.stdout)
        except CommandFailed as exc:
            last = exc
            if "busy" not in str(exc) and "refused" not in str(exc):
                raise
            time.sleep(1.0)
    assert last is not None
    raise last


def iperf3_from_guest(prefix: str, *, udp: bool, duration: int, reverse: bool) -> dict[str, Any]:
    argv = iperf3_client_args(CN_ADDRESS, udp=udp, duration=duration, bind=HOME_ADDRESS,
                              reverse=reverse)
    return iperf3_in(prefix, "guest", argv, duration)


def cn_ipv4_address(prefix: str) -> str:
    """The pool address the agent's DNS gives the host for cn.example (allocated on demand)."""
    probe = "import socket; print(socket.gethostbyname('cn.example'))"
    done = node_exec(prefix, "host", [sys.executable, "-c", probe], timeout=20)
    if done.returncode != 0 or not done.stdout.strip():
        raise CommandFailed(f"cn.example did not resolve on host: {done.stderr.strip()[-200:]}")
    return done.stdout.strip()


def iperf3_from_host(prefix: str, server4: str, *, udp: bool, duration: int,
                     reverse: bool) -> dict[str, Any]:
    argv = iperf3_client_args(server4, udp=udp, duration=duration, reverse=reverse)
    return iperf3_in(prefix, "host", argv, duration)


def _attempt(results: list[Measurement], skipped: list[Skipped], name: str,
             make: Callable[[], Measurement]) -> None:
    """One iperf3 measurement; its failure is reported and does not lose the others."""
    try:
        results.append(make())
    except CommandFailed as exc:
        skipped.append(Skipped("testbed", name, str(exc)))
    time.sleep(1.0)  # let the single-client iperf3 server finish the previous test


def _guest_counters(prefix: str) -> dict[str, int]:
    done = _cli("status", "--prefix", prefix, "--json", timeout=20)
    try:
        return json.loads(done.stdout)["counters"]["guest"]
    except (ValueError, KeyError):
        return {}


def measure_ipv4(prefix: str, duration: int, label: str = ""
                 ) -> tuple[list[Measurement], list[Skipped]]:
    """An unmodified IPv4 application on `host` to the IPv6-only CN (translate + tunnel)."""
    server4 = cn_ipv4_address(prefix)
    via = f"host IPv4 -> translate -> tunnel{label} -> HA -> CN"
    results: list[Measurement] = []
    skipped: list[Skipped] = []
    name = f"UDP 100 B host(IPv4)->CN{label}"
    before = _guest_counters(prefix)
    started = time.monotonic()
    _attempt(results, skipped, name, lambda: udp_measurement("testbed", name, iperf3_from_host(
        prefix, server4, udp=True, duration=duration, reverse=False), via))
    elapsed = time.monotonic() - started - 1.0  # _attempt sleeps 1 s after the run
    after = _guest_counters(prefix)

    def delta(key: str) -> int:
        return after.get(key, 0) - before.get(key, 0)

    translated = delta("xlat_4to6")
    # What left the guest: translated minus what its sender could not hand to the kernel.
    sent = translated - delta("tx_dropped_sender_backlog") - delta("tx_dropped_link_busy")
    if translated > 0:
        # What the guest alone translated, encapsulated and sent under that load (its own
        # counters), whatever the HA and the routers behind it could forward.
        seconds = min(elapsed, duration + 0.5)
        pps = max(sent, 0) / seconds
        results.append(Measurement(
            group="testbed", name=f"guest translate+encapsulate{label} (agent counters)",
            pps=pps, mbit_s=pps * SMALL_PAYLOAD * 8 / 1e6, packets=max(sent, 0),
            detail={"payload": SMALL_PAYLOAD, "via": "host IPv4 -> guest agent eth0",
                    "translated_pps": round(translated / seconds),
                    "super_frames": delta("xlat_4to6_super_frames")}))
    name2 = f"TCP host(IPv4)->CN{label}"
    _attempt(results, skipped, name2, lambda: tcp_measurement("testbed", name2, iperf3_from_host(
        prefix, server4, udp=False, duration=duration, reverse=False), via))
    name3 = f"TCP CN->host(IPv4){label} (-R)"
    _attempt(results, skipped, name3, lambda: tcp_measurement("testbed", name3, iperf3_from_host(
        prefix, server4, udp=False, duration=duration, reverse=True), via))
    return results, skipped


def measure(prefix: str, duration: int) -> tuple[list[Measurement], list[Skipped]]:
    via = "guest hoa0 -> tunnel -> HA -> CN"
    via_r = "CN -> HA intercept -> tunnel -> guest"
    results: list[Measurement] = []
    skipped: list[Skipped] = []
    for name, udp, reverse, path in (
        ("UDP 100 B guest->CN", True, False, via),
        ("UDP 100 B CN->guest (-R)", True, True, via_r),
        ("TCP guest->CN", False, False, via),
        ("TCP CN->guest (-R)", False, True, via_r),
    ):
        measurement = udp_measurement if udp else tcp_measurement
        _attempt(results, skipped, name, lambda n=name, u=udp, r=reverse, p=path, m=measurement: m(
            "testbed", n, iperf3_from_guest(prefix, udp=u, duration=duration, reverse=r), p))
    found, missing = measure_ipv4(prefix, duration)
    return results + found, skipped + missing


def run(prefix: str = "bench", duration: int = 5, *,
        keep: bool = False, ipsec: str | None = None) -> tuple[list[Measurement], list[Skipped]]:
    """Bring the bed up if needed, measure, and tear it down (unless keep) whatever happens.

    With `ipsec` (e.g. "tunnel"), the bed runs with ESP-GCM on the MN-HA tunnel and only the
    host's IPv4 path is measured (translate + encapsulate + ESP).
    """
    if os.geteuid() != 0:
        return [], [Skipped("testbed", "iperf3 via test bed", "needs root (network namespaces)")]
    try:
        if not bed_exists(prefix):
            extra = ["--ipsec", ipsec] if ipsec else []
            done = _cli("testbed", "up", "--prefix", prefix, *extra, timeout=UP_TIMEOUT)
            if done.returncode != 0:
                raise CommandFailed(f"testbed up failed: {done.stderr.strip()[-400:]}")
        wait_for_binding(prefix)
        if ipsec:
            return measure_ipv4(prefix, duration, label=f" [ESP {ipsec}]")
        return measure(prefix, duration)
    except CommandFailed as exc:
        return [], [Skipped("testbed", "iperf3 via test bed", str(exc))]
    finally:
        if not keep:
            teardown(prefix)


def teardown(prefix: str) -> None:
    """`testbed down`; a failure here is reported, never allowed to hide the results."""
    try:
        done = _cli("testbed", "down", "--prefix", prefix, timeout=DOWN_TIMEOUT)
    except CommandFailed as exc:
        print(f"benchmarks: {exc}", file=sys.stderr)
        return
    if done.returncode != 0:
        print(f"benchmarks: testbed down failed: {done.stderr.strip()[-400:]}", file=sys.stderr)
