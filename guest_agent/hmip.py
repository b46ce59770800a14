"""The guest agent's HMIPv6 glue (patent E6): `HierarchicalMobility` on the agent's link.

The protocol is in netstack.mobility.hmip; this module only connects it to the agent: ND
events in, the MAP's BA in, the nested tunnel (LCoA <-> MAP around the MN-HA tunnel) in the
data plane, the registration type's shaping of the home signalling, table 220 and `status`.
"""

from __future__ import annotations

import logging
from collections import Counter
from ipaddress import IPv6Address
from typing import TYPE_CHECKING, Any

from guest_agent.scenario import Scenario
from netstack.mobility.events import BindingAccepted
from netstack.mobility.hmip import (
    HierarchicalMobility,
    LocalTunnelDown,
    LocalTunnelUp,
    RegistrationType,
)
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.mobility.mobile_node import MobileNode
from netstack.nd.events import AddressExpired, AddressReady, MapDiscovered, MovementDetected
from netstack.wire.ip6ip6 import Encapsulator
from netstack.wire.mh import BindingAck

if TYPE_CHECKING:
    from guest_agent.config import AgentConfig
    from guest_agent.dataplane import GuestDataPlane
    from guest_agent.host_side import HostSide

log = logging.getLogger("guest_agent.hmip")

IPPROTO_IPV6 = 41


class TerminalHmip:
    """Every method is a no-op while `[hmip] enabled` is false, so the agent calls them plainly."""

    def __init__(self, config: AgentConfig, mobile_node: MobileNode, dataplane: GuestDataPlane,
                 counters: Counter[str]) -> None:
        self.enabled = config.hmip.enabled
        self.core = HierarchicalMobility(
            mobile_node,
            registration_type=RegistrationType(config.hmip.registration_type),
            requested_lifetime=config.hmip.requested_lifetime,
            timers=mobile_node.timers,
            require_protection=config.ipsec.require_protection,
        )
        self.home_address = mobile_node.home_address
        self.dataplane = dataplane
        self.counters = counters
        self._to_map: Encapsulator | None = None
        self._tunnel: tuple[bytes, bytes] | None = None  # (MAP, LCoA) packed

    # ------------------------------------------------------------------ inputs

    def handle_timer(self, now: float) -> None:
        if self.enabled:
            self.core.handle_timer(now)

    def link_down(self, now: float) -> None:
        if self.enabled:
            self.core.link_down(now)

    def get_timer(self) -> float | None:
        return self.core.get_timer() if self.enabled else None

    def take_mobility(self, src: IPv6Address, destination: IPv6Address, message: object,
                      now: float, protected: bool) -> bool:
        """True when a Mobility Header message is the MAP's (the local BA): handled here."""
        if not self.enabled or not self.core.handles(src, destination):
            return False
        if isinstance(message, BindingAck):
            self.core.receive_binding_ack(src, message, now, protected=protected)
        else:
            self.counters["rx_ignored_mh_from_map"] += 1
        return True

    def on_nd_event(self, event: object, now: float) -> None:
        if not self.enabled:
            return
        core = self.core
        if isinstance(event, MapDiscovered):
            log.info("MAP %s (distance %d, preference %d) advertised by %s",
                     event.option.map_address, event.option.distance, event.option.preference,
                     event.router)
            core.map_discovered(event.option, now)
        elif isinstance(event, MovementDetected):
            core.movement_detected(now)
        elif isinstance(event, AddressReady):
            if not event.address.is_link_local and event.address != self.home_address:
                core.address_ready(event.address, event.valid_until, now)
        elif isinstance(event, AddressExpired):
            core.address_expired(event.address, now)

    def strip_map_tunnel(self, packet: memoryview) -> memoryview | None:
        """Receive side: MAP -> LCoA outer header off; other packets pass unchanged."""
        tunnel = self._tunnel
        if tunnel is None or packet[8:24] != tunnel[0] or packet[24:40] != tunnel[1]:
            return packet
        end = 40 + ((packet[4] << 8) | packet[5])
        if end - 40 < 40 or end > len(packet) or packet[40] >> 4 != 6:
            self.counters["rx_dropped_map_tunnel_malformed"] += 1
            return None
        self.counters["rx_map_detunnelled"] += 1
        return packet[40:end]

    # ------------------------------------------------------------------ outputs

    def outgoing(self, home: list[OutgoingMobilityMessage], now: float
                 ) -> list[tuple[OutgoingMobilityMessage, bool]]:
        """The home registration's messages shaped by the registration type, then the local
        BUs: (message, through_map), through_map = put the sealed packet in LCoA -> MAP."""
        if not self.enabled:
            return [(m, False) for m in home]
        local = self._pump(now)
        return [self.core.route_home_message(m) for m in home] + [(m, False) for m in local]

    def _pump(self, now: float) -> list[OutgoingMobilityMessage]:
        """Decide after the link's events; apply tunnel changes; the local BUs to send."""
        self.core.resolve(now)
        while (event := self.core.next_event()) is not None:
            if isinstance(event, LocalTunnelUp):
                log.info("MAP %s binds %s -> %s", event.map_address,
                         event.regional_care_of_address, event.local_care_of_address)
                lcoa, map_address = event.local_care_of_address.packed, event.map_address.packed
                self._tunnel = (map_address, lcoa)
                self._to_map = Encapsulator(lcoa, map_address)
                self.dataplane.set_local_tunnel(lcoa, map_address)
            elif isinstance(event, LocalTunnelDown):
                log.info("no MAP binding: plain Mobile IPv6")
                self._tunnel = None
                self._to_map = None
                self.dataplane.set_local_tunnel(None, None)
        return self.core.messages_to_send()

    def through_map(self, packet: bytes) -> tuple[bytes, IPv6Address]:
        """Registration type 1: the sealed home BU inside LCoA -> MAP."""
        assert self._to_map is not None
        return bytes(self._to_map.encapsulate(packet)), IPv6Address(self._to_map.outer_dst)

    def switch_on_scenario(self, host_side: HostSide) -> None:
        """Table 220: the configured registration type's scenario is on (the others off)."""
        if self.enabled:
            host_side.scenarios.set(Scenario(self.core.registration_type.scenario), True)

    def on_home_binding(self, event: BindingAccepted, host_side: HostSide | None) -> None:
        """BA routine 60 for a registration through the MAP: its scenario joins the active ones."""
        if not self.enabled or host_side is None or event.care_of_address != self.core.rcoa:
            return
        number = Scenario(self.core.registration_type.scenario)
        if host_side.scenarios.is_on(number) and number not in host_side.scenarios.active:
            host_side.scenarios.active = (*host_side.scenarios.active, number)

    def local_binding_update_list(self, now: float) -> list[dict[str, object]]:
        """The MAP's entries of table 210, shown with the home registration's."""
        if not self.enabled or self.core.local is None:
            return []
        return self.core.local.binding_update_list.as_dict(now)

    def status(self, now: float) -> dict[str, Any] | None:
        return self.core.as_dict(now) if self.enabled else None
