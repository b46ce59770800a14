"""The resolver at home: dnsmasq in the `dns` node (2001:db8:6::53 on br-home).

Its zone is what issue 3's tests need: `cn.example` has ONLY an AAAA record (so an IPv4
application can reach it only through the agent's DNS64-like answer from the pool), and
cn1.example .. cn5.example name the CN's five addresses. No upstream (`no-resolv`), no
/etc/hosts, names under example. that are not in the zone get NXDOMAIN (`local=/example/`).
"""

from __future__ import annotations

import os
from ipaddress import IPv6Address

from provisioning import processes
from provisioning.topology import CN_ADDRESS, CN_EXTRA_ADDRESSES, DNS_ADDRESS

GW_ADDRESS = IPv6Address("2001:db8:8::3128")  # issue 13: provisioning.nodes.gateway's address

DNS_NODE = "dns"
DNSMASQ = "/usr/sbin/dnsmasq"
ZONE_DOMAIN = "example"


def zone() -> dict[str, IPv6Address]:
    """Name -> its only (AAAA) address."""
    from provisioning.nodes.sip import SIP_ADDRESS, SIP_DOMAIN

    records = {f"cn.{ZONE_DOMAIN}": CN_ADDRESS, SIP_DOMAIN: SIP_ADDRESS,  # issue 12
               f"gw.{ZONE_DOMAIN}": GW_ADDRESS}  # issue 13: the TLS gateway (--tls-gateway)
    for i, address in enumerate((CN_ADDRESS, *CN_EXTRA_ADDRESSES), start=1):
        records[f"cn{i}.{ZONE_DOMAIN}"] = address
    return records


def config_path(state_dir: str) -> str:
    return os.path.join(state_dir, "dnsmasq.conf")


def log_path(state_dir: str) -> str:
    return os.path.join(state_dir, "dnsmasq.log")


def render_config(state_dir: str, listen: IPv6Address = DNS_ADDRESS) -> str:
    lines = [
        "# mip6term test bed: the resolver at home (issue 3)",
        "no-resolv",  # no upstream: the answers come from this zone only
        "no-hosts",
        "bind-interfaces",
        f"listen-address={listen}",
        "port=53",
        f"local=/{ZONE_DOMAIN}/",
        *(f"host-record={name},{address}" for name, address in zone().items()),
        "local-ttl=60",  # dnsmasq answers its own records with TTL 0 otherwise
        "log-queries",
        f"log-facility={log_path(state_dir)}",
        "pid-file=",  # the default /run/dnsmasq.pid would be shared by every bed
        "user=root",  # keep access to the log in the state dir
    ]
    return "\n".join(lines) + "\n"


def start(state_dir: str, namespace: str) -> None:
    path = config_path(state_dir)
    with open(path, "w") as f:
        f.write(render_config(state_dir))
    processes.start(state_dir, processes.ProcessSpec(
        name="dnsmasq", namespace=namespace,
        argv=[DNSMASQ, "--keep-in-foreground", f"--conf-file={path}"],
        log=os.path.join(state_dir, "dnsmasq.out"),
    ))
    processes.ensure_running(state_dir, "dnsmasq")
