"""Test bed pieces for route optimisation (`testbed up --ro`, issue 9).

- The guest's `[route_optimisation]` section (on at the terminal; the CN daemon always has it).
- `cn2`: a correspondent WITHOUT Mobile IPv6 (plain kernel IPv6, `2001:db8:8::2001`) serving
  the same `/` and `/big` over HTTP. It hangs off the core router on a veth of its own (core
  `cn2-0`, `fe80::1`), routed as a /128 of the CN prefix: the CN's own point-to-point link
  stays as it is, and to the mobile node cn2 is just another correspondent on 2001:db8:8::/64.
  Its kernel answers a HoTI/CoTI with an ICMPv6 Parameter Problem (unknown next header 135).
"""

from __future__ import annotations

from ipaddress import IPv6Address

from provisioning import processes
from provisioning.nodes import stub_node
from provisioning.nodes.cn import start_http_server

CN2 = "cn2"
CN2_ADDRESS = IPv6Address("2001:db8:8::2001")
CORE_CN2_IFNAME = "cn2-0"  # not ethN: other flags add core interfaces (--hmip: eth4, eth5)
CORE_CN2_LINK_LOCAL = "fe80::1"


def guest_tables(tables: dict[str, dict[str, object]]) -> None:
    """Turn route optimisation on in the guest's config tables."""
    tables["route_optimisation"] = {"enabled": True, "correspondents": ["all"]}


def add_cn2(prefix: str, sdir: str) -> str:
    """Build the `cn2` namespace, link and routes, and start its HTTP server."""

    ns = stub_node.build(prefix, CN2, CN2_ADDRESS, CORE_CN2_IFNAME, CORE_CN2_LINK_LOCAL)
    start_http_server(sdir, ns, "cn2-http", CN2_ADDRESS)
    processes.ensure_running(sdir, "cn2-http")
    return ns
