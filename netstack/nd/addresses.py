"""Our own addresses on a link: EUI-64 formation (RFC 4291 2.5.1 / appendix A), the per-address
DAD state (RFC 4862 5.4, RFC 4429) and the SLAAC lifetime rule (RFC 4862 5.5.3)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv6Address, IPv6Network

from netstack.nd.constants import TWO_HOURS
from netstack.wire.icmpv6_types import INFINITE_LIFETIME

LINK_LOCAL_PREFIX = IPv6Network("fe80::/64")


def interface_identifier(mac: bytes) -> bytes:
    """Modified EUI-64 interface identifier of a 48-bit MAC: U/L bit flipped, ff:fe inserted."""
    if len(mac) != 6:
        raise ValueError("an Ethernet MAC is 6 octets")
    return bytes((mac[0] ^ 0x02,)) + mac[1:3] + b"\xff\xfe" + mac[3:6]


def address_from_prefix(prefix: IPv6Network, mac: bytes) -> IPv6Address:
    """prefix (a /64) + modified EUI-64 of mac."""
    if prefix.prefixlen != 64:
        raise ValueError("SLAAC with EUI-64 needs a /64 prefix")
    return IPv6Address(prefix.network_address.packed[:8] + interface_identifier(mac))


def link_local_address(mac: bytes) -> IPv6Address:
    return address_from_prefix(LINK_LOCAL_PREFIX, mac)


def lifetime_deadline(now: float, seconds: int) -> float:
    """Absolute time of a wire lifetime; 0xFFFFFFFF means forever (math.inf)."""
    return math.inf if seconds == INFINITE_LIFETIME else now + seconds


class AddressState(StrEnum):
    TENTATIVE = "tentative"  # DAD running, not usable (RFC 4862 5.4)
    OPTIMISTIC = "optimistic"  # DAD running, usable with restrictions (RFC 4429)
    PREFERRED = "preferred"
    DEPRECATED = "deprecated"  # preferred lifetime over, still valid (RFC 4862 5.5.4)


class AddressOrigin(StrEnum):
    LINK_LOCAL = "link-local"
    SLAAC = "slaac"
    STATIC = "static"


@dataclass
class AddressEntry:
    address: IPv6Address
    prefix: IPv6Network
    origin: AddressOrigin
    state: AddressState
    valid_until: float = math.inf
    preferred_until: float = math.inf
    dad_probes_sent: int = 0
    dad_next: float | None = None  # when to send the next DAD NS or conclude DAD
    announced: bool = False  # AddressReady already reported
    dad_enabled: bool = True  # run DAD again when the link is re-attached (RFC 4862 5.4)

    @property
    def usable(self) -> bool:
        return self.state is not AddressState.TENTATIVE

    @property
    def under_dad(self) -> bool:
        return self.state in (AddressState.TENTATIVE, AddressState.OPTIMISTIC)

    def as_dict(self) -> dict[str, object]:
        return {
            "address": str(self.address),
            "prefix": str(self.prefix),
            "origin": str(self.origin),
            "state": str(self.state),
            "valid_until": None if math.isinf(self.valid_until) else self.valid_until,
            "preferred_until": None if math.isinf(self.preferred_until) else self.preferred_until,
        }


def updated_valid_until(current_until: float, advertised: int, now: float) -> float:
    """RFC 4862 5.5.3 (e): an RA may shorten a valid lifetime only down to two hours, so a
    spoofed RA cannot make our address vanish at once."""
    if advertised == INFINITE_LIFETIME:
        return math.inf
    received_until = now + advertised
    remaining = current_until - now
    if advertised > TWO_HOURS or received_until > current_until:
        return received_until
    if remaining <= TWO_HOURS:
        return current_until
    return now + TWO_HOURS
