"""Events the mobility state machines hand to the daemon (`next_event()`), h11 style:
small immutable classes, one per thing that happened."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address

# ---------------------------------------------------------------- mobile node


@dataclass(frozen=True)
class BindingAccepted:
    """A BA with status < 128 accepted our BU: set up / keep the tunnel CoA <-> destination."""

    destination: IPv6Address
    home_address: IPv6Address
    care_of_address: IPv6Address
    lifetime: int
    sequence: int
    status: int


@dataclass(frozen=True)
class BindingRefused:
    """A BA with status >= 128 refused our BU: no tunnel. `reason` is the status name, readable."""

    destination: IPv6Address
    status: int
    reason: str


@dataclass(frozen=True)
class BindingDeregistered:
    """The destination acknowledged our de-registration (returning home)."""

    destination: IPv6Address


@dataclass(frozen=True)
class BindingExpired:
    """The binding with destination is gone: its lifetime ran out, or a Binding Error removed it."""

    destination: IPv6Address


@dataclass(frozen=True)
class ReturnedHome:
    """The mobile node is at home and de-registered: the daemon now does NS/DAD for the HoA."""

    home_address: IPv6Address


MobileNodeEvent = (
    BindingAccepted | BindingRefused | BindingDeregistered | BindingExpired | ReturnedHome
)

# ---------------------------------------------------------------- home agent


@dataclass(frozen=True)
class BindingCreated:
    home_address: IPv6Address
    care_of_address: IPv6Address


@dataclass(frozen=True)
class BindingUpdated:
    home_address: IPv6Address
    care_of_address: IPv6Address


@dataclass(frozen=True)
class BindingDeleted:
    home_address: IPv6Address


@dataclass(frozen=True)
class DadRequested:
    """Run DAD for home_address on the home link, then call `HomeAgent.dad_result()`."""

    home_address: IPv6Address


HomeAgentEvent = BindingCreated | BindingUpdated | BindingDeleted | DadRequested
