"""`mip6term move`: a real L2 handover of the guest between the switch's bridges.

The guest's switch port is flapped down, re-enslaved to the new bridge and brought up, so
the guest sees carrier loss exactly as on a physical link change. Then the guest's control
socket is polled until its Binding Update List shows the move completed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from pyroute2 import IPRoute

from provisioning import control
from provisioning.errors import ProvisioningError
from provisioning.nodes.agents import GUEST, socket_path
from provisioning.topology import (
    BRIDGE_PREFIXES,
    BRIDGES,
    GUEST_SWITCH_PORT,
    HMIP_BRIDGE_PREFIXES,
    HMIP_BRIDGES,
    SWITCH,
    namespace,
    state_dir,
    validate_prefix,
)

POLL_INTERVAL = 0.05
# `move c` exists in a bed brought up with --hmip (network 5c, no MAP)
TARGET_BRIDGES = {**BRIDGES, "c": HMIP_BRIDGES["c"]}
TARGET_PREFIXES = {**BRIDGE_PREFIXES, **HMIP_BRIDGE_PREFIXES}


def _entries(status: dict[str, Any]) -> list[dict[str, Any]]:
    bul = status.get("binding_update_list", [])
    if isinstance(bul, dict):  # tolerate {"entries": [...]} or {dest: entry}
        bul = bul.get("entries", list(bul.values()))
    return [e for e in bul if isinstance(e, dict)]


def _in_prefix(address: object, prefix: IPv6Network) -> bool:
    try:
        return IPv6Address(str(address)) in prefix
    except ValueError:
        return False


def move_done(status: dict[str, Any], target: str) -> bool:
    """True when the guest status shows the handover to `target` ("a", "b", "home") done."""
    entries = _entries(status)
    registered = [e for e in entries if e.get("state") == "registered"]
    if target == "home":
        return not registered and status.get("at_home") is True
    prefix = TARGET_PREFIXES[target]
    return any(_in_prefix(e.get("care_of_address"), prefix) for e in registered)


def reattach(prefix: str, target: str) -> None:
    """Flap the guest's switch port and move it to the target bridge."""
    with IPRoute(netns=namespace(prefix, SWITCH)) as ipr:
        port = ipr.link_lookup(ifname=GUEST_SWITCH_PORT)
        bridge = ipr.link_lookup(ifname=TARGET_BRIDGES[target])
        if not port:
            raise ProvisioningError(f"test bed {prefix!r} is not up (no guest switch port)")
        if not bridge:
            raise ProvisioningError(f"network {target} exists only in a bed brought up with --hmip")
        ipr.link("set", index=port[0], state="down")
        ipr.link("set", index=port[0], master=bridge[0])
        ipr.link("set", index=port[0], state="up")


def move(prefix: str, target: str, timeout: float = 10.0, *, state_root: str = "/run/mip6term",
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> float:
    """Hand the guest over to `target`; returns seconds until the BUL showed it done."""
    validate_prefix(prefix)
    if target not in TARGET_BRIDGES:
        raise ProvisioningError(
            f"unknown network {target!r} (choose from {', '.join(TARGET_BRIDGES)})")
    sock = socket_path(state_dir(prefix, state_root), GUEST)
    start = clock()
    reattach(prefix, target)
    return wait_for_move(sock, target, timeout, start=start, clock=clock, sleep=sleep)


def wait_for_move(sock: str, target: str, timeout: float, *, start: float,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep,
                  ask: Callable[[str, dict[str, Any], float], dict[str, Any]] = control.request,
                  ) -> float:
    last_error = ""
    while True:
        try:
            if move_done(ask(sock, {"cmd": "status"}, 1.0), target):
                return clock() - start
        except ProvisioningError as exc:
            last_error = f" (last error: {exc})"
        if clock() - start >= timeout:
            raise ProvisioningError(f"move to {target} not completed within {timeout:g}s{last_error}")
        sleep(POLL_INTERVAL)
