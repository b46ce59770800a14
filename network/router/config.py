"""Router advertisement daemon configuration (TOML). Defaults: access router ar-a of the bed.

[router] holds what radvd keeps per interface (AdvSendAdvert is implied), [map] the HMIPv6
MAP option (RFC 5380 7.1); `address` unset means no MAP option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

from netstack.nd.ra_sender import AdvertisedPrefix, RaConfig
from netstack.runtime.configfile import ConfigError, load_config
from netstack.runtime.configfile import NodeSection as CommonNodeSection
from netstack.wire.icmpv6_types import MapOption


@dataclass
class NodeSection(CommonNodeSection):
    name: str = "router"


@dataclass
class LinkSection:
    interface: str = "eth0"


@dataclass
class RouterSection:
    """radvd's names in comments: MinRtrAdvInterval, MaxRtrAdvInterval, AdvDefaultLifetime..."""

    prefixes: list[IPv6Network] = field(default_factory=lambda: [IPv6Network("2001:db8:a::/64")])
    valid_lifetime: int = 86400  # AdvValidLifetime
    preferred_lifetime: int = 14400  # AdvPreferredLifetime
    on_link: bool = True  # AdvOnLink
    autonomous: bool = True  # AdvAutonomous
    min_interval: float = 3.0  # MinRtrAdvInterval (down to 0.03, RFC 6275 7.5)
    max_interval: float = 10.0  # MaxRtrAdvInterval (down to 0.07)
    router_lifetime: int = 1800  # AdvDefaultLifetime
    hop_limit: int = 64  # AdvCurHopLimit
    managed: bool = False  # AdvManagedFlag
    other_config: bool = False  # AdvOtherConfigFlag
    home_agent: bool = False  # AdvHomeAgentFlag
    mtu: int = 0  # AdvLinkMTU (0: no MTU option)
    advertisement_interval: bool = False  # AdvIntervalOpt
    rdnss: list[IPv6Address] = field(default_factory=list)
    rdnss_lifetime: int = 600

    def __post_init__(self) -> None:
        """RFC 4861 6.2.1 bounds, with RFC 6275 7.5's shorter intervals (radvd's limits)."""
        if not 0.03 <= self.min_interval <= self.max_interval:
            raise ValueError("min_interval must be at least 0.03 s and not above max_interval")
        if not 0.07 <= self.max_interval <= 1800:
            raise ValueError("max_interval must be between 0.07 and 1800 s")
        if not 0 <= self.router_lifetime <= 9000:
            raise ValueError("router_lifetime must be between 0 and 9000 s")
        if self.mtu and not 1280 <= self.mtu <= 65535:
            raise ValueError("mtu must be 0 (no option) or between 1280 and 65535")
        if self.preferred_lifetime > self.valid_lifetime:
            raise ValueError("preferred_lifetime must not exceed valid_lifetime")


@dataclass
class MapSection:
    address: IPv6Address | None = None
    distance: int = 1
    preference: int = 10
    valid_lifetime: int = 3600
    rcoa_required: bool = True  # R flag


@dataclass
class RouterConfig:
    node: NodeSection = field(default_factory=NodeSection)
    link: LinkSection = field(default_factory=LinkSection)
    router: RouterSection = field(default_factory=RouterSection)
    map: MapSection = field(default_factory=MapSection)

    def ra_config(self) -> RaConfig:
        r, m = self.router, self.map
        maps: tuple[MapOption, ...] = ()
        if m.address is not None:
            maps = (MapOption(m.distance, m.preference, m.valid_lifetime, m.address, m.rcoa_required),)
        return RaConfig(
            prefixes=tuple(
                AdvertisedPrefix(p, on_link=r.on_link, autonomous=r.autonomous,
                                 valid_lifetime=r.valid_lifetime,
                                 preferred_lifetime=r.preferred_lifetime)
                for p in r.prefixes
            ),
            min_interval=r.min_interval, max_interval=r.max_interval,
            router_lifetime=r.router_lifetime, hop_limit=r.hop_limit, managed=r.managed,
            other_config=r.other_config, home_agent=r.home_agent, mtu=r.mtu or None,
            advertisement_interval=r.advertisement_interval, rdnss=tuple(r.rdnss),
            rdnss_lifetime=r.rdnss_lifetime, map_options=maps,
        )


def load_router_config(path: str | Path | None) -> RouterConfig:
    config = load_config(RouterConfig, path)
    m = config.map
    if not (1 <= m.distance <= 15 and 0 <= m.preference <= 15):
        raise ConfigError(f"{path}: [map] distance must be 1-15 and preference 0-15")
    return config
