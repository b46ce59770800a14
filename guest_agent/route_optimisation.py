"""Route optimisation in the guest (patent E3 Fig. 20, scenarios 10011 / 11001).

Glue between the sans-IO `CorrespondentRegistrations` (table 210 rows per correspondent) and
the agent's I/O: send routine 100 sends packets of a bound correspondent from the CoA with a
Home Address option (one precomputed header per correspondent, no tunnel); receive routine
120 takes packets with a type 2 Routing Header, the correspondents' signalling and their
ICMPv6 Parameter Problems off the link before the tunnel path sees them. Everything else
keeps the reverse tunnel, which is always correct, so a correspondent without Mobile IPv6
never waits for return routability.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from ipaddress import IPv6Address, IPv6Network
from typing import TYPE_CHECKING, Any

from netstack.mobility.constants import MAX_RR_BINDING_LIFETIME
from netstack.mobility.events import (
    BindingAccepted,
    BindingExpired,
    BindingRefused,
    ReturnedHome,
)
from netstack.mobility.route_optimisation import (
    CorrespondentRegistrations,
    RouteOptimised,
    RouteTunnelled,
)
from netstack.wire.errors import ParseError
from netstack.wire.ipv6 import parse_ipv6_packet
from netstack.wire.mh_codec import build_mobility_packet, decode_mobility_packet
from netstack.wire.ro_headers import (
    INSERTABLE,
    HomeAddressInserter,
    routing_header_address,
    strip_routing_header,
)

if TYPE_CHECKING:
    from collections import Counter

    from guest_agent.config import AgentConfig
    from guest_agent.dataplane import GuestDataPlane
    from guest_agent.scenario import ScenarioPolicy
    from netstack.runtime.link_node import LinkNode

log = logging.getLogger("guest_agent.ro")

_ICMPV6 = 58
_PARAMETER_PROBLEM = 4
_MH = 135
_ROUTING = 43


@dataclass
class RouteOptimisationSection:
    """`[route_optimisation]`: on/off, and which correspondents ("all", or prefixes)."""

    enabled: bool = False
    correspondents: list[str] = field(default_factory=lambda: ["all"])
    requested_lifetime: int = MAX_RR_BINDING_LIFETIME
    unsupported_hold: float = 120.0  # seconds a correspondent without MIPv6 stays tunnel-only

    def __post_init__(self) -> None:
        for item in self.correspondents:
            if item != "all":
                IPv6Network(item)  # ValueError: one clear line from the config loader

    def networks(self) -> tuple[IPv6Network, ...] | None:
        if "all" in self.correspondents:
            return None
        return tuple(IPv6Network(item) for item in self.correspondents)


class RouteOptimisation:
    """The guest's route optimisation unit: per-correspondent direct paths and their RR."""

    def __init__(
        self,
        section: RouteOptimisationSection,
        *,
        home_address: IPv6Address,
        home_agent: IPv6Address,
        home_prefix: IPv6Network,
        dataplane: GuestDataPlane,
        node: LinkNode,
        counters: Counter[str],
        scenarios: ScenarioPolicy | None = None,
    ) -> None:
        self.enabled = section.enabled
        self.home_address = home_address
        self._hoa = home_address.packed
        self.dataplane = dataplane
        self.node = node
        self.counters = counters
        self.registrations = CorrespondentRegistrations(
            home_address, home_agent, home_prefix,
            correspondents=section.networks(),
            requested_lifetime=section.requested_lifetime,
            unsupported_hold=section.unsupported_hold,
        )
        # Send routine 100's view: correspondent octets -> HAO template (the direct path).
        self.direct: dict[bytes, HomeAddressInserter] = {}
        # Destinations already offered to the registrations since the last change.
        self._seen: set[bytes] = set()
        # RR was started by outgoing traffic: the agent sends its messages right after the data.
        self.signalling_pending = False
        self.scenarios = scenarios
        if scenarios is not None:
            self._configure_scenarios(scenarios)

    @classmethod
    def from_config(cls, config: AgentConfig, *, hmip: bool, dataplane: GuestDataPlane,
                    node: LinkNode, counters: Counter[str],
                    scenarios: ScenarioPolicy | None) -> RouteOptimisation:
        """The agent's unit. With HMIPv6 on, RO stays off: RO from the RCoA through the MAP
        (RFC 5380) is not built, and a HAO from the LCoA would bypass the MAP."""
        mob = config.mobility
        section = config.route_optimisation
        if hmip and section.enabled:
            section = replace(section, enabled=False)
            log.warning("route optimisation is off: not supported together with [hmip]")
        return cls(section, home_address=mob.home_address, home_agent=mob.home_agent,
                   home_prefix=mob.home_prefix, dataplane=dataplane, node=node,
                   counters=counters, scenarios=scenarios)

    def _configure_scenarios(self, scenarios: ScenarioPolicy) -> None:
        """Table 220: 10011 / 11001 are on when route optimisation is configured."""
        from guest_agent.scenario import Scenario

        scenarios.set(Scenario.TRANSLATION_ON_ROUTE_OPTIMISATION,
                      self.enabled and scenarios.is_on(Scenario.TRANSLATION_ON))
        scenarios.set(Scenario.TRANSLATION_OFF_ROUTE_OPTIMISATION,
                      self.enabled and scenarios.is_on(Scenario.TRANSLATION_OFF))

    # ------------------------------------------------------------------ send routine 100

    def outbound(self, packets: list[bytes], now: float) -> list[bytes]:
        """Send packets of bound correspondents directly; return the rest (for the tunnel)."""
        direct = self.direct
        if not self.enabled or self.dataplane.at_home:
            return packets
        rest: list[bytes] = []
        frames: list[bytes] = []
        eth = self.dataplane.next_hop_header
        hoa = self._hoa
        started = False
        for packet in packets:
            dst = bytes(packet[24:40])
            inserter = direct.get(dst)
            if inserter is None or packet[6] not in INSERTABLE or packet[8:24] != hoa:
                rest.append(packet)
                if inserter is None and dst not in self._seen:
                    self._seen.add(dst)
                    started = self.registrations.want(IPv6Address(dst), now) or started
                continue
            out = inserter.insert(packet)
            inserter.packets += 1
            if eth is None:
                self.node.send_packet(bytes(out), IPv6Address(dst), now)
            else:
                frames.append(eth + out)
        if frames:
            self.node.send_frames(frames)
        sent = len(packets) - len(rest)
        if sent:
            self.counters["tx_route_optimised"] += sent
        if started:
            self.signalling_pending = True
        return rest

    def takes(self, packet: bytes | bytearray) -> bool:
        """A super-frame for a direct-path correspondent must be cut and sent per packet."""
        return bool(self.direct) and bytes(packet[24:40]) in self.direct

    # ------------------------------------------------------------------ receive routine 120

    def receive(self, packet: memoryview, now: float, tun_out: list[memoryview]) -> bool:
        """A packet from the visited link: True when route optimisation consumed it."""
        next_header = packet[6]
        if next_header not in (_ROUTING, _MH, _ICMPV6) or len(packet) < 48:
            return False
        coa = self.dataplane.care_of_address
        if coa is None or packet[24:40] != coa or packet[8:24] == self.dataplane.home_agent:
            if next_header == _MH and packet[24:40] == self._hoa and self.registrations.entries:
                return self._signalling(packet, now)  # at home: the CN's BA / HoT
            return False
        if next_header == _ROUTING:
            if routing_header_address(packet) != self._hoa:
                return False
            plain = strip_routing_header(packet, self._hoa)
            if plain[6] == _MH:
                return self._signalling(memoryview(plain), now)
            else:
                self.counters["rx_route_optimised"] += 1
                tun_out.append(memoryview(plain))
            return True
        if next_header == _MH:
            return self._signalling(packet, now)
        if packet[40] == _PARAMETER_PROBLEM:
            source = IPv6Address(bytes(packet[8:24]))
            if source in self.registrations.entries:
                self.registrations.receive_parameter_problem(source, now)
                return True
        return False

    def take_signalling(self, tun_out: list[memoryview], now: float) -> list[memoryview]:
        """HoTs arrive through the tunnel (to the home address): take them out of `tun_out`."""
        if not self.registrations.entries:
            return tun_out
        entries = self.registrations.entries
        keep: list[memoryview] = []
        for packet in tun_out:
            if packet[6] == _MH and IPv6Address(bytes(packet[8:24])) in entries:
                self._signalling(packet, now)
            else:
                keep.append(packet)
        return keep

    def _signalling(self, packet: memoryview, now: float) -> bool:
        """A correspondent's Mobility Header message; False (not consumed) from anyone else."""
        if IPv6Address(bytes(packet[8:24])) not in self.registrations.entries:
            return False  # not a correspondent of ours: the home registration's path
        try:
            parsed = parse_ipv6_packet(packet)
            message = decode_mobility_packet(parsed)
        except ParseError as exc:
            self.counters[f"rx_dropped_mh_{exc.reason}"] += 1
            return True
        self.registrations.receive(parsed, message, now)
        return True

    # ------------------------------------------------------------------ the home registration

    def on_mobility_event(self, event: object, now: float) -> None:
        """BA routine 60/70's events for the home registration."""
        self._seen.clear()
        regs = self.registrations
        if isinstance(event, BindingAccepted) and event.destination == regs.home_agent:
            regs.home_registered(event.care_of_address, now + event.lifetime, now)
        elif isinstance(event, BindingRefused | BindingExpired):
            regs.home_lost(now)  # (BindingDeregistered: ReturnedHome follows, de-register then)
        elif isinstance(event, ReturnedHome):
            regs.returned_home(now)

    # ------------------------------------------------------------------ outputs and timers

    def get_timer(self) -> float | None:
        return self.registrations.get_timer()

    def handle_timer(self, now: float) -> None:
        self.registrations.handle_timer(now)
        self._seen.clear()

    def flush(self, now: float) -> bool:
        """Send what the registrations produced and apply their events; True if anything."""
        regs = self.registrations
        progressed = False
        while (event := regs.next_event()) is not None:
            progressed = True
            self._seen.clear()
            key = event.correspondent.packed
            if isinstance(event, RouteOptimised):
                self.direct[key] = event.inserter
                log.info("route optimised: %s direct from %s", event.correspondent,
                         IPv6Address(event.inserter.care_of_address))
            elif isinstance(event, RouteTunnelled):
                self.direct.pop(key, None)
                log.info("route to %s through the tunnel (%s)", event.correspondent, event.reason)
            self._update_scenarios()
        tunnelled: list[bytes] = []
        for message in regs.messages_to_send():
            progressed = True
            packet = build_mobility_packet(message.src, message.dst, message.message,
                                           home_address=message.home_address,
                                           routing_type2=message.routing_type2)
            self.counters["tx_ro_signalling"] += 1
            if message.src == self.home_address and not self.dataplane.at_home:
                tunnelled.append(packet)  # HoTI: through the home agent (RFC 6275 5.2.5)
            else:
                self.node.send_packet(packet, message.dst, now)
        if tunnelled:
            frames, unresolved = self.dataplane.outbound(tunnelled)
            self.node.send_frames(frames)
            for packet in unresolved:
                self.node.send_packet(packet, regs.home_agent, now)
        return progressed

    def _update_scenarios(self) -> None:
        if self.scenarios is None:
            return
        self.scenarios.route_optimised(bool(self.direct))

    # ------------------------------------------------------------------ status

    def status(self, now: float) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "correspondents": [str(n) for n in self.registrations.correspondents]
            if self.registrations.correspondents is not None else "all",
            "direct_paths": len(self.direct),
        }

    def rows(self, now: float) -> list[dict[str, object]]:
        return self.registrations.as_list(now)
