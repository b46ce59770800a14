"""Correspondent node configuration (TOML). Defaults are the test bed's CN link."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv6Address
from pathlib import Path

from netstack.runtime.configfile import NodeSection as CommonNodeSection
from netstack.runtime.configfile import load_config


@dataclass
class NodeSection(CommonNodeSection):
    name: str = "cn"


@dataclass
class LinkSection:
    """The CN's link, owned through AF_PACKET (kernel IPv6 off: the kernel has no ESP)."""

    interface: str = "eth0"
    manage_interface: bool = True


@dataclass
class CorrespondentSection:
    address: IPv6Address = IPv6Address("2001:db8:8::1001")
    prefixlen: int = 64
    default_router: IPv6Address = IPv6Address("2001:db8:8::1")
    # more addresses of this node (the bed's cn1..cn5.example), never chosen as a source
    extra_addresses: list[IPv6Address] = field(default_factory=list)


@dataclass
class TunSection:
    """The TUN that carries the CN address for the kernel's servers (http.server, iperf3)."""

    name: str = "cn0"
    # room for end-to-end ESP (up to 37 octets with AES-GCM) on a 1500-octet link
    mtu: int = 1400


@dataclass
class CorrespondentIpsecSection:
    key_file: Path | None = None  # end-to-end SAs and policies (netstack.ipsec.keys format)
    end_to_end: bool = False

    def __post_init__(self) -> None:
        if self.end_to_end and self.key_file is None:
            raise ValueError("ipsec.end_to_end needs ipsec.key_file")


@dataclass
class RouteOptimisationSection:
    """RFC 6275 section 9: return routability and a binding cache for mobile nodes."""

    enabled: bool = True


@dataclass
class CorrespondentConfig:
    node: NodeSection = field(default_factory=NodeSection)
    link: LinkSection = field(default_factory=LinkSection)
    correspondent: CorrespondentSection = field(default_factory=CorrespondentSection)
    tun: TunSection = field(default_factory=TunSection)
    ipsec: CorrespondentIpsecSection = field(default_factory=CorrespondentIpsecSection)
    route_optimisation: RouteOptimisationSection = field(default_factory=RouteOptimisationSection)


def load_correspondent_config(path: str | Path | None) -> CorrespondentConfig:
    return load_config(CorrespondentConfig, path)
