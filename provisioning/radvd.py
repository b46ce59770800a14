"""radvd configuration and launch for the access routers and the home link.

Fast RAs for handover: with the Mobile IPv6 extensions (AdvIntervalOpt on) radvd allows
MinRtrAdvInterval down to 0.03 s and MaxRtrAdvInterval down to 0.07 s (radvd.conf(5)).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from ipaddress import IPv6Network

MIN_RTR_ADV_INTERVAL = 0.05
MAX_RTR_ADV_INTERVAL = 1.5
MIN_DELAY_BETWEEN_RAS = 0.05


@dataclass(frozen=True)
class RadvdPaths:
    config: str
    pidfile: str
    logfile: str


def render_config(interface: str, prefix: IPv6Network, *, home_agent_flag: bool = False) -> str:
    """radvd.conf for one interface advertising one autonomous on-link prefix."""
    if not MIN_RTR_ADV_INTERVAL <= 0.75 * MAX_RTR_ADV_INTERVAL:
        raise ValueError("MinRtrAdvInterval must be <= 0.75 * MaxRtrAdvInterval")
    flag = "on" if home_agent_flag else "off"
    return (
        f"interface {interface}\n"
        "{\n"
        "    AdvSendAdvert on;\n"
        f"    MinRtrAdvInterval {MIN_RTR_ADV_INTERVAL};\n"
        f"    MaxRtrAdvInterval {MAX_RTR_ADV_INTERVAL};\n"
        f"    MinDelayBetweenRAs {MIN_DELAY_BETWEEN_RAS};\n"
        "    AdvIntervalOpt on;\n"
        f"    AdvHomeAgentFlag {flag};\n"
        f"    prefix {prefix}\n"
        "    {\n"
        "        AdvOnLink on;\n"
        "        AdvAutonomous on;\n"
        "        AdvRouterAddr on;\n"
        "    };\n"
        "};\n"
    )


def paths(state_dir: str, node: str) -> RadvdPaths:
    return RadvdPaths(
        config=os.path.join(state_dir, f"radvd-{node}.conf"),
        pidfile=os.path.join(state_dir, f"radvd-{node}.pid"),
        logfile=os.path.join(state_dir, f"radvd-{node}.log"),
    )


def command(p: RadvdPaths) -> list[str]:
    # -n: stay in the foreground so the pid we record is radvd's own
    return ["radvd", "-n", "-C", p.config, "-p", p.pidfile, "-m", "logfile", "-l", p.logfile]
