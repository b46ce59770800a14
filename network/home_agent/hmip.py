"""HMIPv6 registration type 3 at the home agent (patent E6; table 220 scenario 10300).

The terminal registers its RCoA "directly", as the patent describes: the BU leaves from the
LCoA, carries the RCoA in the Home Address option and the home address in an Alternate
Care-of Address option. Read literally by RFC 6275 that BU names a home address outside the
home prefix, so the daemon unwraps it first: the binding is home address -> RCoA, and the BA
returns to the LCoA (not through the MAP), with the home address in its type 2 routing header.
Types 1 and 2 need nothing here: their BUs come from the RCoA with the HoA in the HAO.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv6Address, IPv6Network

from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.wire.mh import AlternateCareOfAddress, BindingUpdate

_MAX_REMEMBERED = 4096


class DirectRegistrations:
    """RCoA -> LCoA of type 3 registrations, for the answers to them."""

    def __init__(self, home_prefix: IPv6Network) -> None:
        self.home_prefix = home_prefix
        self._reply_to: dict[IPv6Address, IPv6Address] = {}

    def unwrap(
        self, src: IPv6Address, home_address: IPv6Address | None, message: BindingUpdate
    ) -> tuple[IPv6Address, IPv6Address | None]:
        """(care-of address, home address) the home agent should see for this BU."""
        if home_address is None or home_address in self.home_prefix:
            self._reply_to.pop(src, None)  # types 1/2 from this RCoA: answers go to it again
            return src, home_address
        for option in message.options:
            if isinstance(option, AlternateCareOfAddress) and option.address in self.home_prefix:
                if len(self._reply_to) >= _MAX_REMEMBERED and home_address not in self._reply_to:
                    self._reply_to.pop(next(iter(self._reply_to)))
                self._reply_to[home_address] = src
                return home_address, option.address
        return src, home_address

    def redirect(self, message: OutgoingMobilityMessage) -> OutgoingMobilityMessage:
        lcoa = self._reply_to.get(message.dst)
        return message if lcoa is None else replace(message, dst=lcoa)

    def __len__(self) -> int:
        return len(self._reply_to)
