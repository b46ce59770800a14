"""Guest agent configuration (TOML). Every default works in the test bed (DESIGN.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

from guest_agent.route_optimisation import RouteOptimisationSection
from guest_agent.security import IpsecSection
from netstack.fastpath.config import FastPathSection
from netstack.runtime.configfile import NodeSection as CommonNodeSection
from netstack.runtime.configfile import load_config


@dataclass
class NodeSection(CommonNodeSection):
    name: str = "guest"


@dataclass
class LinkSection:
    """Virtual network 14: the visited link the agent owns through AF_PACKET."""

    interface: str = "eth0"
    # Disable kernel IPv6 and checksum/segmentation offloads on the interface we own.
    manage_interface: bool = True
    optimistic_dad: bool = True
    # Transmit from a thread of its own (kernel forwarding overlaps with Python on 2+ cores).
    tx_thread: bool = True
    # Accept the peer's checksum/segmentation offloads (PACKET_VNET_HDR): partial checksums
    # are finished and GSO super-frames cut in software, so the switch port may keep TSO/GRO.
    offloads: bool = False


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
class HostLinkSection:
    """Virtual network 15 (`eth1`): the host's IPv4 applications and, for E2, its IPv6 ones.

    `interface = ""` disables the host side (the guest then serves only `hoa0`).
    """

    interface: str = ""
    # Link-local address the host uses as its IPv6 default gateway (E2 passthrough).
    ipv6_gateway: IPv6Address = IPv6Address("fe80::1")
    ipv6_passthrough: bool = True  # scenario 10001: IPv6 apps on the host use the home address
    manage_interface: bool = True
    # The host interface MTU: 1500 - 40 (IPv6-in-IPv6) - 20 (IPv4 -> IPv6 header growth).
    host_mtu: int = 1440
    # Let the host keep TSO and checksum offload on its end (PACKET_VNET_HDR): a TCP
    # super-frame of up to 64 KB is translated once and cut into tunnel-sized packets here.
    offloads: bool = False


@dataclass
class TranslationSection:
    """Scenario 10000: IPv4 applications, translation table 230 and its virtual IPv4 pool.

    The defaults sit in 198.18.0.0/15 (RFC 2544 benchmarking range, used by fake-IP resolvers),
    which does not collide with home or office LANs.
    """

    enabled: bool = True
    pool: IPv4Network = IPv4Network("198.18.0.0/24")
    gateway_ipv4: IPv4Address = IPv4Address("198.18.0.1")
    home_ipv4: IPv4Address = IPv4Address("198.18.0.2")
    idle_timeout: float = 300.0
    prefix64: IPv6Network = IPv6Network("64:ff9b::/96")
    state_file: Path | None = None  # default: <state_dir>/translations.json
    static: list[StaticMapping] = field(default_factory=list)


@dataclass
class StaticMapping:
    """An RFC 7757 EAM-like static row of table 230."""

    ipv6: IPv6Address
    ipv4: IPv4Address


@dataclass
class DnsSection:
    """DNS for IPv4 applications, answered by the agent on the host link (port 53)."""

    enabled: bool = True
    upstream: list[IPv6Address] = field(default_factory=lambda: [IPv6Address("2001:db8:6::53")])
    timeout: float = 2.0
    ttl_cap: int = 60


@dataclass
class TlsGatewaySection:
    """Patent E8 (issue 13): host TCP flows matching the policy are terminated in the guest
    and carried inside a TLS session to the gateway (one HTTP CONNECT per connection).

    `ports`: TCP destination ports that go through the gateway (the relay listens on each in
    the guest); `destinations`: IPv6 prefixes they must be in (empty = any). `device` is the
    TUN that hands the flows to the relay; `reply_mark` the relay's socket mark and, like
    `divert_mark`, the number of its policy-routing table.
    """

    enabled: bool = False
    name: str = "gw.example"  # verified against the gateway's certificate, and sent as SNI
    address: IPv6Address = IPv6Address("2001:db8:8::3128")
    port: int = 3128
    ca_file: Path | None = None  # None: the system's trust store
    # The terminal's certificate and key, if the gateway asks for one (PEM files)
    client_cert: Path | None = None
    client_key: Path | None = None
    keylog_file: Path | None = None  # SSLKEYLOGFILE of the outer sessions
    ports: list[int] = field(default_factory=lambda: [443])
    destinations: list[IPv6Network] = field(default_factory=list)
    connect_timeout: float = 1.5  # gateway unreachable: the host gets a reset within this
    device: str = "tls0"
    reply_mark: int = 0x1301
    divert_mark: int = 0x1302


@dataclass
class SipAlgSection:
    """The SIP/SDP ALG for IPv4 phones on the host (guest_agent/sip_alg_path.py, issue 12).

    `enabled = false` is the control case: the IPv4 phone's SDP reaches the IPv6 side as is.
    """

    enabled: bool = True
    ports: list[int] = field(default_factory=lambda: [5060])


@dataclass
class HmipSection:
    """HMIPv6 (RFC 5380, patent E6): use a MAP advertised in RAs; registration types 1-3
    (table 220 scenarios 10100/10200/10300, netstack.mobility.hmip)."""

    enabled: bool = False
    registration_type: int = 1
    requested_lifetime: int = 300  # local BU lifetime (seconds)

    def __post_init__(self) -> None:
        if self.registration_type not in (1, 2, 3):
            raise ValueError("[hmip] registration_type must be 1, 2 or 3")


@dataclass
class NemoSection:
    """Mobile router (RFC 3963, patent E7): `prefixes` routed through the MR-HA tunnel and
    advertised on the host link (virtual network 15). Empty: a plain mobile node.

    `implicit`: the BU carries only the R flag; the home agent knows the prefixes.
    """

    prefixes: list[IPv6Network] = field(default_factory=list)
    implicit: bool = False
    advertise: bool = True  # router advertisements on the host link
    ra_min_interval: float = 3.0
    ra_max_interval: float = 10.0
    mtu: int | None = None  # MTU option in the RAs (default: none, the host link's MTU)


@dataclass
class AgentConfig:
    node: NodeSection = field(default_factory=NodeSection)
    link: LinkSection = field(default_factory=LinkSection)
    mobility: MobilitySection = field(default_factory=MobilitySection)
    tun: TunSection = field(default_factory=TunSection)
    host_link: HostLinkSection = field(default_factory=HostLinkSection)
    translation: TranslationSection = field(default_factory=TranslationSection)
    dns: DnsSection = field(default_factory=DnsSection)
    ipsec: IpsecSection = field(default_factory=IpsecSection)
    fastpath: FastPathSection = field(default_factory=FastPathSection)
    tls_gateway: TlsGatewaySection = field(default_factory=TlsGatewaySection)
    route_optimisation: RouteOptimisationSection = field(default_factory=RouteOptimisationSection)
    sip_alg: SipAlgSection = field(default_factory=SipAlgSection)
    hmip: HmipSection = field(default_factory=HmipSection)
    nemo: NemoSection = field(default_factory=NemoSection)

    @property
    def translation_state_file(self) -> Path:
        return self.translation.state_file or self.node.state_dir / "translations.json"


def load_agent_config(path: str | Path | None) -> AgentConfig:
    return load_config(AgentConfig, path)
