"""`mip6term status`: merge the guest and HA status answers; render them as rich tables."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from provisioning import control, status_hmip
from provisioning.errors import ProvisioningError
from provisioning.nemo import status_tables as nemo_status_tables
from provisioning.nodes.agents import GUEST, HOME_AGENT_NODE, socket_path
from provisioning.nodes.correspondent import CORRESPONDENT

BUL_COLUMNS = ("destination", "home_address", "care_of_address", "lifetime", "state",
               "sequence", "last_status", "reason", "path", "home_token_age", "care_of_token_age")
BC_COLUMNS = ("home_address", "care_of_address", "lifetime", "granted_lifetime", "sequence",
              "mobile_router")


def merge(guest: dict[str, Any] | None, ha: dict[str, Any] | None,
          errors: dict[str, str] | None = None) -> dict[str, Any]:
    """One status document: BUL from the guest, binding cache from the HA, both counters,
    and everything else each node returned under its node name."""
    guest = dict(guest or {})
    ha = dict(ha or {})
    merged: dict[str, Any] = {
        "binding_update_list": guest.pop("binding_update_list", []),
        "binding_cache": ha.pop("binding_cache", []),
        "counters": {"guest": guest.pop("counters", {}), "ha": ha.pop("counters", {})},
        GUEST: guest,
        HOME_AGENT_NODE: ha,
    }
    if errors:
        merged["errors"] = dict(errors)
    return merged


def collect(state_dir: str, ask: Callable[[str, dict[str, Any], float], dict[str, Any]]
            = control.request) -> dict[str, Any]:
    answers: dict[str, dict[str, Any] | None] = {}
    errors: dict[str, str] = {}
    for node in (GUEST, HOME_AGENT_NODE):
        try:
            answers[node] = ask(socket_path(state_dir, node), {"cmd": "status"}, 2.0)
        except ProvisioningError as exc:
            answers[node] = None
            errors[node] = str(exc)
    if len(errors) == 2:
        raise ProvisioningError(f"no agent answered in {state_dir} (is the test bed up with agents?)")
    merged = merge(answers[GUEST], answers[HOME_AGENT_NODE], errors)
    _add_correspondent(merged, state_dir, ask)  # the CN daemon of an --ro bed
    status_hmip.collect(state_dir, merged, ask)  # MAP and RA daemons of an --hmip bed
    return merged


def _add_correspondent(merged: dict[str, Any], state_dir: str,
                       ask: Callable[[str, dict[str, Any], float], dict[str, Any]]) -> None:
    """The CN daemon's answer (route optimisation: binding cache, RR counters), if it runs."""
    path = socket_path(state_dir, CORRESPONDENT)
    if not os.path.exists(path):
        return
    try:
        answer = dict(ask(path, {"cmd": "status"}, 2.0))
    except ProvisioningError as exc:
        merged.setdefault("errors", {})[CORRESPONDENT] = str(exc)
        return
    merged["counters"][CORRESPONDENT] = answer.pop("counters", {})
    merged[CORRESPONDENT] = answer


def _rows(entries: Any) -> list[dict[str, Any]]:
    if isinstance(entries, dict):
        entries = entries.get("entries", list(entries.values()))
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _table(title: str, columns: tuple[str, ...], entries: Any) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, overflow="fold")  # addresses wrap instead of being cut
    for entry in _rows(entries):
        # Text: values are data, never rich markup or emoji codes ("2001:db8:6:100::" holds ":100:")
        table.add_row(*(Text("" if entry.get(c) is None else str(entry.get(c))) for c in columns))
    return table


TRANSLATION_COLUMNS = ("ipv6", "ipv4", "lifetime", "remaining", "static", "home", "packets")
SCENARIO_COLUMNS = ("number", "content", "state", "active")
TERMINATION_COLUMNS = ("protocol", "src", "sport", "dst", "dport", "mobility_terminated",
                       "end_to_end_terminated")


def render(merged: dict[str, Any], console: Console) -> None:
    console.print(_table("Binding Update List (table 210)", BUL_COLUMNS,
                         merged.get("binding_update_list", [])))
    console.print(_table("Binding cache (home agent)", BC_COLUMNS, merged.get("binding_cache", [])))
    guest = merged.get("guest", {})
    if isinstance(guest, dict) and "scenario_policy" in guest:
        console.print(_table("Scenario policy (table 220)", SCENARIO_COLUMNS,
                             guest["scenario_policy"]))
    if isinstance(guest, dict) and "translation_table" in guest:
        rows = [
            {**row, "remaining": None if row.get("remaining") is None else round(row["remaining"])}
            for row in guest["translation_table"] if isinstance(row, dict)
        ]
        console.print(_table("Translation table (table 230)", TRANSLATION_COLUMNS, rows))
    if isinstance(guest, dict) and isinstance(guest.get("tls_gateway"), dict):
        from provisioning.status_tls import render_tls_gateway  # issue 13 (E8)

        render_tls_gateway(guest["tls_gateway"], console)
    terminations = (guest.get("ipsec") or {}).get("terminations") if isinstance(guest, dict) else None
    if terminations:  # issue 12: both ESP layers per flow (patent E5)
        console.print(_table("ESP terminations per flow (mobility tunnel, end to end)",
                             TERMINATION_COLUMNS, terminations))
    status_hmip.render(merged, console)
    for title, columns, rows in nemo_status_tables(merged):  # NEMO (issue 11)
        console.print(_table(title, columns, rows))
    counters = Table(title="Counters")
    for col in ("node", "counter", "value"):
        counters.add_column(col)
    for node, values in merged.get("counters", {}).items():
        if isinstance(values, dict):
            for name, value in sorted(values.items()):
                counters.add_row(node, str(name), str(value))
    console.print(counters)
    render_fastpath(merged, console)
    for node, error in merged.get("errors", {}).items():
        console.print(f"[yellow]{node}: {error}[/yellow]")


def render_fastpath(merged: dict[str, Any], console: Console) -> None:
    """Issue 14: which data path each agent runs (eBPF tc programs or Python only) and why."""
    table = Table(title="Data path (eBPF fast path)")
    for col in ("node", "path", "maps", "packets carried"):
        table.add_column(col)
    for node in ("guest", "ha"):
        fastpath = merged.get(node, {}).get("fastpath") if isinstance(merged.get(node), dict) else None
        if not isinstance(fastpath, dict):
            continue
        if not fastpath.get("active"):
            table.add_row(node, escape(f"Python only ({fastpath.get('reason')})"), "-", "-")
            continue
        maps = ", ".join(f"{k} {v}" for k, v in fastpath.get("maps", {}).items())
        packets = ", ".join(f"{k} {v}" for k, v in fastpath.get("packets", {}).items() if v)
        path = "eBPF + Python" + (", TCP super-frames whole" if fastpath.get("super_frames") else "")
        table.add_row(node, path, maps, packets or "0")
    if table.row_count:
        console.print(table)
