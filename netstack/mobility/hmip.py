"""The terminal's HMIPv6 (RFC 5380; patent E6, Fig. 27-33): MAP selection, RCoA/LCoA, local BU.

Sans-IO, beside the home registration's `MobileNode` (which it drives). Inputs from the link:
`map_discovered`, `movement_detected`, `address_ready`, `address_expired`, `link_down`, then
`resolve(now)` once the link's events of one receive are in (an RA brings the prefix and the
MAP option together, in either order). From the network: `receive_binding_ack` for BAs from
the MAP. Timers: `get_timer`, `handle_timer`. Outputs: `messages_to_send()` (local BUs),
`next_event()` (LocalTunnelUp / LocalTunnelDown), and `route_home_message(m)`, which shapes the
home registration's signalling for the configured registration type.

The local registration is a second `MobileNode` whose "home agent" is the MAP and whose "home
address" is the RCoA (BUL table 210 entries, retransmission, lifetimes and BA routine reused);
its BUs leave with the M flag instead of the H flag. Once the MAP accepts, the home registration is
attached with the RCoA as care-of address; a move inside the MAP domain changes only the LCoA,
so only a local BU leaves (the home `MobileNode` sees the same RCoA and stays silent).

Registration types (table 220 scenarios 10100/10200/10300):
1. MN-HA signalling tunnelled MN-MAP: the BU (RCoA -> HA, HAO = HoA) in an LCoA -> MAP tunnel;
   the BA comes back to the RCoA, so through the MAP's tunnel.
2. The BU leaves directly from the RCoA (no tunnel); the BA comes back via the MAP's tunnel.
3. Direct to the HA, as the patent describes: the BU from the LCoA with the RCoA in the Home
   Address option and the home address in an Alternate Care-of Address option; the HA binds
   HoA -> RCoA and answers the LCoA directly.

Choices where RFC 5380 leaves room:
- MAP selection: a MAP with valid lifetime 0 or preference 0 is unusable; among the rest the
  highest preference wins, then the smallest distance, then the lowest address.
- The RCoA is the MAP's /64 with the LCoA's interface identifier (no DAD by the terminal: the
  MAP runs DAD for a new RCoA on its link before it accepts, RFC 5380 8).
- A MAP stays usable while the link's RAs carry its option; an option with valid lifetime 0
  withdraws it at once (the RFC's way to retire a MAP). Each local BU asks no more than the
  MAP option's valid lifetime.
- A MAP that refuses us is not used again until it reappears in a later RA after movement;
  meanwhile the terminal registers the LCoA with its HA (plain Mobile IPv6).
- Leaving a MAP domain drops the local BUL entry without a de-registration: the old link is
  gone and the MAP's binding expires on its own lifetime.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, replace
from enum import IntEnum
from ipaddress import IPv6Address, IPv6Network

from netstack.mobility.constants import DEFAULT_TIMERS, MobilityTimers
from netstack.mobility.events import BindingAccepted, BindingExpired, BindingRefused
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.mobility.mobile_node import MobileNode
from netstack.wire.icmpv6_types import MapOption
from netstack.wire.mh import AlternateCareOfAddress, BindingAck, BindingUpdate

__all__ = [
    "HierarchicalMobility",
    "LocalTunnelDown",
    "LocalTunnelUp",
    "RegistrationType",
    "regional_care_of_address",
    "select_map",
]


class RegistrationType(IntEnum):
    """MAP registration types 1-3; `scenario` is the table 220 number."""

    TUNNELLED = 1
    DIRECT_BU = 2
    DIRECT = 3

    @property
    def scenario(self) -> int:
        return 10000 + 100 * int(self)


@dataclass(frozen=True)
class LocalTunnelUp:
    """The MAP accepted RCoA -> LCoA: data of the home address now nests in LCoA <-> MAP."""

    local_care_of_address: IPv6Address
    map_address: IPv6Address
    regional_care_of_address: IPv6Address


@dataclass(frozen=True)
class LocalTunnelDown:
    """No MAP binding to use (left the domain, refused, lost the link)."""


HmipEvent = LocalTunnelUp | LocalTunnelDown


def select_map(options: list[MapOption]) -> MapOption | None:
    usable = [o for o in options if o.valid_lifetime > 0 and o.preference > 0]
    if not usable:
        return None
    return max(usable, key=lambda o: (o.preference, -o.distance, -int(o.map_address)))


def regional_care_of_address(map_address: IPv6Address, lcoa: IPv6Address) -> IPv6Address:
    """The MAP's /64 prefix with the LCoA's interface identifier."""
    prefix = int(map_address) >> 64 << 64
    return IPv6Address(prefix | (int(lcoa) & ((1 << 64) - 1)))


class HierarchicalMobility:
    def __init__(
        self,
        home: MobileNode,
        *,
        registration_type: RegistrationType = RegistrationType.TUNNELLED,
        requested_lifetime: int = 300,
        timers: MobilityTimers = DEFAULT_TIMERS,
        require_protection: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self.home = home
        self.registration_type = RegistrationType(registration_type)
        self.requested_lifetime = requested_lifetime
        self.timers = timers
        self.require_protection = require_protection
        self._rng = rng if rng is not None else random.Random()
        self.counters: dict[str, int] = {}
        self.maps: dict[IPv6Address, MapOption] = {}  # as the current link advertises them
        self._refused: set[IPv6Address] = set()
        self.lcoa: IPv6Address | None = None
        self.lcoa_valid_until = 0.0
        self.current_map: MapOption | None = None
        self.rcoa: IPv6Address | None = None
        self.local: MobileNode | None = None
        self._locals: dict[IPv6Address, MobileNode] = {}  # per MAP: sequence numbers survive
        self.local_tunnel: LocalTunnelUp | None = None
        self._dirty = False
        self._home_coa: IPv6Address | None = None
        self._events: deque[HmipEvent] = deque()

    # ------------------------------------------------------------ link inputs

    def map_discovered(self, option: MapOption, now: float) -> None:
        """A new or changed MAP option (NdHost reports changes only: an unchanged option in
        every RA keeps the MAP usable; an AR withdraws it with lifetime 0)."""
        self.maps[option.map_address] = option
        self._dirty = True

    def movement_detected(self, now: float) -> None:
        """A new link: its RAs say again which MAPs serve it."""
        self.maps.clear()
        self._refused.clear()
        self._dirty = True

    def address_ready(self, address: IPv6Address, valid_until: float, now: float) -> None:
        self.lcoa = address
        self.lcoa_valid_until = valid_until
        self._dirty = True

    def address_expired(self, address: IPv6Address, now: float) -> None:
        if address != self.lcoa:
            return
        self.lcoa = None
        if self.local is not None:
            self.local.detach(now)
        self.home.detach(now)

    def link_down(self, now: float) -> None:
        if self.local is not None:
            self.local.detach(now)

    def resolve(self, now: float) -> None:
        """Decide after a batch of link events: local BU to the chosen MAP, or plain MIPv6."""
        if not self._dirty:
            return
        self._dirty = False
        lcoa = self.lcoa
        if lcoa is None:
            return
        chosen = None
        if lcoa not in self.home.home_prefix:
            chosen = select_map([o for a, o in self.maps.items() if a not in self._refused])
        if chosen is None:
            self._leave_map(now)
            self._attach_home(lcoa, self.lcoa_valid_until, now)
            return
        if self.current_map is None or chosen.map_address != self.current_map.map_address:
            self._leave_map(now)
            self._count("map_selected")
        self.current_map = chosen
        self.rcoa = regional_care_of_address(chosen.map_address, lcoa)
        local = self._locals.get(chosen.map_address)
        if local is None or local.home_address != self.rcoa:
            local = MobileNode(
                self.rcoa, chosen.map_address,
                home_prefix=IPv6Network((int(chosen.map_address) >> 64 << 64, 64)),
                requested_lifetime=self.requested_lifetime, timers=self.timers,
                require_protection=self.require_protection, rng=self._rng,
            )
            self._locals[chosen.map_address] = local
        self.local = local
        self._count("local_binding_update_triggered")
        local.attach(lcoa, min(self.lcoa_valid_until, now + chosen.valid_lifetime), now)
        self._drain_local(now)

    # ------------------------------------------------------------ network inputs

    def handles(self, src: IPv6Address, destination: IPv6Address) -> bool:
        """A Mobility Header message from the current MAP to the RCoA is the local BA's."""
        return (self.local is not None and src == self.local.home_agent
                and destination == self.local.home_address)

    def receive_binding_ack(self, src: IPv6Address, message: BindingAck, now: float,
                            *, protected: bool = False) -> None:
        if self.local is None:
            self._count("local_ba_without_map")
            return
        self.local.receive_binding_ack(src, message, now, protected=protected)
        self._drain_local(now)

    # ------------------------------------------------------------ timers and outputs

    def get_timer(self) -> float | None:
        return self.local.get_timer() if self.local is not None else None

    def handle_timer(self, now: float) -> None:
        if self.local is not None:
            self.local.handle_timer(now)
            self._drain_local(now)

    def messages_to_send(self) -> list[OutgoingMobilityMessage]:
        """Local BUs: the local `MobileNode` builds home registrations; as MAP registrations
        they carry the M flag instead of the H flag (RFC 5380 6.1)."""
        if self.local is None:
            return []
        return [
            replace(m, message=replace(m.message, home_registration=False, map_registration=True))
            if isinstance(m.message, BindingUpdate) else m
            for m in self.local.messages_to_send()
        ]

    def next_event(self) -> HmipEvent | None:
        return self._events.popleft() if self._events else None

    def route_home_message(
        self, message: OutgoingMobilityMessage
    ) -> tuple[OutgoingMobilityMessage, bool]:
        """Shape a home-registration message for the registration type.

        Returns (message, through_map): through_map asks the caller to put the sealed packet in
        the LCoA -> MAP tunnel (type 1).
        """
        tunnel = self.local_tunnel
        if tunnel is None or message.src != tunnel.regional_care_of_address:
            return message, False
        if self.registration_type is RegistrationType.TUNNELLED:
            self._count("home_bu_via_map")
            return message, True
        if self.registration_type is RegistrationType.DIRECT_BU:
            self._count("home_bu_direct_from_rcoa")
            return message, False
        bu = message.message
        if not isinstance(bu, BindingUpdate) or message.home_address is None:
            return message, False
        self._count("home_bu_direct_from_lcoa")
        rewritten = replace(bu, options=(*bu.options, AlternateCareOfAddress(message.home_address)))
        return OutgoingMobilityMessage(tunnel.local_care_of_address, message.dst, rewritten,
                                       home_address=tunnel.regional_care_of_address), False

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "map": str(self.current_map.map_address) if self.current_map else None,
            "rcoa": str(self.rcoa) if self.current_map and self.rcoa else None,
            "lcoa": str(self.lcoa) if self.lcoa else None,
            "registration_type": int(self.registration_type),
            "scenario": self.registration_type.scenario,
            "local_tunnel_up": self.local_tunnel is not None,
            "maps": [
                {"address": str(a), "distance": o.distance, "preference": o.preference,
                 "valid_lifetime": o.valid_lifetime, "refused": a in self._refused}
                for a, o in self.maps.items()
            ],
            "binding_update_list": self.local.binding_update_list.as_dict(now) if self.local else [],
            "counters": dict(self.counters),
        }

    # ------------------------------------------------------------ internals

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _attach_home(self, coa: IPv6Address, valid_until: float, now: float) -> None:
        if coa == self._home_coa and self.home.attached:
            return
        self._home_coa = coa
        self.home.attach(coa, valid_until, now)

    def _leave_map(self, now: float) -> None:
        if self.current_map is None:
            return
        self._count("map_left")
        if self.local is not None:
            self.local.detach(now)
            self.local.binding_update_list.remove(self.local.home_agent)
        self.local = None
        self.current_map = None
        self.rcoa = None
        if self.local_tunnel is not None:
            self.local_tunnel = None
            self._events.append(LocalTunnelDown())

    def _drain_local(self, now: float) -> None:
        local = self.local
        if local is None:
            return
        while (event := local.next_event()) is not None:
            if isinstance(event, BindingAccepted):
                self._count("local_binding_accepted")
                assert self.current_map is not None
                up = LocalTunnelUp(event.care_of_address, event.destination, event.home_address)
                if up != self.local_tunnel:
                    self.local_tunnel = up
                    self._events.append(up)
                until = min(self.lcoa_valid_until, now + self.current_map.valid_lifetime)
                self._attach_home(event.home_address, until, now)
            elif isinstance(event, BindingRefused):
                self._count("local_binding_refused")
                assert self.current_map is not None
                self._refused.add(self.current_map.map_address)
                self._leave_map(now)
                self._dirty = True
                self.resolve(now)  # plain Mobile IPv6 with the LCoA
                return
            elif isinstance(event, BindingExpired):
                self._count("local_binding_expired")
                if self.local_tunnel is not None:
                    self.local_tunnel = None
                    self._events.append(LocalTunnelDown())
