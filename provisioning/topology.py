"""Static description of the patent Fig. 1 test bed: nodes, links, addresses, routes.

Only documentation prefixes (2001:db8::/32) are used. Everything here is data, so the
builder in testbed.py and the unit tests read the same single source of truth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from provisioning.errors import ProvisioningError

DEFAULT_PREFIX = "m6"
STATE_ROOT = "/run/mip6term"

NODES = ("guest", "host", "ar-a", "ar-b", "core", "ha", "cn", "dns")
SWITCH = "sw"
ROUTERS = ("core", "ar-a", "ar-b")

VISITED_A = IPv6Network("2001:db8:a::/64")
VISITED_B = IPv6Network("2001:db8:b::/64")
HOME_PREFIX = IPv6Network("2001:db8:6::/64")
CN_LINK = IPv6Network("2001:db8:8::/64")
TRANSIT_A = IPv6Network("2001:db8:ff0a::/64")
TRANSIT_B = IPv6Network("2001:db8:ff0b::/64")

HOME_AGENT = IPv6Address("2001:db8:6::1")
HOME_ADDRESS = IPv6Address("2001:db8:6::1000")
HOME_ROUTER = IPv6Address("2001:db8:6::ffff")
CN_ADDRESS = IPv6Address("2001:db8:8::1001")
# cn1.example .. cn5.example: five correspondents for the pool-exhaustion test (issue 3)
CN_EXTRA_ADDRESSES = tuple(IPv6Address(f"2001:db8:8::{i}") for i in range(1002, 1006))
# the resolver at home (dnsmasq): cn.example has only an AAAA record
DNS_ADDRESS = IPv6Address("2001:db8:6::53")

# Bridges in the switch namespace, keyed by the name `mip6term move` accepts.
BRIDGES = {"a": "br-a", "b": "br-b", "home": "br-home"}
BRIDGE_PREFIXES = {"a": VISITED_A, "b": VISITED_B, "home": HOME_PREFIX}
GUEST_SWITCH_PORT = "p-guest"
GUEST_START_BRIDGE = "b"  # the MN starts in visited network 5b

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")


@dataclass(frozen=True)
class SwitchPort:
    """A node interface whose veth peer is a port of a bridge in the switch namespace."""

    node: str
    ifname: str
    port: str  # name of the peer inside the switch namespace
    bridge: str
    address: str | None = None  # "addr/len" configured in the node kernel, None = none
    disable_ipv6: bool = False  # the userspace stack owns this link


@dataclass(frozen=True)
class PointToPoint:
    """A veth pair between two nodes, each end optionally with an address."""

    node_a: str
    ifname_a: str
    address_a: str | None
    node_b: str
    ifname_b: str
    address_b: str | None


@dataclass(frozen=True)
class Route:
    node: str
    destination: str  # "default" or a prefix
    gateway: str


@dataclass(frozen=True)
class Topology:
    switch_ports: tuple[SwitchPort, ...] = field(default_factory=tuple)
    links: tuple[PointToPoint, ...] = field(default_factory=tuple)
    routes: tuple[Route, ...] = field(default_factory=tuple)


FIG1 = Topology(
    switch_ports=(
        SwitchPort("ar-a", "eth0", "p-ar-a", "br-a", "2001:db8:a::1/64"),
        SwitchPort("ar-b", "eth0", "p-ar-b", "br-b", "2001:db8:b::1/64"),
        SwitchPort("core", "eth0", "p-core", "br-home", f"{HOME_ROUTER}/64"),
        SwitchPort("ha", "eth0", "p-ha", "br-home", None, disable_ipv6=True),
        SwitchPort("dns", "eth0", "p-dns", "br-home", f"{DNS_ADDRESS}/64"),
        SwitchPort("guest", "eth0", GUEST_SWITCH_PORT, BRIDGES[GUEST_START_BRIDGE], None,
                   disable_ipv6=True),
    ),
    links=(
        PointToPoint("core", "eth1", "2001:db8:ff0a::1/64", "ar-a", "eth1", "2001:db8:ff0a::2/64"),
        PointToPoint("core", "eth2", "2001:db8:ff0b::1/64", "ar-b", "eth1", "2001:db8:ff0b::2/64"),
        PointToPoint("core", "eth3", "2001:db8:8::1/64", "cn", "eth0", f"{CN_ADDRESS}/64"),
        # virtual network 15 (guest <-> host); IPv4 is configured later by the host shim
        PointToPoint("guest", "eth1", None, "host", "eth0", None),
    ),
    routes=(
        Route("core", str(VISITED_A), "2001:db8:ff0a::2"),
        Route("core", str(VISITED_B), "2001:db8:ff0b::2"),
        Route("ar-a", "default", "2001:db8:ff0a::1"),
        Route("ar-b", "default", "2001:db8:ff0b::1"),
        Route("cn", "default", "2001:db8:8::1"),
        Route("dns", "default", str(HOME_ROUTER)),
    ),
)

# Veth ends that keep the kernel's checksum/segmentation offloads in a namespace-only bed,
# whose agents read with PACKET_VNET_HDR (`offloads = true`): the host's TSO reaches the guest
# whole, and what the guest sends towards the home agent is coalesced by GRO at its switch
# port (GRO_ENDS) and forwarded as super-frames by the emulated network. Every other end (the
# CN's and the resolver's links, the agents' own interfaces) sends finished MTU-sized frames.
OFFLOAD_ENDS = frozenset({
    ("host", "eth0"),
    (SWITCH, "p-guest"), (SWITCH, "p-ar-a"), (SWITCH, "p-ar-b"), (SWITCH, "p-core"),
    (SWITCH, "p-ha"),
    ("ar-a", "eth0"), ("ar-a", "eth1"), ("ar-b", "eth0"), ("ar-b", "eth1"),
    ("core", "eth0"), ("core", "eth1"), ("core", "eth2"),
})
# GRO at the guest's switch port (what the guest sends) and on the guest's host link (what
# the host's applications send: TCP arrives as TSO super-frames anyway, UDP is coalesced).
GRO_ENDS = frozenset({(SWITCH, GUEST_SWITCH_PORT), ("guest", "eth1")})
# GRO ends whose NAPI runs in a kernel thread of its own (sysfs `threaded`): on the guest's
# host link, what the host's applications send is coalesced, translated and forwarded by the
# guest's thread instead of inside the sender's own system call, the way TAYGA's process
# forwards on a core of its own. Measured (issue 14): UDP 100 B host->CN 60k -> 140k pkt/s.
THREADED_NAPI_ENDS = frozenset({("guest", "eth1")})
# The core's link to the CN keeps its transmit offloads (super-frames reach the CN whole, as
# from a NIC with TSO) when the CN is the plain kernel stack; with the userspace CN (route
# optimisation, end-to-end ESP) it reads that link with a plain packet socket and they stay off.
# The CN's own end sends super-frames only when the guest's fast path takes them back (the
# HA's [fastpath] super_frames, testbed.up): a packet socket cannot read an IPv6-in-IPv6 one.
CN_LINK_OFFLOAD_END = ("core", "eth3")

# The interface radvd advertises on, per router node.
RADVD_INTERFACES = {"ar-a": ("eth0", VISITED_A), "ar-b": ("eth0", VISITED_B),
                    "core": ("eth0", HOME_PREFIX)}


def validate_prefix(prefix: str) -> str:
    """Namespace prefixes are short lowercase tags so every derived name stays valid."""
    if not _PREFIX_RE.match(prefix):
        raise ProvisioningError(
            f"invalid prefix {prefix!r}: use 1-8 lowercase letters/digits starting with a letter"
        )
    return prefix


def namespace(prefix: str, node: str) -> str:
    return f"{prefix}-{node}"


def state_dir(prefix: str, root: str = STATE_ROOT) -> str:
    return f"{root}/{prefix}"


def all_node_names() -> tuple[str, ...]:
    return (*NODES, SWITCH)


def interface_names() -> list[str]:
    """Every interface name the topology creates (for the 15-character check)."""
    names = [p.ifname for p in FIG1.switch_ports] + [p.port for p in FIG1.switch_ports]
    names += list(BRIDGES.values())
    for link in FIG1.links:
        names += [link.ifname_a, link.ifname_b]
    return names


# ---------------------------------------------------------------- HMIPv6 (`testbed up --hmip`)
# Patent Fig. 27: a MAP above the access routers ar-a and ar-b (their RAs carry the MAP option,
# sent by our network/router daemon instead of radvd), plus visited network 5c behind ar-c
# (radvd, no MAP). The MAP is one-armed on its own link 2001:db8:d::/64 behind core, like the
# HA on the home link: core routes the RCoAs there and the MAP defends them with proxy ND.
VISITED_C = IPv6Network("2001:db8:c::/64")
MAP_LINK = IPv6Network("2001:db8:d::/64")
MAP_ADDRESS = IPv6Address("2001:db8:d::1")
MAP_LINK_ROUTER = IPv6Address("2001:db8:d::ffff")
MAP_NODE = "map"
HMIP_NODES = (MAP_NODE, "ar-c")
HMIP_ROUTERS = ("ar-c",)
HMIP_BRIDGES = {"c": "br-c", "d": "br-d"}
HMIP_BRIDGE_PREFIXES = {"c": VISITED_C}
# The access routers whose RAs carry the MAP option: (interface, advertised prefix).
MAP_ACCESS_ROUTERS = {"ar-a": ("eth0", VISITED_A), "ar-b": ("eth0", VISITED_B)}
HMIP_RADVD_INTERFACES = {"ar-c": ("eth0", VISITED_C)}

HMIP = Topology(
    switch_ports=(
        SwitchPort("ar-c", "eth0", "p-ar-c", "br-c", "2001:db8:c::1/64"),
        SwitchPort("core", "eth4", "p-core-d", "br-d", f"{MAP_LINK_ROUTER}/64"),
        SwitchPort(MAP_NODE, "eth0", "p-map", "br-d", None, disable_ipv6=True),
    ),
    links=(
        PointToPoint("core", "eth5", "2001:db8:ff0c::1/64", "ar-c", "eth1", "2001:db8:ff0c::2/64"),
    ),
    routes=(
        Route("core", str(VISITED_C), "2001:db8:ff0c::2"),
        Route("ar-c", "default", "2001:db8:ff0c::1"),
    ),
)
