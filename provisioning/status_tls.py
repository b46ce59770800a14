"""`mip6term status`: the guest's TLS gateway part (patent E8, issue 13)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

OUTER_COLUMNS = ("id", "host_view", "destination", "state", "outer_local", "tls_version", "cipher",
                 "outer_uptime", "bytes_up", "bytes_down", "outer_session")


def render_tls_gateway(tls: dict[str, Any], console: Console) -> None:
    gateway = tls.get("gateway", {})
    policy = tls.get("policy", {})
    title = (f"TLS gateway {gateway.get('name')} [{gateway.get('address')}]:{gateway.get('port')}"
             f" - TCP ports {policy.get('ports')} to {policy.get('destinations')}")
    table = Table(title=f"{title}: outer sessions, one per relayed flow (open, then the last "
                        "closed)")
    for column in OUTER_COLUMNS:
        table.add_column(column, overflow="fold")
    for flow in [*tls.get("outer_sessions", []), *tls.get("recent", [])]:
        if isinstance(flow, dict):
            session = str(flow.get("outer_session") or "")
            row = {**flow, "outer_session": session[:16] + ("..." if len(session) > 16 else "")}
            table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in OUTER_COLUMNS))
    console.print(table)
    if tls.get("last_error"):
        console.print(f"[yellow]TLS gateway, last error: {tls['last_error']}[/yellow]")
