"""Address autoconfiguration for NdHost: SLAAC (RFC 4862), DAD and optimistic DAD (RFC 4429).

A mixin of NdHost: it works on the host's address table and reports AddressReady/Duplicate.
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

from netstack.nd.addresses import (
    AddressEntry,
    AddressOrigin,
    AddressState,
    address_from_prefix,
    lifetime_deadline,
    updated_valid_until,
)
from netstack.nd.events import (
    AddressDuplicate,
    AddressReady,
)
from netstack.wire.icmpv6 import solicited_node_multicast
from netstack.wire.icmpv6_types import (
    NeighborSolicitation,
    PrefixInformation,
)

ALL_NODES = IPv6Address("ff02::1")
UNSPECIFIED = IPv6Address("::")


class AddressAutoconfiguration:
    """Form addresses from prefixes, run DAD on them, report them ready or duplicate."""

    def _autoconfigure(self, pio: PrefixInformation, now: float) -> None:
        """RFC 4862 5.5.3."""
        if pio.preferred_lifetime > pio.valid_lifetime:
            self._count("slaac_bad_lifetimes")
            return
        existing = next(
            (
                e
                for e in self.addresses.values()
                if e.origin is AddressOrigin.SLAAC and e.prefix == pio.prefix
            ),
            None,
        )
        if existing is not None:
            existing.preferred_until = lifetime_deadline(now, pio.preferred_lifetime)
            existing.valid_until = updated_valid_until(
                existing.valid_until, pio.valid_lifetime, now
            )
            if existing.state is AddressState.DEPRECATED and existing.preferred_until > now:
                existing.state = AddressState.PREFERRED
            return
        if pio.valid_lifetime == 0:
            return
        if pio.prefix.prefixlen != 64:
            self._count("slaac_bad_prefix_length")  # EUI-64 interface identifiers need a /64
            return
        address = address_from_prefix(pio.prefix, self.mac)
        if address in self.addresses:
            return
        entry = self._add_address(
            address,
            pio.prefix,
            AddressOrigin.SLAAC,
            lifetime_deadline(now, pio.valid_lifetime),
            lifetime_deadline(now, pio.preferred_lifetime),
            now,
        )
        if entry is not None and self.care_of_address is None:
            self.care_of_address = address

    # ---------------------------------------------------------------- NS / NA

    def _add_address(
        self,
        address: IPv6Address,
        prefix: IPv6Network,
        origin: AddressOrigin,
        valid_until: float,
        preferred_until: float,
        now: float,
        *,
        run_dad: bool = True,
    ) -> AddressEntry | None:
        if address in self.addresses:
            return None
        dad = run_dad and self.config.dup_addr_detect_transmits > 0
        state = self._dad_state(origin) if dad else AddressState.PREFERRED
        entry = AddressEntry(address, prefix, origin, state, valid_until, preferred_until)
        entry.dad_enabled = dad
        self.addresses[address] = entry
        if state is not AddressState.TENTATIVE:
            self._report_ready(entry)
        if dad and self.link_is_up:
            self._start_dad(entry, now)
        return entry

    def _dad_state(self, origin: AddressOrigin) -> AddressState:
        # RFC 4429 2.1: optimistic DAD is for autoconfigured addresses, not manual ones.
        if self.config.optimistic_dad and origin is not AddressOrigin.STATIC:
            return AddressState.OPTIMISTIC
        return AddressState.TENTATIVE

    def _report_ready(self, entry: AddressEntry) -> None:
        if not entry.announced:
            entry.announced = True
            self._events.append(
                AddressReady(entry.address, entry.prefix, entry.valid_until, entry.preferred_until)
            )

    def _start_dad(self, entry: AddressEntry, now: float) -> None:
        entry.dad_probes_sent = 0
        self._dad_step(entry, now)

    def _dad_step(self, entry: AddressEntry, now: float) -> None:
        """Send the next DAD probe (RFC 4862 5.4.2) or, RetransTimer after the last one
        without a reply, declare the address unique."""
        if entry.dad_probes_sent < self.config.dup_addr_detect_transmits:
            self._send_nd(
                UNSPECIFIED,
                solicited_node_multicast(entry.address),
                NeighborSolicitation(target=entry.address),
            )
            entry.dad_probes_sent += 1
            entry.dad_next = now + self.neighbors.retrans_timer
            return
        entry.dad_next = None
        entry.state = (
            AddressState.PREFERRED if entry.preferred_until > now else AddressState.DEPRECATED
        )
        self._report_ready(entry)
        self._send_deferred_solicits(now)

    def _address_duplicate(self, entry: AddressEntry) -> None:
        """RFC 4862 5.4.5: stop using the address."""
        self._count("dad_duplicate")
        del self.addresses[entry.address]
        if entry.address == self.care_of_address:
            self.care_of_address = None
        self._events.append(AddressDuplicate(entry.address))
