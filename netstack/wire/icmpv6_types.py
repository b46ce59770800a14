"""ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861) messages and options as dataclasses.

Includes the Mobile IPv6 ND extensions (RFC 6275 7.1-7.4: H flag, R flag in the prefix
option, Advertisement Interval, Home Agent Information) and the HMIPv6 MAP option
(RFC 5380 section 4). The codec lives in `netstack.wire.icmpv6`. Link-layer addresses are
6-byte `bytes`; lifetimes are seconds (`0xFFFFFFFF` = infinity for prefix lifetimes).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

IPPROTO_ICMPV6 = 58
INFINITE_LIFETIME = 0xFFFFFFFF


class ICMPv6Type:
    DESTINATION_UNREACHABLE = 1
    PACKET_TOO_BIG = 2
    TIME_EXCEEDED = 3
    PARAMETER_PROBLEM = 4
    ECHO_REQUEST = 128
    ECHO_REPLY = 129
    ROUTER_SOLICITATION = 133
    ROUTER_ADVERTISEMENT = 134
    NEIGHBOR_SOLICITATION = 135
    NEIGHBOR_ADVERTISEMENT = 136


class NDOptionType:
    SOURCE_LINK_LAYER_ADDRESS = 1
    TARGET_LINK_LAYER_ADDRESS = 2
    PREFIX_INFORMATION = 3
    MTU = 5
    ADVERTISEMENT_INTERVAL = 7
    HOME_AGENT_INFORMATION = 8
    MAP = 23


# ---------------------------------------------------------------- ND options


@dataclass(frozen=True)
class SourceLinkLayerAddress:
    """Source Link-layer Address option, type 1 (RFC 4861 4.6.1)."""

    address: bytes


@dataclass(frozen=True)
class TargetLinkLayerAddress:
    """Target Link-layer Address option, type 2 (RFC 4861 4.6.1)."""

    address: bytes


@dataclass(frozen=True)
class PrefixInformation:
    """Prefix Information option, type 3 (RFC 4861 4.6.2; R flag RFC 6275 7.2)."""

    prefix: IPv6Network
    valid_lifetime: int
    preferred_lifetime: int
    on_link: bool = True
    autonomous: bool = True
    router_address: bool = False


@dataclass(frozen=True)
class Mtu:
    """MTU option, type 5 (RFC 4861 4.6.4)."""

    mtu: int


@dataclass(frozen=True)
class AdvertisementInterval:
    """Advertisement Interval option, type 7 (RFC 6275 7.3), milliseconds."""

    interval_ms: int


@dataclass(frozen=True)
class HomeAgentInformation:
    """Home Agent Information option, type 8 (RFC 6275 7.4); lifetime in seconds."""

    preference: int
    lifetime: int


@dataclass(frozen=True)
class MapOption:
    """MAP option, type 23 (RFC 5380 section 7.1; patent Fig. 29). Wire: Dist (4 bits) |
    Pref (4 bits), R flag + 7 reserved bits, Valid Lifetime (32), Global IP Address for MAP.

    distance 1-15, preference 0-15, R flag (the MN must form an RCoA from the MAP prefix),
    valid lifetime in seconds, the MAP's global address.
    """

    distance: int
    preference: int
    valid_lifetime: int
    map_address: IPv6Address
    rcoa_required: bool = True


@dataclass(frozen=True)
class UnknownNDOption:
    """An option type this codec does not know (RFC 4861 4.6: skipped, kept for display)."""

    type: int
    data: bytes


NDOption = (
    SourceLinkLayerAddress
    | TargetLinkLayerAddress
    | PrefixInformation
    | Mtu
    | AdvertisementInterval
    | HomeAgentInformation
    | MapOption
    | UnknownNDOption
)


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class RouterSolicitation:
    """Router Solicitation, type 133 (RFC 4861 4.1)."""

    options: tuple[NDOption, ...] = ()


@dataclass(frozen=True)
class RouterAdvertisement:
    """Router Advertisement, type 134 (RFC 4861 4.2; H flag RFC 6275 7.1).

    router_lifetime in seconds, reachable_time and retrans_timer in milliseconds.
    """

    cur_hop_limit: int = 64
    managed: bool = False
    other: bool = False
    home_agent: bool = False
    router_lifetime: int = 1800
    reachable_time: int = 0
    retrans_timer: int = 0
    options: tuple[NDOption, ...] = ()


@dataclass(frozen=True)
class NeighborSolicitation:
    """Neighbor Solicitation, type 135 (RFC 4861 4.3)."""

    target: IPv6Address
    options: tuple[NDOption, ...] = ()


@dataclass(frozen=True)
class NeighborAdvertisement:
    """Neighbor Advertisement, type 136 (RFC 4861 4.4)."""

    target: IPv6Address
    router: bool = False
    solicited: bool = False
    override: bool = True
    options: tuple[NDOption, ...] = ()


@dataclass(frozen=True)
class EchoRequest:
    """Echo Request, type 128 (RFC 4443 4.1)."""

    identifier: int
    sequence: int
    data: bytes = b""


@dataclass(frozen=True)
class EchoReply:
    """Echo Reply, type 129 (RFC 4443 4.2)."""

    identifier: int
    sequence: int
    data: bytes = b""


@dataclass(frozen=True)
class ICMPv6Error:
    """An ICMPv6 error message (types 1-4, RFC 4443 section 3).

    `parameter` is the MTU for Packet Too Big, the pointer for Parameter Problem, unused (0)
    otherwise. `invoking_packet` is as much of the offending packet as fits in 1280 octets.
    """

    type: int
    code: int
    parameter: int
    invoking_packet: bytes


@dataclass(frozen=True)
class UnknownICMPv6Message:
    """Any other ICMPv6 type: kept as raw body (after the 4-byte header)."""

    type: int
    code: int
    body: bytes


ICMPv6Message = (
    RouterSolicitation
    | RouterAdvertisement
    | NeighborSolicitation
    | NeighborAdvertisement
    | EchoRequest
    | EchoReply
    | ICMPv6Error
    | UnknownICMPv6Message
)
