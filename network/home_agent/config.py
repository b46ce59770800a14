"""Home agent configuration (TOML). Defaults are the test bed's home network 6."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

from netstack.fastpath.config import FastPathSection
from netstack.runtime.configfile import NodeSection as CommonNodeSection
from netstack.runtime.configfile import load_config
from network.home_agent.ipsec import HomeAgentIpsecSection


@dataclass
class NodeSection(CommonNodeSection):
    name: str = "ha"


@dataclass
class LinkSection:
    """The home link, owned through AF_PACKET (kernel IPv6 off: it cannot parse the HAO)."""

    interface: str = "eth0"
    manage_interface: bool = True
    mtu: int = 1500
    # Transmit from a thread of its own (kernel forwarding overlaps with Python on 2+ cores).
    tx_thread: bool = True
    # Accept the switch port's offloads (PACKET_VNET_HDR): a GRO super-frame of reverse-
    # tunnelled TCP is detunnelled once and handed back to the kernel to cut (software GSO).
    offloads: bool = False


@dataclass
class HomeAgentSection:
    address: IPv6Address = IPv6Address("2001:db8:6::1")
    home_prefix: IPv6Network = IPv6Network("2001:db8:6::/64")
    # Optional static default router; otherwise learned from the home link's RAs.
    default_router: IPv6Address | None = None
    interface: str | None = None  # alias of [link] interface, kept for older config files
    allowed_home_addresses: list[IPv6Address] = field(default_factory=list)  # empty: any
    refused_home_addresses: list[IPv6Address] = field(default_factory=list)
    max_lifetime: int = 420
    require_protection: bool = False
    # RFC 6275 10.4.1: DAD for a new home address before accepting it.
    proxy_dad: bool = True
    # The RetransTimer (seconds) of the DAD the home agent runs for a home address it has no
    # binding for (RFC 6275 10.3.1, a MUST): it lasts DupAddrDetectTransmits (1) x RetransTimer
    # (RFC 4862 5.4), the whole wait of a home -> visited move. Default RFC 4861's 1 s.
    dad_retrans_timer: float = 1.0


@dataclass
class MobileRouterSection:
    """One mobile router (by home address) and the prefixes it may register (RFC 3963)."""

    home_address: IPv6Address
    prefixes: list[IPv6Network] = field(default_factory=list)


@dataclass
class NemoSection:
    """The prefix table (netstack.mobility.prefix_table): `mobile_routers = [{home_address =
    "...", prefixes = ["..."]}]`. A BU with the R flag from any other home address gets 142
    (explicit) or 143 (implicit); `allow_mobile_routers = false` refuses every R flag (140)."""

    allow_mobile_routers: bool = True
    mobile_routers: list[MobileRouterSection] = field(default_factory=list)


@dataclass
class HomeAgentConfig:
    node: NodeSection = field(default_factory=NodeSection)
    link: LinkSection = field(default_factory=LinkSection)
    home_agent: HomeAgentSection = field(default_factory=HomeAgentSection)
    ipsec: HomeAgentIpsecSection = field(default_factory=HomeAgentIpsecSection)
    fastpath: FastPathSection = field(default_factory=FastPathSection)
    nemo: NemoSection = field(default_factory=NemoSection)

    @property
    def interface(self) -> str:
        return self.home_agent.interface or self.link.interface


def load_home_agent_config(path: str | Path | None) -> HomeAgentConfig:
    return load_config(HomeAgentConfig, path)
