"""What the mobility state machines ask the daemon to send.

The state machines never touch bytes: the daemon turns each `OutgoingMobilityMessage` into a
packet with `netstack.wire.mh_codec.build_mobility_packet(m.src, m.dst, m.message,
home_address=m.home_address, routing_type2=m.routing_type2)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address

from netstack.wire.mh import MobilityMessage


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
