"""Guest agent configuration (TOML). Every default works in the test bed (DESIGN.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

from netstack.runtime.configfile import load_config


@dataclass
class NodeSection:
    name: str = "guest"
    state_dir: Path = Path("/run/mip6term/m6")
    control_socket: Path | None = None  # default: <state_dir>/guest.sock
    log_level: str = "info"

    @property
    def socket_path(self) -> Path:
        return self.control_socket or self.state_dir / f"{self.name}.sock"


@dataclass
class LinkSection:
    """Virtual network 14: the visited link the agent owns through AF_PACKET."""

    interface: str = "eth0"
    # Disable kernel IPv6 and checksum/segmentation offloads on the interface we own.
    manage_interface: bool = True
    optimistic_dad: bool = True


@dataclass
class MobilitySection:
    """Mobile IPv6 unit (25): the home registration. Timer names follow RFC 6275 section 12/13."""

    home_address: IPv6Address = IPv6Address("2001:db8:6::1000")
    home_agent: IPv6Address = IPv6Address("2001:db8:6::1")
    home_prefix: IPv6Network = IPv6Network("2001:db8:6::/64")
    requested_lifetime: int = 420
    initial_bindack_timeout_first_reg: float = 1.5
    initial_bindack_timeout: float = 1.0
    max_bindack_timeout: float = 32.0


@dataclass
class TunSection:
    """`hoa0`: the TUN device carrying the home address for guest-local applications."""

    name: str = "hoa0"
    # 1500 minus the 40-octet IPv6-in-IPv6 header, so TCP's MSS fits the tunnel.
    mtu: int = 1460
    default_route: bool = True


@dataclass
class AgentConfig:
    node: NodeSection = field(default_factory=NodeSection)
    link: LinkSection = field(default_factory=LinkSection)
    mobility: MobilitySection = field(default_factory=MobilitySection)
    tun: TunSection = field(default_factory=TunSection)


def load_agent_config(path: str | Path | None) -> AgentConfig:
    return load_config(AgentConfig, path)
