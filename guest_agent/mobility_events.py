"""The guest agent's mobility signalling and movement handling (patent Fig. 5, Mobile IPv6
unit 23; BA routines 60 and 70).

Mobility Headers that reach the terminal (BA, BE, BRR; in ESP when the SPD says so), Neighbor
Discovery events (movement detection, a new care-of address, returning home: RFC 6275 11.5)
and the MobileNode's binding events, which set up or clear the mobile tunnel (step 506). A
mixin of `GuestAgent` (guest_agent/agent.py), which owns the link, the data plane and hoa0.
"""

from __future__ import annotations

import logging

from guest_agent.security import MOBILITY, TUNNELLED
from netstack.mobility.events import (
    BindingAccepted,
    BindingDeregistered,
    BindingExpired,
    BindingRefused,
    ReturnedHome,
)
from netstack.nd.events import AddressExpired, AddressReady, MovementDetected, RouterChanged
from netstack.wire.errors import ParseError
from netstack.wire.mh import BindingAck, BindingError, BindingRefreshRequest
from netstack.wire.mh_codec import decode_mobility_packet

log = logging.getLogger("guest_agent")  # the agent's own logger, as before the split


class GuestMobilityEvents:
    """Receive side of mobility signalling and the reactions to ND and binding events."""

    def _handle_mobility(
        self, packet: memoryview, now: float, tun_out: list[memoryview], protected: bool = False
    ) -> None:
        parsed = self.node.parse(packet)
        if parsed is None:
            return
        if parsed.upper_protocol == 50 and not protected:
            self._on_esp(packet, now, tun_out)  # e.g. a BA in ESP behind its type 2 RH
            return
        if parsed.upper_protocol != 135:
            # Extension headers in front of ordinary traffic (e.g. at home): data path.
            inner = self.dataplane.inbound(packet)
            if inner is not None:
                tun_out.append(inner)
            return
        try:
            message = decode_mobility_packet(parsed)
        except ParseError as exc:
            self.counters[f"rx_dropped_mh_{exc.reason}"] += 1
            return
        destination = parsed.effective_destination
        if self.hmip.take_mobility(parsed.src, destination, message, now, protected):
            return  # the MAP's answer to a local BU
        # a Binding Error goes to the offending packet's source, the CoA (RFC 6275 9.3.3)
        to_coa = isinstance(message, BindingError) and destination == self.care_of_address
        if destination != self.home_address and not to_coa:
            self.counters["rx_dropped_mh_not_for_home_address"] += 1
            return
        if isinstance(message, BindingAck):
            self.mobile_node.receive_binding_ack(parsed.src, message, now, protected=protected)
            # BA routine 60 at once: tunnelled packets right behind the BA in this receive
            # batch are already addressed to the new care-of address.
            while (event := self.mobile_node.next_event()) is not None:
                self._on_mobility_event(event, now)
        elif isinstance(message, BindingError):
            self.mobile_node.receive_binding_error(parsed.src, message, now)
        elif isinstance(message, BindingRefreshRequest):
            self.mobile_node.receive_binding_refresh_request(parsed.src, message, now)
        else:
            self.counters["rx_ignored_mh_type"] += 1

    def _on_esp(self, packet: memoryview, now: float, tun_out: list[memoryview]) -> None:
        """Mobility-layer ESP (BA routine 70, Fig. 21/22 tunnel); logic in security.py."""
        found = self.security.receive_esp(packet, now)
        if found is None:
            return
        kind, plain = found
        if kind == MOBILITY:
            self._handle_mobility(memoryview(plain), now, tun_out, protected=True)
        elif kind == TUNNELLED:
            inner = self.dataplane.detunnel(memoryview(plain))
            if inner is not None:
                tun_out.append(inner)
        else:
            tun_out.append(memoryview(plain))

    def _on_nd_event(self, event: object, now: float) -> None:
        self.hmip.on_nd_event(event, now)
        if isinstance(event, RouterChanged):
            log.info("default router %s", event.router)
            self.dataplane.set_next_hop(event.router_mac)
        elif isinstance(event, MovementDetected):
            log.info("movement detected: prefixes %s", ", ".join(map(str, event.prefixes)))
            self.counters["movements_detected"] += 1
            if self._movement_at is None:
                self._movement_at = now
        elif isinstance(event, AddressReady):
            if event.address.is_link_local or event.address == self.home_address:
                return
            log.info("address %s ready (%s)", event.address, event.prefix)
            if self.dataplane.at_home and event.address not in self.home_prefix:
                self._leave_home()
            self.care_of_address = event.address
            if not self.hmip.enabled:  # with HMIPv6 the MAP logic picks the HA's CoA
                self.mobile_node.attach(event.address, event.valid_until, now)
        elif isinstance(event, AddressExpired) and event.address == self.care_of_address:
            self.care_of_address = None
            self.mobile_node.detach(now)

    def _on_mobility_event(self, event: object, now: float) -> None:
        self.route_optimisation.on_mobility_event(event, now)
        if isinstance(event, BindingAccepted):
            # BA routine 60 (scenario 10001 for now): set up the mobile tunnel (step 506).
            self.dataplane.set_tunnel(event.care_of_address.packed, event.destination.packed)
            self.security.binding_accepted(event.care_of_address)  # tunnel SAs follow the CoA
            self.last_refusal = None
            log.info(
                "binding accepted: %s via %s (lifetime %ds, seq %d)",
                event.home_address,
                event.care_of_address,
                event.lifetime,
                event.sequence,
            )
            self._record_handover(now, str(event.care_of_address))
            if self.host_side is not None:
                self.host_side.on_binding_accepted(event, now)
            self.hmip.on_home_binding(event, self.host_side)
        elif isinstance(event, BindingRefused):
            self.dataplane.clear_tunnel()
            self.counters["bindings_refused"] += 1
            self.last_refusal = {"status": event.status, "reason": event.reason}
            log.warning("binding refused by %s: %s (%d)", event.destination, event.reason, event.status)
        elif isinstance(event, BindingExpired | BindingDeregistered):
            self.dataplane.clear_tunnel()
        elif isinstance(event, ReturnedHome):
            self._arrive_home(now)

    def _arrive_home(self, now: float) -> None:
        """RFC 6275 11.5.4: after de-registration, own the home address on the home link."""
        log.info("at home: claiming %s on the home link", self.home_address)
        self.dataplane.clear_tunnel()
        self.dataplane.at_home = True
        self.nd.add_static_address(self.home_address, self.home_prefix.prefixlen, now, dad=True)
        self.nd.announce(self.home_address, now)
        self._record_handover(now, "home")

    def _leave_home(self) -> None:
        self.dataplane.at_home = False
        self.nd.remove_address(self.home_address)

    def _record_handover(self, now: float, where: str) -> None:
        if self._movement_at is None:
            return
        self.handovers.append({"to": where, "seconds": round(now - self._movement_at, 3)})
        del self.handovers[:-20]
        self._movement_at = None
