"""Guest agent (MN, lite mode) and home agent daemons: TOML configs and launch."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping, Sequence

from provisioning import control, processes
from provisioning.errors import ProvisioningError
from provisioning.topology import HOME_ADDRESS, HOME_AGENT, HOME_PREFIX

GUEST = "guest"
HOME_AGENT_NODE = "ha"
AGENT_MODULES = {GUEST: "guest_agent", HOME_AGENT_NODE: "network.home_agent"}
SOCKET_WAIT = 15.0

TomlValue = str | int | bool | Sequence[str]


def _toml_value(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
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


def guest_config(state_dir: str) -> dict[str, dict[str, TomlValue]]:
    return {
        "node": {"state_dir": state_dir, "control_socket": socket_path(state_dir, GUEST)},
        "link": {"interface": "eth0"},
        "mobility": {"home_address": str(HOME_ADDRESS), "home_agent": str(HOME_AGENT),
                     "home_prefix": str(HOME_PREFIX)},
        "tun": {"name": "hoa0"},
    }


def home_agent_config(state_dir: str, *, refuse_home_address: bool = False) -> dict[str, dict[str, TomlValue]]:
    return {
        "node": {"state_dir": state_dir,
                 "control_socket": socket_path(state_dir, HOME_AGENT_NODE)},
        "link": {"interface": "eth0"},
        "home_agent": {"address": str(HOME_AGENT), "home_prefix": str(HOME_PREFIX),
                       "interface": "eth0",
                       "refused_home_addresses": [str(HOME_ADDRESS)] if refuse_home_address else []},
    }


def write_configs(state_dir: str, *, refuse_home_address: bool = False) -> None:
    for node, tables in ((GUEST, guest_config(state_dir)),
                         (HOME_AGENT_NODE, home_agent_config(state_dir,
                                                             refuse_home_address=refuse_home_address))):
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
