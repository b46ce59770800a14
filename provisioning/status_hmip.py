"""`mip6term status` for an --hmip bed: the MAP's binding cache, the RA daemons, the guest's MAP.

Each node is asked only when its control socket exists, so a bed without --hmip is unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from provisioning.errors import ProvisioningError
from provisioning.nodes.agents import socket_path
from provisioning.nodes.hmip import router_node
from provisioning.topology import MAP_ACCESS_ROUTERS, MAP_NODE

MAP_BC_COLUMNS = ("rcoa", "lcoa", "lifetime", "granted_lifetime", "sequence")
HMIP_FIELDS = ("map", "rcoa", "lcoa", "registration_type", "scenario", "local_tunnel_up")


def collect(state_dir: str, merged: dict[str, Any],
            ask: Callable[[str, dict[str, Any], float], dict[str, Any]]) -> None:
    """Add `map`, `map_binding_cache`, `routers` and their counters to `merged`."""
    nodes = [MAP_NODE, *(router_node(ar) for ar in MAP_ACCESS_ROUTERS)]
    for node in nodes:
        path = socket_path(state_dir, node)
        if not os.path.exists(path):
            continue
        try:
            answer = dict(ask(path, {"cmd": "status"}, 2.0))
        except ProvisioningError as exc:
            merged.setdefault("errors", {})[node] = str(exc)
            continue
        merged.setdefault("counters", {})[node] = answer.pop("counters", {})
        if node == MAP_NODE:
            merged["map_binding_cache"] = answer.pop("binding_cache", [])
            merged[MAP_NODE] = answer
        else:
            merged.setdefault("routers", {})[node] = answer


def render(merged: dict[str, Any], console: Console) -> None:
    guest = merged.get("guest")
    hmip = guest.get("hmip") if isinstance(guest, dict) else None
    if isinstance(hmip, dict):
        table = Table(title="HMIPv6 (guest)")
        for name in HMIP_FIELDS:
            table.add_column(name, overflow="fold")
        table.add_row(*("" if hmip.get(f) is None else str(hmip.get(f)) for f in HMIP_FIELDS))
        console.print(table)
    if MAP_NODE in merged:
        table = Table(title="Binding cache (MAP)")
        for name in MAP_BC_COLUMNS:
            table.add_column(name, overflow="fold")
        for entry in merged.get("map_binding_cache", []):
            if isinstance(entry, dict):
                table.add_row(*("" if entry.get(c) is None else str(entry.get(c))
                                for c in MAP_BC_COLUMNS))
        console.print(table)
    routers = merged.get("routers")
    if isinstance(routers, dict) and routers:
        table = Table(title="Router advertisement daemons")
        for name in ("router", "interface", "prefixes", "map"):
            table.add_column(name, overflow="fold")
        for node, info in routers.items():
            m = info.get("map") or {}
            table.add_row(node, str(info.get("interface")), ", ".join(info.get("prefixes", [])),
                          str(m.get("address", "")))
        console.print(table)
