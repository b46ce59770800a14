"""Events an `NdHost` reports to its daemon (read with `NdHost.next_event()`)."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from netstack.wire.icmpv6_types import MapOption


@dataclass(frozen=True)
class AddressReady:
    """An address is usable (optimistic, or DAD finished). Times are absolute (`now` based);
    `math.inf` for infinite lifetimes."""

    address: IPv6Address
    prefix: IPv6Network
    valid_until: float
    preferred_until: float


@dataclass(frozen=True)
class AddressDuplicate:
    """DAD found another node using the address (RFC 4862 5.4.5); it was removed."""

    address: IPv6Address


@dataclass(frozen=True)
class AddressExpired:
    """The address's valid lifetime ended, or it belongs to a link we left; it was removed."""

    address: IPv6Address


@dataclass(frozen=True)
class RouterChanged:
    """The preferred default router changed (None: no default router left)."""

    router: IPv6Address | None
    router_mac: bytes | None


@dataclass(frozen=True)
class MovementDetected:
    """An RA shows we are on a different link than the one our care-of address came from
    (RFC 6275 11.5.1). `prefixes` are the prefixes advertised on the new link."""

    prefixes: tuple[IPv6Network, ...]
    router: IPv6Address


@dataclass(frozen=True)
class MapDiscovered:
    """An RA carried a (new or changed) HMIPv6 MAP option (RFC 5380 section 7.1)."""

    option: MapOption
    router: IPv6Address


NdEvent = (
    AddressReady
    | AddressDuplicate
    | AddressExpired
    | RouterChanged
    | MovementDetected
    | MapDiscovered
)
