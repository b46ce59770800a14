"""`testbed up --nemo` (patent Fig. 34, E7; RFC 3963): the guest as a mobile router.

Virtual network 15 becomes a bridge `br-mnet` (switch namespace) that joins the guest's
`eth1`, the host's `eth0` and `vmn`'s `eth0`: the mobile network. The guest advertises
MOBILE_NETWORK_PREFIX there and registers it with the HA (prefix table in ha.toml); the core
routes the prefix to the HA. `vmn` is a second guest agent (same code, plain mobile node,
home address VMN_HOME_ADDRESS) whose care-of address comes from the mobile network, so its
traffic is tunnelled twice between the HA and the mobile router (claim 21).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tomllib
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from pyroute2 import IPRoute

from provisioning import control, netns, processes
from provisioning.errors import ProvisioningError
from provisioning.nodes import agents
from provisioning.nodes import ipsec as ipsec_keys
from provisioning.offloads import enable_gro, set_offloads_off
from provisioning.topology import (
    HOME_ADDRESS,
    HOME_AGENT,
    HOME_PREFIX,
    SWITCH,
    namespace,
)

MOBILE_NETWORK_PREFIX = IPv6Network("2001:db8:6:100::/64")
VMN = "vmn"
VMN_HOME_ADDRESS = IPv6Address("2001:db8:6::2000")
MNET_BRIDGE = "br-mnet"
# (node, interface, switch port, keeps offloads in lite mode, owned by an agent)
MNET_PORTS = (
    ("guest", "eth1", "p-gmnet", False, True),
    ("host", "eth0", "p-host", True, False),
    (VMN, "eth0", "p-vmn", False, True),
)
# hoa0 of vmn: 1500 - 2 x 40 (its tunnel inside the mobile router's). With ESP on both
# tunnels (Fig. 21 twice) a packet grows by 2 x (40 + 40 + 37) = 234 octets, which leaves
# 1266, below IPv6's minimum MTU: hoa0 keeps 1280 and vmn's routes to the bed advertise a
# TCP MSS that fits (1266 - 60 header octets - 12 for TCP timestamps, rounded down).
VMN_TUN_MTU = 1420
VMN_TUN_MTU_IPSEC = 1280
VMN_ADVMSS_IPSEC = 1180
BED_PREFIX = IPv6Network("2001:db8::/32")


def is_host_link(node: str, ifname: str) -> bool:
    """The guest-host veth of the plain bed, replaced by the mobile network bridge."""
    return (node, ifname) == ("guest", "eth1")


# With the VM guest, its eth1 TAP becomes this switch port (provisioning/vm/bed.py).
VM_HOST_LINK = ("p-gmnet", MNET_BRIDGE)


def build(prefix: str, *, lite: bool, guest_port: bool = True) -> None:
    """The mobile network bridge, its ports, the vmn namespace, the core's route.
    `guest_port=False`: the VM's TAP takes the guest's port later (VM_HOST_LINK)."""
    sw = namespace(prefix, SWITCH)
    vmn = namespace(prefix, VMN)
    netns.create(vmn)
    for scope in ("all", "default"):
        netns.write_sysctl(vmn, f"ipv6/conf/{scope}/accept_dad", 0)
    with IPRoute(netns=vmn) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    with IPRoute(netns=sw) as ipr:
        ipr.link("add", ifname=MNET_BRIDGE, kind="bridge", br_mcast_snooping=0,
                 br_forward_delay=0, br_stp_state=0)
        bridge = ipr.link_lookup(ifname=MNET_BRIDGE)[0]
        ipr.link("set", index=bridge, state="up")
    for node, ifname, port, keeps, owned in MNET_PORTS:
        if node == "guest" and not guest_port:
            continue
        ns = namespace(prefix, node)
        with IPRoute(netns=ns) as ipr:
            ipr.link("add", ifname=ifname, kind="veth", peer={"ifname": port, "net_ns_fd": sw})
        if not (lite and keeps):
            set_offloads_off(ns, ifname)
        if not (lite and (keeps or node == "guest")):
            set_offloads_off(sw, port)
        if lite and node == "guest":
            enable_gro(ns, ifname)  # as on the plain bed's host link (topology.GRO_ENDS)
        if owned:
            netns.write_sysctl(ns, f"ipv6/conf/{ifname}/disable_ipv6", 1)
        with IPRoute(netns=sw) as ipr:
            index = ipr.link_lookup(ifname=port)[0]
            ipr.link("set", index=index, master=ipr.link_lookup(ifname=MNET_BRIDGE)[0])
            ipr.link("set", index=index, state="up")
        with IPRoute(netns=ns) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], state="up")
    with IPRoute(netns=namespace(prefix, "core")) as ipr:
        ipr.route("add", dst=str(MOBILE_NETWORK_PREFIX), gateway=str(HOME_AGENT), family=10)


def write_configs(state_dir: str, *, ipsec: bool = False) -> None:
    """[nemo] for the guest (mobile router) and the HA (prefix table); vmn.toml."""
    with open(agents.config_path(state_dir, agents.GUEST), "a") as f:
        f.write(f'\n[nemo]\nprefixes = ["{MOBILE_NETWORK_PREFIX}"]\n')
    _update_ha_config(state_dir, "nemo", {"mobile_routers": [
        {"home_address": str(HOME_ADDRESS), "prefixes": [str(MOBILE_NETWORK_PREFIX)]}]})
    tables: dict[str, dict[str, agents.TomlValue]] = {
        "node": {"name": VMN, "state_dir": state_dir,
                 "control_socket": agents.socket_path(state_dir, VMN)},
        "link": {"interface": "eth0"},
        "mobility": {"home_address": str(VMN_HOME_ADDRESS), "home_agent": str(HOME_AGENT),
                     "home_prefix": str(HOME_PREFIX)},
        "tun": {"name": "hoa0", "mtu": VMN_TUN_MTU_IPSEC if ipsec else VMN_TUN_MTU},
        "host_link": {"interface": ""},
    }
    with open(agents.config_path(state_dir, VMN), "w") as f:
        f.write(agents.render_toml(tables))


def _update_ha_config(state_dir: str, table: str, keys: dict[str, Any]) -> None:
    path = agents.config_path(state_dir, agents.HOME_AGENT_NODE)
    with open(path, "rb") as f:
        config = tomllib.load(f)
    config.setdefault(table, {}).update(keys)
    with open(path, "w") as f:
        f.write(agents.render_toml(config))


def start_vmn(state_dir: str, prefix: str, *, ipsec: bool = False) -> None:
    socket = agents.socket_path(state_dir, VMN)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket)
    log = os.path.join(state_dir, f"{VMN}.log")
    processes.start(state_dir, processes.ProcessSpec(
        name=VMN, namespace=namespace(prefix, VMN),
        argv=[sys.executable, "-m", "guest_agent", "--config",
              agents.config_path(state_dir, VMN)],
        log=log,
    ))
    try:
        control.wait_for_ping(socket, agents.SOCKET_WAIT)
    except Exception:
        raise ProvisioningError(f"vmn agent did not start; log {log}: "
                                f"{processes.log_tail(log)}") from None
    if ipsec:
        with IPRoute(netns=namespace(prefix, VMN)) as ipr:
            ipr.route("add", dst=str(BED_PREFIX), oif=ipr.link_lookup(ifname="hoa0")[0],
                      family=10, metrics={"RTAX_ADVMSS": VMN_ADVMSS_IPSEC})


VMN_MOBILITY_KEYS = ipsec_keys.VMN_MOBILITY_KEYS
HA_NESTED_KEYS = "ha-nested.keys.toml"
VMN_SPI_OFFSET = 0x100  # vmn's SAs: 0x1101.. next to the mobile router's 0x1001..


def _for_vmn(config: dict[str, Any]) -> dict[str, Any]:
    """vmn's copy of a mobility key config: its own SA and policy names and SPIs."""
    sas = [{**sa, "name": f"vmn-{sa['name']}", "spi": sa["spi"] + VMN_SPI_OFFSET}
           for sa in config["sa"]]
    policies = [{**p, "name": f"vmn-{p['name']}", **({"sa": f"vmn-{p['sa']}"} if "sa" in p else {})}
                for p in config["policy"]]
    return {"sa": sas, "policy": policies}


