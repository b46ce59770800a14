"""The demo's SIP step (issue 12): the host's IPv4 softphone calls the CN's IPv6 phone
through Kamailio, the guest's SIP ALG and table 230, after the handovers of the main demo."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from provisioning.errors import ProvisioningError
from provisioning.sip_call import place_call

CALL_SECONDS = 3.0


def run(console: Console, prefix: str, sdir: str) -> dict[str, Any] | None:
    """One call host4 -> cn; prints one line, returns the call's JSON object (None if the
    bed has no phones)."""
    try:
        with console.status("SIP: IPv4 phone on the host calls sip:cn@sip.example ..."):
            result = place_call(prefix, sdir, "host4", "cn", seconds=CALL_SECONDS).as_dict()
    except ProvisioningError as exc:
        console.print(f"[yellow]SIP call skipped: {exc}[/yellow]")
        return None
    if result["established"]:
        rtp = result["rtp"]
        console.print(f"SIP call host4 (IPv4) -> cn (IPv6) via Kamailio and the ALG: set up in "
                      f"{result['setup_ms']} ms, RTP received host {rtp['host4']['received']}, "
                      f"CN {rtp['cn']['received']}")
    else:
        console.print(f"[red]SIP call failed: {result['status']} {result['reason']}[/red]")
    return result


def report_row(result: dict[str, Any] | None) -> tuple[str, str] | None:
    if result is None:
        return None
    if not result["established"]:
        return "SIP call host4 -> cn", f"[red]failed: {result['status']}[/]"
    rtp = result["rtp"]
    return ("SIP call host4 -> cn (ALG)",
            f"set-up {result['setup_ms']} ms; RTP received host {rtp['host4']['received']}, "
            f"CN {rtp['cn']['received']}")
