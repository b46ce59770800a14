"""The TLS gateway of patent E8 (Fig. 38) in the test bed: `testbed up --tls-gateway` (issue 13).

- `gw` node: Squid (Debian `squid-openssl`) with an `https_port` on 2001:db8:8::3128 port 3128
  (certificate `gw.example` from the bed's test CA; it requires a client certificate from the
  same CA: the terminal's `mn.example`), a forward proxy that accepts only HTTP CONNECT to
  ports 443/8443 and only from the home prefix, no cache, `pinger_enable off`,
  destinations from its own hosts file (names of the home zone). Its pid, logs and spool live
  in <state_dir>/gw/ (owned by Squid's unprivileged user `proxy`).
- The `gw` link: a veth core:gw0 <-> gw:eth0. The gateway sits in the CN's /64 with a /128
  (core routes 2001:db8:8::3128/128 onto gw0 and answers ND for it on the CN link), so the CN
  link itself is unchanged.
- The CN serves HTTPS (`cn.example`, network/correspondent/https_server.py) on ports 443 and
  8443 (through the gateway) and 4443 (outside the policy: direct through the tunnel) from
  the same web root as its HTTP server.
"""

from __future__ import annotations

import os
import pwd
import sys

from provisioning import processes
from provisioning.nodes import stub_node, tls_ca
from provisioning.nodes.dns import GW_ADDRESS, zone
from provisioning.topology import CN_ADDRESS, HOME_ADDRESS, namespace

GW_NODE = "gw"
GW_NAME = "gw.example"
CN_NAME = "cn.example"
TERMINAL_NAME = "mn.example"  # the guest's client certificate: Squid admits only the CA's
GW_PORT = 3128
CONNECT_PORTS = (443, 8443)
# The CN's HTTPS also on a port outside the policy: the direct path (through the MN-HA tunnel,
# no gateway) that benchmarks/tls_gateway.py measures as the reference in the same bed.
DIRECT_HTTPS_PORT = 4443
CORE_GW_IFNAME = "gw0"  # not ethN: other flags add core interfaces (--hmip: eth4, eth5)
CORE_LINK_LOCAL = "fe80::1"
SQUID = "/usr/sbin/squid"
SQUID_USER = "proxy"


def gw_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "gw")


def squid_config_path(state_dir: str) -> str:
    return os.path.join(gw_dir(state_dir), "squid.conf")


def access_log_path(state_dir: str) -> str:
    return os.path.join(gw_dir(state_dir), "access.log")


def service_name(prefix: str) -> str:
    """Squid's -n service name: keeps shared-memory and IPC names apart between beds."""
    return f"mip6term{prefix}"


def render_squid_config(state_dir: str, home_prefix: str = "2001:db8:6::/64") -> str:
    d = gw_dir(state_dir)
    certificate = tls_ca.server_files(state_dir, GW_NAME)
    ports = " ".join(str(p) for p in CONNECT_PORTS)
    lines = [
        "# mip6term test bed: the TLS gateway of patent E8 (issue 13)",
        f"https_port [{GW_ADDRESS}]:{GW_PORT} tls-cert={certificate.certificate} "
        f"tls-key={certificate.key} clientca={tls_ca.ca_certificate_path(state_dir)}",
        f"acl home src {home_prefix}",
        f"acl tunnel_ports port {ports}",
        "acl CONNECT method CONNECT",
        "http_access deny !CONNECT",
        "http_access deny !tunnel_ports",
        "http_access allow home",
        "http_access deny all",
        "cache deny all",
        "cache_mem 0 MB",
        "memory_cache_shared off",
        "pinger_enable off",
        "netdb_filename none",
        "via off",
        "forwarded_for delete",
        f"visible_hostname {GW_NAME}",
        f"hosts_file {os.path.join(d, 'hosts')}",
        "dns_nameservers ::1",  # never asked: every name the bed uses is in the hosts file
        f"pid_filename {os.path.join(d, 'squid.pid')}",
        f"cache_log {os.path.join(d, 'cache.log')}",
        f"access_log stdio:{access_log_path(state_dir)}",
        "cache_store_log none",
        f"coredump_dir {d}",
        f"cache_effective_user {SQUID_USER}",
        "logfile_rotate 0",
        "shutdown_lifetime 0 seconds",  # `testbed down` and the tests' gateway-down step
        "connect_timeout 5 seconds",
        "read_timeout 15 minutes",
        "client_persistent_connections off",
    ]
    return "\n".join(lines) + "\n"


