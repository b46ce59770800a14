"""nftables helper for tests: drop the first N Binding Updates the MN sends to the HA.

The MN's stack is userspace on AF_PACKET, so the filter sits on the switch: a bridge-family
table in the switch namespace. Hook `prerouting` (bridge ingress) sees each frame once, even
when the bridge later floods it to several ports (the forward hook would run per port).
`numgen inc` counts the matching frames from 0, so `< N` drops exactly the first N; the
second rule counts the BUs that got through. `mh type binding-update` works in the bridge
family because nf_tables locates the transport header past the Destination Options (HAO).
"""

from __future__ import annotations

import json
from ipaddress import IPv6Address

from provisioning import netns
from provisioning.errors import ProvisioningError
from provisioning.topology import HOME_AGENT, SWITCH, namespace, validate_prefix

TABLE = "m6bu"
_NUMGEN_MOD = 4294967295  # large modulus: the counter never wraps within a test


def drop_first_bu_script(count: int, home_agent: IPv6Address = HOME_AGENT) -> str:
    if count < 0:
        raise ProvisioningError("count must be >= 0")
    match = f"ip6 daddr {home_agent} meta l4proto 135 mh type binding-update"
    # "add table" + "delete table" makes the script idempotent (replaces an older filter)
    return (
        f"add table bridge {TABLE}\n"
        f"delete table bridge {TABLE}\n"
        f"table bridge {TABLE} {{\n"
        "  chain pre {\n"
        "    type filter hook prerouting priority -200; policy accept;\n"
        f"    {match} numgen inc mod {_NUMGEN_MOD} < {count} counter drop comment \"dropped\"\n"
        f"    {match} counter comment \"passed\"\n"
        "  }\n"
        "}\n"
    )


def _nft(prefix: str, args: list[str], script: str | None = None) -> str:
    ns = namespace(validate_prefix(prefix), SWITCH)
    if not netns.exists(ns):
        raise ProvisioningError(f"namespace {ns} does not exist (is the test bed up?)")
    result = netns.run(ns, ["nft", *args], input=script.encode() if script else None, timeout=10)
    if result.returncode != 0:
        raise ProvisioningError(f"nft {' '.join(args)}: {result.stderr.decode().strip()}")
    return result.stdout.decode()


def drop_first_binding_updates(prefix: str, count: int,
                               home_agent: IPv6Address = HOME_AGENT) -> None:
    """Install (or replace) the filter dropping the next `count` BUs to home_agent."""
    _nft(prefix, ["-f", "-"], drop_first_bu_script(count, home_agent))


def remove_binding_update_filter(prefix: str) -> None:
    _nft(prefix, ["-f", "-"], f"add table bridge {TABLE}\ndelete table bridge {TABLE}\n")


def binding_update_counters(prefix: str) -> dict[str, int]:
    """{"dropped": packets, "passed": packets} from the filter's two counters."""
    data = json.loads(_nft(prefix, ["-j", "list", "table", "bridge", TABLE]))
    counts = {"dropped": 0, "passed": 0}
    for item in data.get("nftables", []):
        rule = item.get("rule")
        if not rule or rule.get("comment") not in counts:
            continue
        for expr in rule.get("expr", []):
            if "counter" in expr:
                counts[rule["comment"]] = int(expr["counter"]["packets"])
    return counts
