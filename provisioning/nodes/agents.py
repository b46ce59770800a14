"""Guest agent (MN, lite mode) and home agent daemons: TOML configs and launch."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from provisioning import control, processes
from provisioning.errors import ProvisioningError
from provisioning.nodes.ipsec import IpsecOptions
from provisioning.nodes.ipsec import apply_to_config as apply_ipsec_config
from provisioning.topology import DNS_ADDRESS, HOME_ADDRESS, HOME_AGENT, HOME_PREFIX

GUEST = "guest"
HOME_AGENT_NODE = "ha"
AGENT_MODULES = {GUEST: "guest_agent", HOME_AGENT_NODE: "network.home_agent"}
SOCKET_WAIT = 15.0
# The home agent's DAD for a home address it has no binding for (RFC 6275 10.3.1) waits one
# RetransTimer (RFC 4862 5.4): 50 ms on the bed's home link, where an answer takes < 1 ms.
# Only the HA's own DAD timer: advertising it link-wide (radvd AdvRetransTimer) also sets the
# core router's kernel retrans_time_ms (its NS came 54 ms apart), so 3 x 50 ms NUD probes to a
# busy userspace HA can fail on a loaded machine: measured, handovers got slower, not faster.
PROXY_DAD_RETRANS_TIMER = 0.05

TomlValue = str | int | float | bool | Sequence[Any] | Mapping[str, Any]


def _toml_value(value: TomlValue) -> str:
    if isinstance(value, Mapping):  # an inline table (e.g. ha.toml's [nemo] mobile routers)
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def render_toml(tables: Mapping[str, Mapping[str, TomlValue]]) -> str:
    """A TOML document of flat tables (all our configs need; no tomli_w dependency)."""
    out = []
    for table, keys in tables.items():
        out.append(f"[{table}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
        out.append("")
    return "\n".join(out)


def socket_path(state_dir: str, node: str) -> str:
    return os.path.join(state_dir, f"{node}.sock")


def config_path(state_dir: str, node: str) -> str:
    return os.path.join(state_dir, f"{node}.toml")


@dataclass(frozen=True)
class TranslationOptions:
    """Issue 3: the guest's virtual IPv4 pool (table 230) on virtual network 15 (eth1)."""

    pool: str = "198.18.0.0/24"  # RFC 2544 benchmarking range: no clash with real LANs
    idle_timeout: int = 300
    prefix64: str = "64:ff9b::/96"

    def addresses(self) -> tuple[IPv4Network, IPv4Address, IPv4Address]:
        """(pool, gateway = first host, home IPv4 = second host); checks there is room."""
        try:
            pool = IPv4Network(self.pool)
        except ValueError as exc:
            raise ProvisioningError(f"invalid --pool {self.pool!r}: {exc}") from None
        if pool.prefixlen > 29:
            raise ProvisioningError(f"--pool {pool} is too small: network, broadcast, gateway "
                                    "and home address leave no dynamic address (use /29 or larger)")
        if self.idle_timeout <= 0:
            raise ProvisioningError("--idle-timeout must be positive")
        return pool, pool.network_address + 1, pool.network_address + 2


def host_link_tables(options: TranslationOptions) -> dict[str, dict[str, TomlValue]]:
    pool, gateway, home_ipv4 = options.addresses()
    return {
        "host_link": {"interface": "eth1"},
        "translation": {"enabled": True, "pool": str(pool), "home_ipv4": str(home_ipv4),
                        "gateway_ipv4": str(gateway), "idle_timeout": options.idle_timeout,
                        "prefix64": options.prefix64},
        "dns": {"upstream": [str(DNS_ADDRESS)]},
    }


def _sections_the_agent_reads() -> set[str] | None:
    """Top-level tables guest_agent's config accepts (it rejects unknown ones), or None."""
    try:
        from guest_agent.config import AgentConfig
    except ImportError:
        return None
    return {f.name for f in dataclasses.fields(AgentConfig)}


def guest_config(state_dir: str, translation: TranslationOptions | None = None
                 ) -> dict[str, dict[str, TomlValue]]:
    tables: dict[str, dict[str, TomlValue]] = {
        "node": {"state_dir": state_dir, "control_socket": socket_path(state_dir, GUEST)},
        "link": {"interface": "eth0"},
        "mobility": {"home_address": str(HOME_ADDRESS), "home_agent": str(HOME_AGENT),
                     "home_prefix": str(HOME_PREFIX)},
        "tun": {"name": "hoa0"},
    }
    tables.update(host_link_tables(translation or TranslationOptions()))
    accepted = _sections_the_agent_reads()
    if accepted is not None:  # an agent without issue 3 must still start
        tables = {k: v for k, v in tables.items() if k in accepted}
    return tables