def _pin_tunnel_policies(ha_config: dict[str, Any], home_address: IPv6Address) -> None:
    """The HA's tunnel policies name the node's home address on the care-of side, so the
    HA moves them to each binding's care-of address (network/home_agent/ipsec.py)."""
    for policy in ha_config["policy"]:
        if policy.get("protocol") == "ipv6":  # Fig. 21: the IPv6-in-IPv6 tunnel
            side = "src" if policy["direction"] == "in" else "dst"
            policy[side] = f"{home_address}/128"


def _mobile_network_policies(guest: dict[str, Any], ha: dict[str, Any]) -> None:
    """Fig. 22 selects by the inner packet's effective addresses: the prefix's packets, and
    nested nodes' (their Home Address option / type 2 routing header name home addresses),
    travel in the mobile router's tunnel SAs too (RFC 3963 5.5). So the router's SAs also
    take whatever else crosses its tunnel (priority 30, after the home address's policies);
    at the HA they sit in a processor of their own (the nested nodes' are in the second)."""
    guest["policy"] += [
        {"name": "mnet-to-ha", "direction": "out", "action": "protect", "priority": 30,
         "src": "::/0", "dst": "::/0", "sa": "mn-ha-tunnel"},
        {"name": "mnet-from-ha", "direction": "in", "action": "protect", "priority": 30,
         "src": "::/0", "dst": "::/0", "sa": "ha-mn-tunnel"},
    ]
    ha["policy"] += [
        {"name": "mnet-from-mr", "direction": "in", "action": "protect", "priority": 30,
         "src": "::/0", "dst": "::/0", "sa": "mn-ha-tunnel"},
        {"name": "mnet-to-mr", "direction": "out", "action": "protect", "priority": 30,
         "src": "::/0", "dst": "::/0", "sa": "ha-mn-tunnel"},
    ]


