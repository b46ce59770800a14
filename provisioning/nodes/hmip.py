"""`testbed up --hmip`: the MAP domain of patent Fig. 27 added to the Fig. 1 bed.

Builds the extra namespaces and links (topology.HMIP), runs our router advertisement daemon
(network.router, MAP option) on ar-a and ar-b in place of radvd, radvd on ar-c, the MAP daemon
(network.map), and switches the guest's [hmip] section on (tunnel MTUs 40 octets smaller for
the nested LCoA <-> MAP tunnel).
"""

from __future__ import annotations

import os
import secrets
import sys
import tomllib
from typing import Any

from netstack.ipsec.sa import TRANSPORT
from provisioning import processes, radvd
from provisioning.nodes.agents import config_path, render_toml, socket_path, wait_ready
from provisioning.nodes.ipsec import (
    CBC_KEY_BYTES,
    GUEST_MOBILITY_KEYS,
    HA_KEYS,
    HMAC_KEY_BYTES,
    IpsecOptions,
    _policy,
    _sa,
    write_key_file,
)
from provisioning.topology import (
    HMIP,
    HMIP_BRIDGES,
    HMIP_NODES,
    HMIP_RADVD_INTERFACES,
    HMIP_ROUTERS,
    HOME_AGENT,
    MAP_ACCESS_ROUTERS,
    MAP_ADDRESS,
    MAP_LINK,
    MAP_LINK_ROUTER,
    MAP_NODE,
    SWITCH,
    namespace,
)

MAP_MODULE = "network.map"
ROUTER_MODULE = "network.router"
NESTED_TUNNEL_OVERHEAD = 40
MIN_TUN_MTU = 1300
MIN_HOST_MTU = 1280
REGISTRATION_TYPES = (1, 2, 3)
MAP_KEYS = "map.keys.toml"
MN_MAP_SPI = 0x1005  # MN -> MAP local BU (the MN-HA SAs are 0x1001-0x1004)
MAP_MN_SPI = 0x1006  # MAP -> MN local BA


def router_node(ar: str) -> str:
    """Process/socket name of the RA daemon on access router `ar`."""
    return f"router-{ar}"


def build(prefix: str, lite: bool) -> None:
    """Namespaces, bridges, veths, addresses and routes of topology.HMIP."""
    from pyroute2 import IPRoute

    from provisioning import testbed as tb

    sw = namespace(prefix, SWITCH)
    with IPRoute(netns=sw) as ipr:
        for bridge in HMIP_BRIDGES.values():
            ipr.link("add", ifname=bridge, kind="bridge", br_mcast_snooping=0,
                     br_forward_delay=0, br_stp_state=0)
            ipr.link("set", index=tb._link_index(ipr, bridge), state="up")
    for node in HMIP_NODES:
        tb._prepare_namespace(namespace(prefix, node), router=node in HMIP_ROUTERS)
    tb._build_links(prefix, topology=HMIP)
    tb._add_routes(prefix, topology=HMIP)


def router_config(sdir: str, ar: str) -> dict[str, dict[str, Any]]:
    ifname, advertised = MAP_ACCESS_ROUTERS[ar]
    name = router_node(ar)
    return {
        "node": {"name": name, "state_dir": sdir, "control_socket": socket_path(sdir, name)},
        "link": {"interface": ifname},
        # radvd's intervals in the bed (provisioning.radvd), so handovers compare fairly
        "router": {"prefixes": [str(advertised)], "min_interval": str(radvd.MIN_RTR_ADV_INTERVAL),
                   "max_interval": str(radvd.MAX_RTR_ADV_INTERVAL), "advertisement_interval": True},
        "map": {"address": str(MAP_ADDRESS), "distance": 1, "preference": 10,
                "valid_lifetime": 3600},
    }