def home_agent_config(state_dir: str, *, refuse_home_address: bool = False) -> dict[str, dict[str, TomlValue]]:
    return {
        "node": {"state_dir": state_dir,
                 "control_socket": socket_path(state_dir, HOME_AGENT_NODE)},
        "link": {"interface": "eth0"},
        "home_agent": {"address": str(HOME_AGENT), "home_prefix": str(HOME_PREFIX),
                       "interface": "eth0",
                       "dad_retrans_timer": PROXY_DAD_RETRANS_TIMER,
                       "refused_home_addresses": [str(HOME_ADDRESS)] if refuse_home_address else []},
    }


def write_configs(state_dir: str, *, refuse_home_address: bool = False,
                  translation: TranslationOptions | None = None,
                  ipsec: IpsecOptions | None = None, offloads: bool = False,
                  guest_extra: Mapping[str, Mapping[str, TomlValue]] | None = None,
                  route_optimisation: bool = False, fastpath: bool = True,
                  super_frames: bool = False) -> None:
    """Both agents' config files. `offloads`: the agents read their links with
    PACKET_VNET_HDR, so the bed's veths may keep TSO/GRO (topology.OFFLOAD_ENDS).
    `guest_extra`: more tables of guest.toml (e.g. issue 13's [tls_gateway]).
    `fastpath`: [fastpath] enabled (issue 14; `testbed up --no-fastpath` turns it off);
    `super_frames`: the HA tunnels TCP super-frames whole (the guest's fast path takes them)."""
    guest_tables = {**guest_config(state_dir, translation), **(guest_extra or {})}
    for node, tables in ((GUEST, guest_tables),
                         (HOME_AGENT_NODE, home_agent_config(state_dir,
                                                             refuse_home_address=refuse_home_address))):
        if offloads:
            for section in ("link", "host_link"):
                if section in tables:
                    tables[section] = {**tables[section], "offloads": True}
        if ipsec is not None:  # issue 4: [ipsec] and the MTUs that leave room for ESP
            apply_ipsec_config(tables, node, state_dir, ipsec)
        if node == HOME_AGENT_NODE or "fastpath" in (_sections_the_agent_reads() or ()):
            tables["fastpath"] = {"enabled": fastpath}
            if node == HOME_AGENT_NODE and super_frames:
                tables["fastpath"]["super_frames"] = True
        if route_optimisation and node == GUEST:  # issue 9: testbed up --ro
            from provisioning.nodes.route_optimisation import guest_tables

            guest_tables(tables)  # type: ignore[arg-type]
        with open(config_path(state_dir, node), "w") as f:
            f.write(render_toml(tables))


def agent_spec(state_dir: str, node: str, namespace: str) -> processes.ProcessSpec:
    return processes.ProcessSpec(
        name=node, namespace=namespace,
        argv=[sys.executable, "-m", AGENT_MODULES[node], "--config", config_path(state_dir, node)],
        log=os.path.join(state_dir, f"{node}.log"),
    )


def start_agent(state_dir: str, node: str, namespace: str) -> None:
    # a stale socket from a crashed run would make the wait below pass too early
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path(state_dir, node))
    processes.start(state_dir, agent_spec(state_dir, node, namespace))


def wait_ready(state_dir: str, node: str, timeout: float = SOCKET_WAIT) -> None:
    try:
        control.wait_for_ping(socket_path(state_dir, node), timeout)
    except Exception:
        if not processes.is_running(state_dir, node):
            log = os.path.join(state_dir, f"{node}.log")
            raise ProvisioningError(
                f"{node} agent exited; log {log}: {processes.log_tail(log)}") from None
        raise


def restart_agent(state_dir: str, node: str) -> None:
    """SIGTERM the agent, wait, start it again with the recorded command line."""
    spec = processes.load_spec(state_dir, node)
    processes.stop(state_dir, node)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path(state_dir, node))
    processes.start(state_dir, spec)
    wait_ready(state_dir, node)
