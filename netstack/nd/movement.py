"""Mobile IPv6 movement detection for NdHost (RFC 6275 section 11.5.1).

A mixin of NdHost: it reads the host's care-of address and, on movement, flushes what was
learned on the old link.
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

from netstack.nd.addresses import AddressOrigin
from netstack.nd.events import AddressExpired, MovementDetected


class MovementDetection:
    def _is_movement(self, advertised: tuple[IPv6Network, ...]) -> bool:
        """RFC 6275 11.5.1: an RA that advertises prefixes none of which is our care-of
        address's prefix means we are on another link. An RA without prefixes (or from a
        second router that also advertises our prefix) proves nothing."""
        if self.care_of_address is None or not advertised:
            return False
        return not any(self.care_of_address in prefix for prefix in advertised)

    def _handle_movement(
        self, advertised: tuple[IPv6Network, ...], router: IPv6Address, now: float
    ) -> None:
        self._count("movement_detected")
        self._events.append(MovementDetected(advertised, router))
        # Everything learned on the old link is now wrong: its routers, on-link prefixes,
        # neighbours, MAPs and the addresses formed from its prefixes.
        self.default_routers.flush_learned()
        self.prefixes.flush_learned()
        self.neighbors.flush()
        self._maps.clear()
        for entry in list(self.addresses.values()):
            if entry.origin is AddressOrigin.SLAAC and entry.prefix not in advertised:
                del self.addresses[entry.address]
                self._events.append(AddressExpired(entry.address))
        self.care_of_address = None