def write_ipsec(state_dir: str, options: ipsec_keys.IpsecOptions) -> None:
    """MN-HA keys for the mobile router and vmn (the HA holds both); vmn.toml's [ipsec]."""
    if not options.mobility:
        return
    guest, ha = ipsec_keys.mobility_key_configs(options)
    if options.tunnel == ipsec_keys.TUNNEL_ESP_ONLY:
        _mobile_network_policies(guest, ha)
    vmn, ha_vmn = (_for_vmn(c) for c in ipsec_keys.mobility_key_configs(
        options, home_address=VMN_HOME_ADDRESS))
    _pin_tunnel_policies(ha, HOME_ADDRESS)
    _pin_tunnel_policies(ha_vmn, VMN_HOME_ADDRESS)
    # The HA runs vmn's SAs in a second, independent processor (network/home_agent/nesting.py).
    for name, config in ((ipsec_keys.GUEST_MOBILITY_KEYS, guest), (ipsec_keys.HA_KEYS, ha),
                         (HA_NESTED_KEYS, ha_vmn), (VMN_MOBILITY_KEYS, vmn)):
        ipsec_keys.write_key_file(os.path.join(state_dir, name), config)
    _update_ha_config(state_dir, "ipsec",
                      {"nested_key_file": os.path.join(state_dir, HA_NESTED_KEYS)})
    section = {"signalling": options.signalling, "tunnel": options.tunnel,
               "require_protection": options.signalling,
               "key_file": os.path.join(state_dir, VMN_MOBILITY_KEYS)}
    with open(agents.config_path(state_dir, VMN), "a") as f:
        f.write("\n" + agents.render_toml({"ipsec": section}))


MNP_COLUMNS = ("prefix", "state", "mode", "packets_out", "packets_in", "bytes_out", "bytes_in")
PREFIX_TABLE_COLUMNS = ("home_address", "prefix", "registered", "care_of_address")


def status_tables(merged: dict[str, Any]) -> list[tuple[str, tuple[str, ...], list[dict[str, Any]]]]:
    """(title, columns, rows) for `mip6term status`: the MR's prefixes, the HA's prefix table."""
    tables = []
    guest, ha = merged.get("guest") or {}, merged.get("ha") or {}
    if isinstance(guest, dict) and guest.get("mobile_network_prefixes"):
        zero = dict.fromkeys(MNP_COLUMNS[3:], 0)
        rows = [{**row, **zero, **row.get("counters", {})} for row in guest["mobile_network_prefixes"]]
        tables.append(("Mobile network prefixes (mobile router)", MNP_COLUMNS, rows))
    if isinstance(ha, dict) and ha.get("prefix_table"):
        tables.append(("Prefix table (home agent)", PREFIX_TABLE_COLUMNS, ha["prefix_table"]))
    return tables