def map_config(sdir: str, ipsec: IpsecOptions | None = None) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {
        "node": {"name": MAP_NODE, "state_dir": sdir,
                 "control_socket": socket_path(sdir, MAP_NODE)},
        "link": {"interface": "eth0"},
        "map": {"address": str(MAP_ADDRESS), "prefix": str(MAP_LINK),
                "default_router": str(MAP_LINK_ROUTER)},
    }
    if ipsec is not None and ipsec.signalling:
        tables["ipsec"] = {"signalling": True, "require_protection": True,
                           "key_file": os.path.join(sdir, MAP_KEYS)}
    return tables


def map_key_configs(random: Any = secrets.token_bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(SAs/policies the guest adds, the MAP's key config): ESP transport mode on the local
    BU/BA, like the MN-HA signalling SAs (RFC 3776). The RCoA is not known when keys are
    made (it carries the guest's interface identifier), so the selectors name the MAP's
    prefix; they use the effective addresses (RCoA from the HAO / type 2 RH)."""
    bu_key, bu_auth = random(CBC_KEY_BYTES), random(HMAC_KEY_BYTES)
    ba_key, ba_auth = random(CBC_KEY_BYTES), random(HMAC_KEY_BYTES)
    rcoas, map_host = str(MAP_LINK), f"{MAP_ADDRESS}/128"
    guest: dict[str, Any] = {"sa": [], "policy": []}
    mapc: dict[str, Any] = {"sa": [], "policy": []}
    for cfg, out_dir, in_dir in ((guest, "out", "in"), (mapc, "in", "out")):
        cfg["sa"] += [
            _sa("mn-map-signalling", out_dir, MN_MAP_SPI, bu_key, TRANSPORT, MAP_LINK[0],
                MAP_ADDRESS, bu_auth),
            _sa("map-mn-signalling", in_dir, MAP_MN_SPI, ba_key, TRANSPORT, MAP_ADDRESS,
                MAP_LINK[0], ba_auth),
        ]
    guest["policy"] += [
        _policy("local-bu-to-map", "out", "protect", sa="mn-map-signalling", priority=11,
                src=rcoas, dst=map_host, mh_type=5),
        _policy("local-ba-from-map", "in", "protect", sa="map-mn-signalling", priority=11,
                src=map_host, dst=rcoas, mh_type=6),
    ]
    mapc["policy"] += [
        _policy("local-bu-from-mn", "in", "protect", sa="mn-map-signalling", priority=10,
                src=rcoas, dst=map_host, mh_type=5),
        _policy("local-ba-to-mn", "out", "protect", sa="map-mn-signalling", priority=10,
                src=map_host, dst=rcoas, mh_type=6),
        # everything else the MAP forwards or tunnels is no business of this SPD
        _policy("other-out", "out", "bypass", priority=100),
        _policy("other-in", "in", "bypass", priority=100),
    ]
    return guest, mapc


def type3_policies() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(guest, HA) policies for registration type 3: its home BU names the RCoA in the HAO,
    so the MN-HA signalling SA must also cover BUs from the MAP's prefix to the HA."""
    rcoas, ha = str(MAP_LINK), f"{HOME_AGENT}/128"
    return (
        [_policy("home-bu-type3", "out", "protect", sa="mn-ha-signalling", priority=12,
                 src=rcoas, dst=ha, mh_type=5)],
        [_policy("home-bu-type3", "in", "protect", sa="mn-ha-signalling", priority=12,
                 src=rcoas, dst=ha, mh_type=5)],
    )


def _append(path: str, extra: dict[str, list[dict[str, Any]]]) -> None:
    with open(path, "rb") as f:
        existing = tomllib.load(f)
    write_key_file(path, {table: [*existing.get(table, []), *extra.get(table, [])]
                          for table in ("sa", "policy")})


def write_map_keys(sdir: str) -> None:
    """The MAP's key file; the MN-MAP SAs (and the type 3 policies) added to the guest's and
    the HA's mobility key files."""
    guest, mapc = map_key_configs()
    write_key_file(os.path.join(sdir, MAP_KEYS), mapc)
    guest_type3, ha_type3 = type3_policies()
    _append(os.path.join(sdir, GUEST_MOBILITY_KEYS),
            {"sa": guest["sa"], "policy": guest["policy"] + guest_type3})
    _append(os.path.join(sdir, HA_KEYS), {"policy": ha_type3})


def _write(path: str, tables: dict[str, dict[str, Any]]) -> None:
    text = render_toml(tables)
    # render_toml writes no floats: the intervals travel as strings, unquoted here
    for key in ("min_interval", "max_interval"):
        value = tables.get("router", {}).get(key)
        if value is not None:
            text = text.replace(f'{key} = "{value}"', f"{key} = {value}")
    with open(path, "w") as f:
        f.write(text)


def _spec(sdir: str, name: str, module: str, ns: str) -> processes.ProcessSpec:
    return processes.ProcessSpec(
        name=name, namespace=ns,
        argv=[sys.executable, "-m", module, "--config", config_path(sdir, name)],
        log=os.path.join(sdir, f"{name}.log"),
    )


def start(prefix: str, sdir: str, ipsec: IpsecOptions | None = None) -> None:
    """radvd on ar-c, our RA daemon on ar-a/ar-b, the MAP; waits until each answers.
    With `--ipsec signalling` the local BU/BA are ESP-protected (manual MN-MAP SAs)."""
    if ipsec is not None and ipsec.signalling:
        write_map_keys(sdir)
    for node, (ifname, adv_prefix) in HMIP_RADVD_INTERFACES.items():
        p = radvd.paths(sdir, node)
        with open(p.config, "w") as f:
            f.write(radvd.render_config(ifname, adv_prefix))
        os.chmod(p.config, 0o644)
        processes.start(sdir, processes.ProcessSpec(
            name=f"radvd-{node}", namespace=namespace(prefix, node), argv=radvd.command(p),
            log=os.path.join(sdir, f"radvd-{node}.out")))
    _write(config_path(sdir, MAP_NODE), map_config(sdir, ipsec))
    processes.start(sdir, _spec(sdir, MAP_NODE, MAP_MODULE, namespace(prefix, MAP_NODE)))
    for ar in MAP_ACCESS_ROUTERS:
        name = router_node(ar)
        _write(config_path(sdir, name), router_config(sdir, ar))
        processes.start(sdir, _spec(sdir, name, ROUTER_MODULE, namespace(prefix, ar)))
    for name in (MAP_NODE, *(router_node(ar) for ar in MAP_ACCESS_ROUTERS)):
        wait_ready(sdir, name)


def enable_in_guest_config(sdir: str, registration_type: int = 1) -> None:
    """[hmip] on in the guest's config, tunnel MTUs smaller by the nested outer header."""
    if registration_type not in REGISTRATION_TYPES:
        from provisioning.errors import ProvisioningError

        raise ProvisioningError("--hmip-type must be 1, 2 or 3")
    path = config_path(sdir, "guest")
    with open(path, "rb") as f:
        tables = tomllib.load(f)
    already = tables.get("hmip", {}).get("enabled", False)
    tables["hmip"] = {"enabled": True, "registration_type": registration_type}
    if not already:
        # With every IPsec layer on: 1500 - 3 x 40 (outer, MN-HA, MN-MAP) - 2 x 37 (ESP) =
        # 1306, so 1300 for hoa0 and 1280 (the host shim's floor) for the IPv4 host link.
        tun = tables.setdefault("tun", {})
        tun["mtu"] = max(MIN_TUN_MTU, int(tun.get("mtu", 1460)) - NESTED_TUNNEL_OVERHEAD)
        if "host_link" in tables:
            host_link = tables["host_link"]
            host_link["host_mtu"] = max(MIN_HOST_MTU, int(host_link.get("host_mtu", 1440))
                                        - NESTED_TUNNEL_OVERHEAD)
    with open(path, "w") as f:
        f.write(render_toml(tables))