def render_hosts() -> str:
    return "".join(f"{address} {name}\n" for name, address in zone().items())


def build_node(prefix: str) -> None:
    """The gw namespace, its link to the core router and the routes to and from it."""
    stub_node.build(prefix, GW_NODE, GW_ADDRESS, CORE_GW_IFNAME, CORE_LINK_LOCAL)


def create_certificates(state_dir: str) -> str:
    """The test CA, gw.example's and cn.example's certificates; returns the CA's path."""
    owner = pwd.getpwnam(SQUID_USER)
    return tls_ca.create(state_dir, {GW_NAME: GW_ADDRESS, CN_NAME: CN_ADDRESS},
                         key_owner=(0, owner.pw_gid), clients={TERMINAL_NAME: HOME_ADDRESS})


def start_squid(state_dir: str, prefix: str) -> None:
    d = gw_dir(state_dir)
    os.makedirs(d, exist_ok=True)
    owner = pwd.getpwnam(SQUID_USER)
    os.chown(d, owner.pw_uid, owner.pw_gid)
    with open(os.path.join(d, "hosts"), "w") as f:
        f.write(render_hosts())
    with open(squid_config_path(state_dir), "w") as f:
        f.write(render_squid_config(state_dir))
    processes.start(state_dir, squid_spec(state_dir, prefix))
    processes.ensure_running(state_dir, "squid", settle=1.0)


def squid_spec(state_dir: str, prefix: str) -> processes.ProcessSpec:
    return processes.ProcessSpec(
        name="squid", namespace=namespace(prefix, GW_NODE),
        # -N: no daemon, no SMP kids, so the pid we record is Squid itself
        argv=[SQUID, "-N", "-n", service_name(prefix), "-f", squid_config_path(state_dir)],
        log=os.path.join(gw_dir(state_dir), "squid.out"),
    )


def start_cn_https(state_dir: str, prefix: str) -> None:
    files = tls_ca.server_files(state_dir, CN_NAME)
    web_root = os.path.join(state_dir, "www")  # written by cn.start_services
    processes.start(state_dir, processes.ProcessSpec(
        name="cn-https", namespace=namespace(prefix, "cn"),
        argv=[sys.executable, "-m", "network.correspondent.https_server", "--bind",
              str(CN_ADDRESS), "--ports", ",".join(str(p) for p in (*CONNECT_PORTS, DIRECT_HTTPS_PORT)),
              "--cert", files.certificate, "--key", files.key, "--directory", web_root],
        log=os.path.join(state_dir, "cn-https.log"), cwd=web_root,
    ))
    processes.ensure_running(state_dir, "cn-https")


def start(state_dir: str, prefix: str) -> None:
    """Everything `--tls-gateway` adds, after the base bed (CN web root, resolver) is up."""
    build_node(prefix)
    create_certificates(state_dir)
    start_cn_https(state_dir, prefix)
    start_squid(state_dir, prefix)


def guest_tables(state_dir: str) -> dict[str, dict[str, object]]:
    """The guest agent's [tls_gateway] table for this bed."""
    terminal = tls_ca.server_files(state_dir, TERMINAL_NAME)
    return {"tls_gateway": {
        "enabled": True, "name": GW_NAME, "address": str(GW_ADDRESS), "port": GW_PORT,
        "ca_file": tls_ca.ca_certificate_path(state_dir),
        "client_cert": terminal.certificate, "client_key": terminal.key,
        "keylog_file": keylog_path(state_dir),
        "ports": list(CONNECT_PORTS),
    }}


def keylog_path(state_dir: str) -> str:
    """SSLKEYLOGFILE of the guest's outer sessions (`testbed keys --tls-keylog`)."""
    return os.path.join(state_dir, "tls-keylog.txt")
