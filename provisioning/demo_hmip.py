"""The demo's HMIPv6 step (issue 10): a --hmip bed, registration through the MAP, moves a -> b
(a local BU only) -> c (no MAP: plain Mobile IPv6) -> a (back to the MAP), a fetch after each."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from provisioning import handover, netns
from provisioning import status as status_module
from provisioning import testbed as testbed_module
from provisioning.errors import ProvisioningError
from provisioning.topology import CN_ADDRESS, HOME_ADDRESS, HOME_AGENT, namespace


def _hmip_state(sdir: str) -> tuple[dict[str, Any], str | None]:
    merged = status_module.collect(sdir)
    home = [e for e in merged["binding_update_list"]
            if e.get("destination") == str(HOME_AGENT) and e.get("state") == "registered"]
    return merged["guest"].get("hmip") or {}, home[0]["care_of_address"] if home else None


def _wait(sdir: str, via_map: bool, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hmip, coa = _hmip_state(sdir)
        if coa and hmip.get("lcoa") and (
                (via_map and hmip.get("local_tunnel_up") and coa == hmip.get("rcoa"))
                or (not via_map and coa == hmip.get("lcoa"))):
            return {**hmip, "ha_coa": coa}
        time.sleep(0.1)
    raise ProvisioningError("the guest did not register as expected in the --hmip bed")


def run_hmip_demo(console: Console, prefix: str) -> bool:
    """True when every fetch succeeded and the HA saw the RCoA unchanged inside the domain."""
    console.rule("[bold]HMIPv6: MAP, local binding updates (patent Fig. 27)")
    if netns.list_with_prefix(prefix):
        testbed_module.down(prefix)
    table = Table(title="HMIPv6 moves")
    for col in ("network", "HA binds", "LCoA", "MAP", "move done", "GET"):
        table.add_column(col, overflow="fold")
    ok = True
    try:
        with console.status("building the --hmip test bed (MAP, RA daemons with the MAP option)"):
            sdir = testbed_module.up(testbed_module.UpOptions(prefix=prefix, hmip=True))
        state = _wait(sdir, via_map=True)
        table.add_row("b (start)", state["ha_coa"], state["lcoa"], str(state["map"] or "none"), "", "")
        rcoa = state["rcoa"]
        for target, via_map in (("a", True), ("b", True), ("c", False), ("a", True)):
            seconds = handover.move(prefix, target, timeout=20.0)
            state = _wait(sdir, via_map)
            fetch = netns.run(namespace(prefix, "guest"), [
                "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "15",
                "--interface", str(HOME_ADDRESS), f"http://[{CN_ADDRESS}]/"], timeout=20)
            code = fetch.stdout.decode() or "failed"
            ok = ok and code == "200" and (not via_map or state["ha_coa"] == rcoa)
            table.add_row(target, state["ha_coa"], state["lcoa"], str(state["map"] or "none"),
                          f"{seconds * 1000:.0f} ms", code)
        console.print(table)
        console.print("inside the MAP domain the HA keeps the RCoA: only local BUs to the MAP"
                      if ok else "[red]HMIPv6 step failed[/]")
        return ok
    except ProvisioningError as exc:
        console.print(f"[red]HMIPv6 step failed: {exc}[/]")
        return False
    finally:
        with console.status("tearing the --hmip test bed down..."):
            testbed_module.down(prefix)
