"""The demo's route optimisation step (issue 9, patent E3 Fig. 20, scenarios 10011 / 11001).

A bed of its own with `--ro`: the terminal fetches /big from the CN (return routability, BU
to the CN, then the direct path with HAO / RH2), moves to 5a (only the care-of test is
redone) and fetches from cn2, which has no Mobile IPv6 (tunnel, never delayed).
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from provisioning import handover, netns
from provisioning import status as status_module
from provisioning import testbed as testbed_module
from provisioning.nodes.route_optimisation import CN2_ADDRESS
from provisioning.topology import CN_ADDRESS, HOME_ADDRESS, namespace


def _fetch(prefix: str, address: object, path: str) -> str:
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}B %{time_total}s",
            "--max-time", "30", "--interface", str(HOME_ADDRESS), f"http://[{address}]{path}"]
    return netns.run(namespace(prefix, "guest"), argv, timeout=40).stdout.decode() or "failed"


def _wait_direct(sdir: str, care_of_prefix: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    merged: dict[str, Any] = {}
    while time.monotonic() < deadline:
        merged = status_module.collect(sdir)
        for entry in merged["binding_update_list"]:
            if (entry.get("destination") == str(CN_ADDRESS) and entry.get("path") == "direct"
                    and str(entry.get("care_of_address", "")).startswith(care_of_prefix)):
                return merged
        time.sleep(0.1)
    return merged


def run_step(console: Console, prefix: str = "demor") -> bool:
    """Returns True when the direct path came up before and after the move."""
    if netns.list_with_prefix(prefix):
        testbed_module.down(prefix)
    console.rule("[bold]route optimisation (testbed up --ro)")
    ok = False
    try:
        with console.status("building a test bed with route optimisation ..."):
            sdir = testbed_module.up(testbed_module.UpOptions(prefix=prefix, ro=True))
            handover.move(prefix, "b", timeout=20)
        console.print(f"GET /big from the CN: {_fetch(prefix, CN_ADDRESS, '/big')}")
        before = _wait_direct(sdir, "2001:db8:b:")
        seconds = handover.move(prefix, "a", timeout=20)
        console.print(f"moved to 5a: home BA after {seconds * 1000:.0f} ms; "
                      f"GET /big again: {_fetch(prefix, CN_ADDRESS, '/big')}")
        after = _wait_direct(sdir, "2001:db8:a:")
        console.print(f"GET / from cn2 (no Mobile IPv6): {_fetch(prefix, CN2_ADDRESS, '/')}")
        time.sleep(0.5)
        merged = status_module.collect(sdir)
        table = Table(title="Binding Update List (table 210) with route optimisation")
        columns = ("destination", "care_of_address", "state", "path", "lifetime",
                   "home_token_age", "care_of_token_age")
        for col in columns:
            table.add_column(col, overflow="fold")
        for entry in merged["binding_update_list"]:
            table.add_row(*("" if entry.get(c) is None else str(entry.get(c)) for c in columns))
        console.print(table)
        guest = merged["counters"].get("guest", {})
        console.print(f"direct path: tx {guest.get('tx_route_optimised', 0)} with HAO, "
                      f"rx {guest.get('rx_route_optimised', 0)} with RH2; "
                      f"HoTI {guest.get('hoti_sent', 0)}, CoTI {guest.get('coti_sent', 0)}")
        ok = all(any(e.get("destination") == str(CN_ADDRESS) and e.get("path") == "direct"
                     for e in m.get("binding_update_list", [])) for m in (before, after))
        return ok
    finally:
        with console.status("tearing the route optimisation bed down..."):
            testbed_module.down(prefix)
