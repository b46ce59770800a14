"""Plain kernel IPv6 forwarding through the test bed's own namespaces (issue 14's reference).

A bed without agents (`testbed.up(agents=False)`) has the same namespaces, veth pairs,
bridges and link settings as the bed the fast path runs in (offloads, GRO, threaded NAPI,
TSO on both ends of the CN's link, and the transmit offloads the agents switch on where their
programs redirect). Then the kernel takes the agents' places: the guest and the HA become plain IPv6
routers, and the core sends the flow through the HA in both directions, as the bidirectional
tunnel does, so every packet crosses the same hops:

    host --2001:db8:f1::/64-- guest --br-b-- ar-b -- core --br-home-- ha --br-home-- core -- cn

What the fast path does on top (translation, tunnel headers, binding lookups) is what the
ratio against this path measures. Documentation addresses only; the host link prefix
2001:db8:f1::/64 is this reference's own.
"""

from __future__ import annotations

from typing import Any

from pyroute2 import IPRoute

from benchmarks.testbed import iperf3_client_args, iperf3_in
from provisioning.topology import CN_ADDRESS, HOME_AGENT, HOME_ROUTER, namespace

HOST_LINK = "2001:db8:f1::"
HOST_ADDRESS = f"{HOST_LINK}2"
GUEST_HOST_SIDE = f"{HOST_LINK}1"
GUEST_VISITED = "2001:db8:b::f1"  # the guest's place in visited network 5b
AR_B = "2001:db8:b::1"
AR_B_TRANSIT = "2001:db8:ff0b::2"  # ar-b as seen from core
VIA_HA_OUT, VIA_HA_BACK = 100, 101  # core's policy tables: the detour through the HA
AF_INET6 = 10
VIA = "host (kernel IPv6) -> guest -> ar-b -> core -> HA -> core -> CN (kernel forwarding)"


def _router(prefix: str, node: str, ifname: str) -> None:
    """Kernel IPv6 back on a link an agent would own, and forwarding on."""
    from provisioning import netns

    ns = namespace(prefix, node)
    netns.write_sysctl(ns, f"ipv6/conf/{ifname}/disable_ipv6", 0)
    netns.write_sysctl(ns, "ipv6/conf/all/forwarding", 1)


def configure(prefix: str) -> None:
    """Turn an agent-less bed into the kernel forwarding path above."""
    from provisioning.offloads import enable_tx_offloads
    from provisioning.testbed import _add_address

    _router(prefix, "guest", "eth0")
    _router(prefix, "ha", "eth0")
    for node, ifname in (("guest", "eth0"), ("guest", "eth1"), ("ha", "eth0")):  # as the agents do
        enable_tx_offloads(namespace(prefix, node), ifname)
    for node, ifname, address in (("host", "eth0", HOST_ADDRESS), ("guest", "eth1", GUEST_HOST_SIDE),
                                  ("guest", "eth0", GUEST_VISITED), ("ha", "eth0", str(HOME_AGENT))):
        _add_address(namespace(prefix, node), ifname, f"{address}/64")
    for node, destination, gateway in (("host", "::/0", GUEST_HOST_SIDE), ("guest", "::/0", AR_B),
                                       ("ar-b", f"{HOST_LINK}/64", GUEST_VISITED),
                                       ("ha", "::/0", str(HOME_ROUTER)),
                                       ("core", f"{HOST_LINK}/64", AR_B_TRANSIT)):
        with IPRoute(netns=namespace(prefix, node)) as ipr:
            ipr.route("add", dst=destination, gateway=gateway, family=AF_INET6)
    with IPRoute(netns=namespace(prefix, "core")) as ipr:
        # from ar-b (eth2): everything to the HA; from the CN (eth3): the host link to the HA
        ipr.route("add", dst="::/0", gateway=str(HOME_AGENT), table=VIA_HA_OUT, family=AF_INET6)
        ipr.route("add", dst=f"{HOST_LINK}/64", gateway=str(HOME_AGENT), table=VIA_HA_BACK,
                  family=AF_INET6)
        ipr.rule("add", family=AF_INET6, iifname="eth2", table=VIA_HA_OUT, priority=100)
        ipr.rule("add", family=AF_INET6, iifname="eth3", table=VIA_HA_BACK, priority=101)


def iperf3_from_host(prefix: str, *, udp: bool, duration: int, reverse: bool) -> dict[str, Any]:
    argv = iperf3_client_args(str(CN_ADDRESS), udp=udp, duration=duration, bind=HOST_ADDRESS,
                              reverse=reverse)
    return iperf3_in(prefix, "host", argv, duration)
