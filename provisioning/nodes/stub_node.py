"""A server node hung off the core router on a veth of its own, inside the CN's /64.

`cn2` (--ro), `sip` (--sip) and `gw` (--tls-gateway) all sit "on the CN link" by address
(2001:db8:8::/64) while the CN's own link stays a point-to-point veth: core routes the node's
/128 onto the new veth, and answers neighbour solicitations for it on the CN link (proxy ND),
so the CN's kernel stack and its userspace correspondent daemon (--ro, e2e IPsec) both reach
it through core with no route of their own.
"""

from __future__ import annotations

from ipaddress import IPv6Address

from pyroute2 import IPRoute

from provisioning import netns
from provisioning.topology import namespace

CORE_CN_IFNAME = "eth3"  # core's end of the CN link (topology.FIG1)
NTF_PROXY = 0x08  # a proxy neighbour entry (ip -6 neigh add proxy ...)


def build(prefix: str, node: str, address: IPv6Address, core_ifname: str,
          core_link_local: str = "fe80::1") -> str:
    """The node's namespace, its veth to core (core end `core_ifname`), routes and proxy ND.
    Returns the namespace."""
    from provisioning import testbed  # the bed's netlink helpers (testbed imports the nodes)

    ns, core = namespace(prefix, node), namespace(prefix, "core")
    testbed._prepare_namespace(ns, router=False)
    testbed._create_veth(core, core_ifname, ns, "eth0")
    testbed._add_address(core, core_ifname, f"{core_link_local}/64")
    testbed._add_address(ns, "eth0", f"{address}/128")
    testbed._set_up(core, core_ifname)
    testbed._set_up(ns, "eth0")
    with IPRoute(netns=core) as ipr:
        ipr.route("add", dst=f"{address}/128", oif=testbed._link_index(ipr, core_ifname),
                  family=10)
    with IPRoute(netns=ns) as ipr:
        ipr.route("add", dst="::/0", gateway=core_link_local,
                  oif=testbed._link_index(ipr, "eth0"), family=10)
    netns.write_sysctl(core, f"ipv6/conf/{CORE_CN_IFNAME}/proxy_ndp", 1)
    with IPRoute(netns=core) as ipr:
        ipr.neigh("add", dst=str(address), ifindex=testbed._link_index(ipr, CORE_CN_IFNAME),
                  flags=NTF_PROXY, family=10)
    return ns
