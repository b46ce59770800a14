"""What the mobility state machines ask the daemon to send.

The state machines never touch bytes: the daemon turns each `OutgoingMobilityMessage` into a
packet with `netstack.wire.mh_codec.build_mobility_packet(m.src, m.dst, m.message,
home_address=m.home_address, routing_type2=m.routing_type2)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from netstack.wire.mh import BindingUpdate, MobileNetworkPrefix, MobilityMessage


@dataclass(frozen=True)
class OutgoingMobilityMessage:
    """One Mobility Header message with its IPv6 addressing.

    `home_address`: put in a Home Address destination option (mobile node away from home).
    `routing_type2`: put in a type 2 routing header (home agent answering a mobile node).
    """

    src: IPv6Address
    dst: IPv6Address
    message: MobilityMessage
    home_address: IPv6Address | None = None
    routing_type2: IPv6Address | None = None


def home_registration(
    sequence: int,
    lifetime: int,
    home_address: IPv6Address,
    care_of_address: IPv6Address,
    home_agent: IPv6Address,
    *,
    mobile_network_prefixes: tuple[IPv6Network, ...] | list[IPv6Network] = (),
    deregistering: bool = False,
) -> OutgoingMobilityMessage:
    """A home registration BU (A and H set; R and the RFC 3963 prefixes for a mobile router).

    Registering: from the care-of address with a Home Address option. De-registering at home
    (RFC 6275 11.5.4): from the home address itself, no option needed, no prefixes.
    """
    options: tuple[MobileNetworkPrefix, ...] = ()
    if mobile_network_prefixes and not deregistering:
        options = tuple(MobileNetworkPrefix(p) for p in mobile_network_prefixes)
    message = BindingUpdate(
        sequence=sequence,
        lifetime=lifetime,
        ack=True,
        home_registration=True,
        mobile_router=bool(mobile_network_prefixes),
        options=options,
    )
    if deregistering:
        return OutgoingMobilityMessage(home_address, home_agent, message)
    return OutgoingMobilityMessage(care_of_address, home_agent, message, home_address=home_address)
