"""MAP configuration (TOML). Defaults are the test bed's MAP link 2001:db8:d::/64."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

from netstack.runtime.configfile import ConfigError, load_config
from netstack.runtime.configfile import NodeSection as CommonNodeSection
from network.home_agent.config import HomeAgentSection, LinkSection
from network.home_agent.ipsec import HomeAgentIpsecSection


@dataclass
class NodeSection(CommonNodeSection):
    name: str = "map"


@dataclass
class MapSection:
    """The MAP's address on its link; RCoAs are formed from `prefix` (RFC 5380 6.1)."""

    address: IPv6Address = IPv6Address("2001:db8:d::1")
    prefix: IPv6Network = IPv6Network("2001:db8:d::/64")
    default_router: IPv6Address | None = None  # else learned from the MAP link's RAs
    max_lifetime: int = 600
    require_protection: bool = False
    # RFC 5380 8: DAD for a new RCoA on the MAP link before accepting it.
    proxy_dad: bool = True


@dataclass
class MapConfig:
    node: NodeSection = field(default_factory=NodeSection)
    link: LinkSection = field(default_factory=LinkSection)
    map: MapSection = field(default_factory=MapSection)
    ipsec: HomeAgentIpsecSection = field(default_factory=HomeAgentIpsecSection)

    @property
    def interface(self) -> str:
        return self.link.interface

    @property
    def home_agent(self) -> HomeAgentSection:
        """The [map] section in the home agent daemon's terms (the MAP reuses that daemon)."""
        m = self.map
        return HomeAgentSection(
            address=m.address, home_prefix=m.prefix, default_router=m.default_router,
            max_lifetime=m.max_lifetime, require_protection=m.require_protection,
            proxy_dad=m.proxy_dad,
        )


def load_map_config(path: str | Path | None) -> MapConfig:
    config = load_config(MapConfig, path)
    if config.map.address not in config.map.prefix:
        raise ConfigError(f"{path}: [map] address {config.map.address} is not in prefix "
                          f"{config.map.prefix}")
    if config.map.prefix.prefixlen != 64:
        raise ConfigError(f"{path}: [map] prefix must be a /64 (RCoAs use 64-bit interface "
                          "identifiers)")
    return config
