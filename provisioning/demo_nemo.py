"""The demo's NEMO step (issue 11): a `--nemo` bed, the host's IPv6 app from the mobile
network prefix and its IPv4 app at once, the nested node `vmn`, and what the HA did."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from provisioning import nemo, netns, status
from provisioning import testbed as testbed_module
from provisioning.topology import CN_ADDRESS, namespace, state_dir


def _wait(sdir: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        merged = status.collect(sdir)
        homes = {b["home_address"] for b in merged["binding_cache"]}
        if str(nemo.VMN_HOME_ADDRESS) in homes and len(homes) >= 2 or time.monotonic() > deadline:
            return merged
        time.sleep(0.3)


def _host_address(prefix: str) -> str | None:
    out = netns.run(namespace(prefix, "host"), ["ip", "-6", "-o", "addr", "show", "dev", "eth0"],
                    timeout=10).stdout.decode()
    for word in out.split():
        address = word.split("/")[0]
        if address.startswith("2001:db8:6:100:"):
            return address
    return None


def _fetch(prefix: str, node: str, *args: str) -> str:
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "15", *args]
    return netns.run(namespace(prefix, node), argv, timeout=30).stdout.decode() or "failed"


def run_nemo_step(console: Console, prefix: str = "demon") -> dict[str, str]:
    """Bring a --nemo bed up, show the mobile network working, tear it down."""
    results: dict[str, str] = {}
    if netns.list_with_prefix(prefix):
        testbed_module.down(prefix)
    console.rule("[bold]NEMO: the terminal as a mobile router (patent Fig. 34, RFC 3963)")
    try:
        with console.status("test bed with --nemo: mobile network 2001:db8:6:100::/64, vmn ..."):
            sdir = testbed_module.up(testbed_module.UpOptions(prefix=prefix, nemo=True))
            _wait(sdir)
            deadline = time.monotonic() + 20
            while (address := _host_address(prefix)) is None and time.monotonic() < deadline:
                time.sleep(0.3)
        url = f"http://[{CN_ADDRESS}]/"
        results["host IPv6 app from the prefix"] = (
            _fetch(prefix, "host", "--interface", address, url) if address else "no SLAAC address")
        results["host IPv4 app (translated)"] = _fetch(prefix, "host", "-4", "http://cn.example/")
        results["vmn (nested, tunnel in tunnel)"] = _fetch(prefix, nemo.VMN, url)
        merged = status.collect(state_dir(prefix))
        table = Table(title="NEMO", show_header=False)
        table.add_column("what")
        table.add_column("value")
        table.add_row("host SLAAC address", Text(address or "-"))  # Text: ":100:" is no emoji
        for what, code in results.items():
            table.add_row(what, f"HTTP {code}")
        for row in merged["ha"].get("prefix_table", []):
            table.add_row(Text(f"HA prefix table {row['prefix']}"),
                          Text(f"registered={row['registered']} via {row['care_of_address']}"))
        ha = merged["counters"]["ha"]
        table.add_row("HA nested tunnelling", f"tx {ha.get('tx_nested_tunnelled', 0)}, "
                      f"rx {ha.get('rx_nested_detunnelled', 0)}")
        console.print(table)
        return results
    finally:
        with console.status("tearing the NEMO test bed down..."):
            testbed_module.down(prefix)
