"""`mip6term demo` (the main job of `make demo`): the terminal registering, fetching and moving.

Brings the Fig. 1 test bed up (with the SIP proxy and phones and the TLS gateway), shows the
MN's registration with the HA, fetches from the CN through the tunnel, hands over 5b -> 5a ->
home while a 20 MiB transfer runs, checks the transfer byte for byte, fetches HTTPS through the
TLS gateway (E8) and places a SIP call from the host's IPv4 phone (E5), prints the report and
tears the bed down. Then route optimisation (E3), HMIPv6 (E6) and NEMO (E7) each run in a lite
bed of their own, and a last table lists every capability with what the demo saw.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from provisioning import handover, netns
from provisioning import status as status_module
from provisioning import testbed as testbed_module
from provisioning.demo_nemo import run_nemo_step
from provisioning.errors import ProvisioningError
from provisioning.topology import CN_ADDRESS, HOME_ADDRESS, HOME_AGENT, namespace, state_dir

TRANSFER_RATE = "4M"  # curl --limit-rate: long enough for two handovers mid-transfer


@dataclass
class DemoReport:
    registration_seconds: float = 0.0
    care_of_address: str = ""
    handovers: list[tuple[str, float]] = field(default_factory=list)
    bytes_expected: int = 0
    bytes_received: int = 0
    intact: bool = False
    transfer_seconds: float = 0.0
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    fastpath: dict[str, str] = field(default_factory=dict)  # issue 14, per node
    tls_gateway_ok: bool | None = None  # issue 13 (lite guest only)
    route_optimised: bool | None = None  # issue 9: direct path up before and after a move
    sip_call: dict[str, Any] | None = None  # issue 12
    # (capability, what the demo saw, worked): one row per landed capability, printed last
    capabilities: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def all_ok(self) -> bool:
        return self.intact and all(ok for _, _, ok in self.capabilities)


def _wait_registered(sdir: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        merged = status_module.collect(sdir)
        for entry in merged["binding_update_list"]:
            if entry.get("state") == "registered" and entry.get("destination") == str(HOME_AGENT):
                return entry
        time.sleep(0.1)
    raise ProvisioningError(f"the guest did not register with the HA within {timeout:g}s")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _curl_argv(guest: str, path: str, *extra: str) -> tuple[str, list[str]]:
    """(node, argv) of the demo's fetches: lite fetches from the guest namespace with the home
    address; with the VM the unmodified IPv4 curl on `host` goes through the VM (issue 5)."""
    if guest == "vm":
        return "host", ["curl", "-s", "-4", *extra, f"http://cn.example{path}"]
    return "guest", ["curl", "-s", *extra, "--interface", str(HOME_ADDRESS),
                     f"http://[{CN_ADDRESS}]{path}"]


def run_demo(console: Console, prefix: str = "demo", keep: bool = False,
             guest: str = "lite") -> DemoReport:
    report = DemoReport()
    if netns.list_with_prefix(prefix):
        testbed_module.down(prefix)
    console.rule("[bold]mip6term demo: Mobile IPv6 terminal in the Fig. 1 test bed")
    started = time.monotonic()
    try:
        if guest == "vm":  # the image build and VM boot print their own progress
            from provisioning.image import build_image

            build_image(console)
            started = time.monotonic()
            console.print("building the test bed and booting the VM guest ...")
            sdir = testbed_module.up(testbed_module.UpOptions(
                prefix=prefix, guest="vm", sip=True, tls_gateway=True, log=console.print))
        else:
            with console.status("building the test bed (namespaces, bridges, radvd, HA, CN)..."):
                sdir = testbed_module.up(testbed_module.UpOptions(prefix=prefix, sip=True,
                                                                  tls_gateway=True))
        console.print(f"test bed [bold]{prefix}[/] up in {time.monotonic() - started:.1f}s "
                      f"(state in {sdir})")
        with console.status("mobile node: RS -> RA -> CoA -> BU to the HA -> BA ..."):
            entry = _wait_registered(sdir, timeout=60.0 if guest == "vm" else 20.0)
        report.registration_seconds = time.monotonic() - started
        report.care_of_address = entry["care_of_address"]
        console.print(f"registered home address {HOME_ADDRESS} via care-of address "
                      f"{entry['care_of_address']} (5b), sequence {entry['sequence']}, "
                      f"lifetime {entry['lifetime']}s")
        node, argv = _curl_argv(guest, "/", "-o", "/dev/null", "-w", "%{http_code}")
        fetch_ns = namespace(prefix, node)
        index = netns.run(fetch_ns, argv, timeout=20)
        console.print(f"GET {argv[-1]} on {node}: HTTP "
                      f"{index.stdout.decode() or 'failed'} (through the MN-HA tunnel)")
        big = Path(state_dir(prefix)) / "www" / "big"
        report.bytes_expected = big.stat().st_size
        expected_sha = _sha256(big)
        with tempfile.TemporaryDirectory(prefix="mip6term-demo-") as tmp:
            out = Path(tmp) / "big"
            console.print(f"downloading /big ({report.bytes_expected / 2**20:.0f} MiB at "
                          f"{TRANSFER_RATE}B/s) while moving 5b -> 5a -> home ...")
            t0 = time.monotonic()
            proc = netns.popen(fetch_ns, _curl_argv(guest, "/big", "--limit-rate", TRANSFER_RATE,
                                                    "--max-time", "120", "-o", str(out))[1])
            try:
                for target, label in (("a", "visited network 5a"), ("home", "home network 6")):
                    time.sleep(1.5)
                    seconds = handover.move(prefix, target,
                                            timeout=30.0 if guest == "vm" else 10.0)
                    report.handovers.append((target, seconds))
                    console.print(f"  handover to {label}: binding acknowledged after "
                                  f"{seconds * 1000:.0f} ms")
                proc.wait(timeout=150)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            report.transfer_seconds = time.monotonic() - t0
            report.bytes_received = out.stat().st_size if out.exists() else 0
            report.intact = (report.bytes_received == report.bytes_expected
                             and _sha256(out) == expected_sha)
        _main_bed_capabilities(console, report, prefix, sdir)
        merged = status_module.collect(sdir)
        report.counters = merged["counters"]
        report.fastpath = fastpath_summary(merged)
        _print_report(console, report)
        if not keep:
            with console.status("tearing the test bed down..."):
                testbed_module.down(prefix)
        _own_bed_capabilities(console, report, prefix)
        _fastpath_capabilities(report, merged)
        _print_capabilities(console, report)
        return report
    finally:
        if not keep:
            with console.status("tearing the test bed down..."):
                testbed_module.down(prefix)


def _main_bed_capabilities(console: Console, report: DemoReport, prefix: str, sdir: str) -> None:
    """Wave-2 capabilities shown in the main bed (the VM's or the lite guest's)."""
    from provisioning import demo_sip
    from provisioning.demo_tls import show_tls_gateway

    moves = ", ".join(f"{t} {s * 1000:.0f} ms" for t, s in report.handovers)
    report.capabilities.append((
        "E1/E2 Mobile IPv6 + RFC 7915 translation",
        f"registered in {report.registration_seconds:.1f} s; 20 MiB byte-exact across moves "
        f"({moves})" if report.intact else "transfer not byte-exact", report.intact))
    try:
        tls_ok = show_tls_gateway(console, prefix, sdir)
    except ProvisioningError as exc:
        console.print(f"[red]TLS gateway step failed: {exc}[/]")
        tls_ok = False
    report.tls_gateway_ok = tls_ok
    report.capabilities.append(("E8 TLS inside TLS (Squid gateway)",
                                "curl https://cn.example/ on host: 200" if tls_ok
                                else "failed", tls_ok))
    report.sip_call = demo_sip.run(console, prefix, sdir)
    row = demo_sip.report_row(report.sip_call)
    call_ok = bool(report.sip_call and report.sip_call.get("established"))
    report.capabilities.append(("E5 SIP VoIP (Kamailio, baresip, ALG)",
                                row[1] if row else "no phones", call_ok))


def _own_bed_capabilities(console: Console, report: DemoReport, prefix: str) -> None:
    """Capabilities that need a bed of their own (lite guest, one after the other)."""
    from provisioning import demo_ro
    from provisioning.demo_hmip import run_hmip_demo

    short = prefix[:7]
    ro_ok = demo_ro.run_step(console, f"{short}r")
    report.route_optimised = ro_ok
    report.capabilities.append(("E3 route optimisation (RR, HAO/RH2)",
                                "direct path at 5b and again at 5a; cn2 via the tunnel"
                                if ro_ok else "direct path not seen", ro_ok))
    hmip_ok = run_hmip_demo(console, f"{short}h")
    report.capabilities.append(("E6 HMIPv6 (MAP, local BUs)",
                                "RCoA kept at the HA across a <-> b; c without MAP"
                                if hmip_ok else "failed", hmip_ok))
    fetched = run_nemo_step(console, f"{short}n")
    nemo_ok = bool(fetched) and all(code == "200" for code in fetched.values())
    report.capabilities.append(("E7 NEMO (mobile router, nested tunnels)",
                                ", ".join(f"{k}: {v}" for k, v in fetched.items()) or "failed",
                                nemo_ok))


def _print_capabilities(console: Console, report: DemoReport) -> None:
    table = Table(title="capabilities shown by this demo")
    table.add_column("capability")
    table.add_column("what the demo saw", overflow="fold")
    table.add_column("ok")
    for name, seen, ok in report.capabilities:
        table.add_row(name, escape(seen), "yes" if ok else "[red]NO[/]")
    for node, summary in report.fastpath.items():
        table.add_row(f"kernel fast path ({node})", escape(summary), "-")
    console.print(table)


def fastpath_carried(merged: dict[str, Any]) -> dict[str, bool]:
    """Per node whose tc programs are loaded: did they carry data packets themselves (not
    only pass packets on to Python)?"""
    out = {}
    for node in ("guest", "ha"):
        fastpath = merged.get(node, {}).get("fastpath") or {}
        if fastpath.get("active"):
            out[node] = any(v for k, v in fastpath.get("packets", {}).items()
                            if k != "errors" and not k.startswith("passed"))
    return out


def _fastpath_capabilities(report: DemoReport, merged: dict[str, Any]) -> None:
    """An active fast path is a capability the demo checks (it must have carried the demo's
    traffic); a node whose kernel refused it stays an informational row with the reason."""
    for node, carried in fastpath_carried(merged).items():
        summary = report.fastpath.pop(node, "")
        report.capabilities.append((f"kernel fast path ({node}, eBPF tc)", summary, carried))


def fastpath_summary(merged: dict[str, Any]) -> dict[str, str]:
    """Issue 14: which data path each agent ran and what its tc programs carried."""
    out = {}
    for node in ("guest", "ha"):
        fastpath = merged.get(node, {}).get("fastpath")
        if not fastpath:
            continue
        if not fastpath.get("active"):
            out[node] = f"off: {fastpath.get('reason')}"
            continue
        carried = {k: v for k, v in fastpath.get("packets", {}).items() if v and k != "errors"}
        out[node] = "eBPF, " + ", ".join(f"{k} {v}" for k, v in carried.items())
    return out


def _print_report(console: Console, report: DemoReport) -> None:
    table = Table(title="demo report", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("start to first accepted BA", f"{report.registration_seconds:.2f} s")
    for target, seconds in report.handovers:
        table.add_row(f"handover to {target} (link change to BA)", f"{seconds * 1000:.0f} ms")
    table.add_row("transfer", f"{report.bytes_received} of {report.bytes_expected} bytes in "
                  f"{report.transfer_seconds:.1f} s")
    table.add_row("byte-exact (sha256)", "yes" if report.intact else "[red]NO[/]")
    for node, values in report.counters.items():
        drops = {k: v for k, v in values.items() if "drop" in k and v}
        table.add_row(f"{node} drops", ", ".join(f"{k}={v}" for k, v in sorted(drops.items()))
                      or "none")
        table.add_row(f"{node} tunnelled packets",
                      f"tx {values.get('tx_tunnelled', 0)}, rx {values.get('rx_detunnelled', 0)}")
    console.print(table)
