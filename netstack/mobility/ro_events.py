"""Route optimisation outputs for the data path (RFC 6275 11.7.2, 11.7.3).

`CorrespondentRegistrations.next_event()` yields these: the agent switches a correspondent's
traffic to the direct path (HAO inserter) or back to the home agent tunnel.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address

from netstack.wire.ro_headers import HomeAddressInserter

__all__ = ["RouteEvent", "RouteOptimised", "RouteTunnelled"]


@dataclass(frozen=True)
class RouteOptimised:
    """Data to `correspondent` now leaves from the CoA with a HAO (`inserter`)."""

    correspondent: IPv6Address
    inserter: HomeAddressInserter


@dataclass(frozen=True)
class RouteTunnelled:
    """Data to `correspondent` goes through the home agent again."""

    correspondent: IPv6Address
    reason: str


RouteEvent = RouteOptimised | RouteTunnelled
