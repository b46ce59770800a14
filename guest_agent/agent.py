"""The guest agent: the terminal's mobility stack as one daemon (patent Fig. 5, units 22-25).

Composition only: the visited link (LinkNode: AF_PACKET + NdHost), the Mobile IPv6 unit
(MobileNode, BUL table 210), the IPv6 packet processing unit (GuestDataPlane, send routine 100
and receive routine 120) and `hoa0`. BA routine 60/70 (`_on_mobility_event`, `_on_esp`)
and the rest of the mobility signalling and movement handling live in
guest_agent/mobility_events.py.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from guest_agent.config import AgentConfig
from guest_agent.dataplane import GuestDataPlane
from guest_agent.fast_path import VISITED_LINK_PROTOCOL, AgentFastPath
from guest_agent.hmip import TerminalHmip
from guest_agent.host_side import HostSide
from guest_agent.mobile_network import attach_mobile_network, mobile_router
from guest_agent.mobility_events import GuestMobilityEvents
from guest_agent.route_optimisation import RouteOptimisation
from guest_agent.security import GuestSecurity
from guest_agent.tls_gateway import make_tls_gateway
from netstack.mobility.constants import MobilityTimers
from netstack.mobility.mobile_node import MobileNode
from netstack.nd.config import NdConfig
from netstack.nd.host import NdHost
from netstack.runtime.afpacket import PacketLink
from netstack.runtime.afpacket_split import serve_after_tc
from netstack.runtime.daemon import answer_control, merged_counters
from netstack.runtime.link_node import LinkNode
from netstack.runtime.linkconfig import LinkMonitor, configure_link, link_is_up
from netstack.runtime.loop import NodeLoop
from netstack.runtime.sa_state import SaStatePersister
from netstack.runtime.tun import TunDevice

log = logging.getLogger("guest_agent")

_ETHERTYPE_IPV6 = b"\x86\xdd"
_MOBILITY_CHAIN = frozenset((0, 43, 60, 135))  # HbH, Routing (RH2), Dest Opts (HAO), MH
_ND_ICMP_TYPES = frozenset((133, 134, 135, 136, 137))


class GuestAgent(GuestMobilityEvents):
    """One mobile node on one visited link, serving the home address on `hoa0`."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.counters: Counter[str] = Counter()
        mob = config.mobility
        self.home_address = mob.home_address
        self.home_prefix: IPv6Network = mob.home_prefix
        # IPsec first: an unsafe key file is refused before any interface is touched.
        self.security = GuestSecurity(
            config.ipsec, home_address=mob.home_address, home_agent=mob.home_agent
        )
        self.sa_state = SaStatePersister(
            config.node.state_dir / f"{config.node.name}-esp-state.json",
            (self.security.mobility, self.security.end_to_end),
        )
        self.sa_state.restore()
        ifname = config.link.interface
        if config.link.manage_interface:
            configure_link(ifname, disable_ipv6=True, offloads_off=True)
        self.link = PacketLink(ifname, vnet_hdr=config.link.offloads)
        if config.fastpath.enabled:  # only what the tc programs pass on (guest_agent/fast_path)
            serve_after_tc(self.link, VISITED_LINK_PROTOCOL)
        # RFC 6275 11.5.1: after a link change the MN may solicit at once (no random delay).
        nd = NdHost(
            self.link.mac,
            config=NdConfig(optimistic_dad=config.link.optimistic_dad, max_rtr_solicitation_delay=0.0),
        )
        self.node = LinkNode(self.link, nd, self.counters)
        if config.link.tx_thread:
            self.node.use_background_sender()
        self.nd = nd
        nd.unspecified_solicit_targets.add(mob.home_agent)  # returning home, RFC 6275 11.5.5
        timers = MobilityTimers(
            initial_bindack_timeout_first_reg=mob.initial_bindack_timeout_first_reg,
            initial_bindack_timeout=mob.initial_bindack_timeout,
            max_bindack_timeout=mob.max_bindack_timeout,
        )
        self.mobile_node = MobileNode(
            mob.home_address,
            mob.home_agent,
            home_prefix=mob.home_prefix,
            requested_lifetime=mob.requested_lifetime,
            timers=timers,
            require_protection=config.ipsec.require_protection,
        )
        if config.nemo.prefixes:  # NEMO: a mobile router registers its prefixes (RFC 3963)
            self.mobile_node = mobile_router(config, timers)
        self.dataplane = GuestDataPlane(mob.home_address.packed, self.link.mac, self.counters)
        self.dataplane.partial_checksums = self.link.vnet_hdr
        if self.security.esp_tunnel:
            self.dataplane.security = self.security
        self.hmip = TerminalHmip(config, self.mobile_node, self.dataplane, self.counters)
        self.tun = TunDevice(config.tun.name, config.tun.mtu)
        self.tun.add_address(mob.home_address, 128)
        if config.tun.default_route:
            self.tun.add_route(IPv6Network("::/0"))
        self.monitor = LinkMonitor(ifname)
        # Virtual network 15 to the host OS (IPv4 apps translated, IPv6 apps passed through).
        self.host_side: HostSide | None = None
        # Issue 13 (E8): host flows the TLS-gateway policy selects go to the guest's relay.
        self.tls_gateway = make_tls_gateway(config, self.counters)
        if config.host_link.interface:
            send, send_super = self._send_from_home_address, self._send_super_frame
            if self.tls_gateway is not None:
                send = self.tls_gateway.wrap_send(send)
                send_super = self.tls_gateway.wrap_super_frame(send_super)
            self.host_side = HostSide(
                config, self.counters, send, tunnel_mtu=config.tun.mtu,
                send_super_frame=send_super,
            )
            if self.tls_gateway is not None:
                self.tls_gateway.attach_host(self.host_side)
            self.hmip.switch_on_scenario(self.host_side)  # table 220: the configured MAP type
        self.route_optimisation = RouteOptimisation.from_config(  # E3 Fig. 20: 10011 / 11001
            config, hmip=self.hmip.enabled, dataplane=self.dataplane, node=self.node,
            counters=self.counters, scenarios=self.host_side.scenarios if self.host_side else None)
        self.mobile_network = attach_mobile_network(self)  # NEMO: None unless [nemo] prefixes
        self.fastpath = AgentFastPath(self)  # eBPF tc programs under this Python path
        self.loop: NodeLoop | None = None
        self.care_of_address: IPv6Address | None = None
        self.started_at = time.monotonic()
        self._movement_at: float | None = None
        self.handovers: list[dict[str, Any]] = []
        self.last_refusal: dict[str, Any] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, loop: NodeLoop) -> None:
        self.loop = loop
        loop.add_reader(self.link, self._on_link_readable)
        loop.add_reader(self.tun, self._on_tun_readable)
        loop.add_reader(self.monitor, self._on_link_state)
        if self.host_side is not None:
            self.host_side.start(loop.loop)
            loop.add_reader(self.host_side.link, self._on_host_readable)
        if self.tls_gateway is not None:
            self.tls_gateway.start(loop.loop, loop.add_reader, self._from_tls_relay)
        now = loop.now()
        if self.mobile_network is not None:
            self.mobile_network.start(now)
        self.fastpath.start(now)
        if link_is_up(self.config.link.interface):
            self.nd.link_up(now)
        self._after_input(now)

    def close(self) -> None:
        self.fastpath.close()
        self.sa_state.save(time.monotonic())
        if self.mobile_network is not None:  # a final RA (router lifetime 0)
            with contextlib.suppress(OSError):
                self.mobile_network.stop(time.monotonic())
        if self.host_side is not None:
            self.host_side.close()
        if self.tls_gateway is not None:
            self.tls_gateway.close()
        for closer in (self.monitor.close, self.tun.close, self.node.close):
            with contextlib.suppress(OSError):
                closer()

    def on_timer(self, now: float) -> None:
        self.nd.handle_timer(now)
        self.mobile_node.handle_timer(now)
        self.route_optimisation.handle_timer(now)
        self.hmip.handle_timer(now)
        if self.host_side is not None:
            self.host_side.handle_timer(now)
        if self.mobile_network is not None:
            self.mobile_network.handle_timer(now)
        self.fastpath.handle_timer(now)
        self._after_input(now)

    # ------------------------------------------------------------------ inputs

    def _on_link_state(self) -> None:
        now = time.monotonic()
        for up in self.monitor.poll():
            if up:
                log.info("link %s up: soliciting routers", self.config.link.interface)
                self._movement_at = now
                self.nd.link_up(now)
            else:
                log.info("link %s down", self.config.link.interface)
                self.counters["link_down"] += 1
                self.nd.link_down(now)
                self.mobile_node.detach(now)
                self.hmip.link_down(now)
                self.dataplane.set_next_hop(None)
        self._after_input(now)

    def _on_link_readable(self) -> None:
        now = time.monotonic()
        tun_out: list[memoryview] = []
        for frame, packet in self.node.received_ipv6():
            next_header = packet[6]
            if next_header == 41 and self.hmip.enabled:
                if (packet := self.hmip.strip_map_tunnel(packet)) is None:  # type: ignore[assignment]
                    continue
                next_header = packet[6]
            if next_header == 58 and len(packet) > 40 and packet[40] in _ND_ICMP_TYPES:
                self.node.handle_icmpv6(packet, bytes(frame[6:12]), now)
            elif self.route_optimisation.receive(packet, now, tun_out):
                continue  # RH2 data, a correspondent's signalling (receive routine 120)
            elif next_header in _MOBILITY_CHAIN:
                self._handle_mobility(packet, now, tun_out)
            elif next_header == 50:
                self._on_esp(packet, now, tun_out)
            else:
                inner = self.dataplane.inbound(packet)
                if inner is not None:
                    tun_out.append(inner)
        if self.mobile_network is not None:  # NEMO: packets for the mobile network
            tun_out = self.mobile_network.route_inbound(tun_out, now)
        tun_out = self.route_optimisation.take_signalling(tun_out, now)  # HoTs
        tun_out = self.security.to_hoa(tun_out, now)  # end-to-end ESP terminates here
        host_side = self.host_side
        for packet in tun_out:
            # Receive routine 120, last step: to the host (E1/E2) or to hoa0.
            if host_side is None or not host_side.deliver(packet, now):
                self.tun.write(packet)
        if host_side is not None:
            host_side.flush()
        self._after_input(now)

    def _on_tun_readable(self) -> None:
        now = time.monotonic()
        packets = self.tun.read_batch()
        if self.host_side is not None:
            self.host_side.note_guest_outbound(packets, now)
        self._send_from_home_address(packets, now)

    def _from_tls_relay(self, packets: list[bytes]) -> None:
        """The guest's TLS relay answers the host (E8): like packets out of the tunnel."""
        if self.host_side is None:
            return
        now = time.monotonic()
        for packet in packets:
            self.host_side.deliver(memoryview(packet), now)
        self.host_side.flush()

    def _on_host_readable(self) -> None:
        assert self.host_side is not None
        now = time.monotonic()
        self.host_side.on_readable(now)
        if self.mobile_network is not None:  # NEMO: the mobile network's packets to the HA
            self.mobile_network.flush()
            forwarded = self.mobile_network.take_outbound()
            if forwarded:
                self._send_from_home_address(forwarded, now, forwarded=True)
        self._after_input(now)

    def _send_from_home_address(
        self, packets: list[bytes], now: float, *, forwarded: bool = False
    ) -> None:
        """Send routine 100: packets of the home address (or `forwarded` from the mobile
        network), tunnelled (or native at home)."""
        if not forwarded:
            packets = self.security.from_hoa(packets, now)  # end-to-end ESP before the tunnel
            packets = self.route_optimisation.outbound(packets, now)  # HAO, direct to bound CNs
        frames, unresolved = self.dataplane.outbound(packets, forwarded=forwarded)
        self.node.send_frames(frames)
        if unresolved or self.route_optimisation.signalling_pending:
            self.route_optimisation.signalling_pending = False
            for packet in unresolved:
                if self.dataplane.tunnel_up:
                    next_dst = self.mobile_node.home_agent
                else:
                    next_dst = IPv6Address(bytes(packet[24:40]))
                self.node.send_packet(packet, next_dst, now)
            self._after_input(now)

    def _send_super_frame(self, packet: bytearray, gso_size: int, now: float) -> bool:
        """Send routine 100 for a translated TSO super-frame, cut once into tunnel packets.

        False when end-to-end ESP or the tunnel's state needs the per-packet path.
        """
        if self.security.end_to_end is not None or self.route_optimisation.takes(packet):
            return False
        items = self.dataplane.tunnel_super_frame(packet, gso_size)
        if items is None:
            return False
        self.node.send_offloaded(items)  # type: ignore[arg-type]
        return True

    # ------------------------------------------------------------------ events and outputs

    def _after_input(self, now: float) -> None:
        # Events can cascade (an address makes a BU, a BA makes an NA), so drain until quiet.
        for _ in range(16):
            progressed = False
            while (event := self.nd.next_event()) is not None:
                progressed = True
                self._on_nd_event(event, now)
            while (event := self.mobile_node.next_event()) is not None:
                progressed = True
                self._on_mobility_event(event, now)
            for message, via_map in self.hmip.outgoing(self.mobile_node.messages_to_send(), now):
                progressed = True
                packet = self.security.seal_mobility_message(message, now)
                if packet is None:
                    continue  # dropped by the SPD, counted by the processor
                self.counters["tx_mobility_messages"] += 1
                next_dst = message.dst
                if via_map:  # HMIPv6 registration type 1
                    packet, next_dst = self.hmip.through_map(packet)
                self.node.send_packet(packet, next_dst, now)
            progressed = self.route_optimisation.flush(now) or progressed
            if not progressed:
                break
        self.node.flush()
        self.fastpath.sync()  # the host's MAC, the scenarios (no-op when unchanged)
        if self.sa_state.processors:
            self.sa_state.maybe_save(now)
        if self.loop is not None:
            self.loop.arm_earliest(
                [
                    self.nd.get_timer(),
                    self.mobile_node.get_timer(),
                    self.route_optimisation.get_timer(),
                    self.hmip.get_timer(),
                    self.host_side.get_timer() if self.host_side is not None else None,
                    self.mobile_network.get_timer() if self.mobile_network is not None else None,
                    self.fastpath.get_timer(),
                ]
            )

    # ------------------------------------------------------------------ control API

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        mn = self.mobile_node.as_dict(now)
        counters = merged_counters(self.counters, self.nd.counters, self.mobile_node.counters,
                                   self.route_optimisation.registrations.counters)
        return {
            "node": self.config.node.name,
            "role": "mobile_node",
            "home_address": str(self.home_address),
            "home_agent": str(self.mobile_node.home_agent),
            "care_of_address": str(self.care_of_address) if self.care_of_address else None,
            "at_home": self.dataplane.at_home,
            "tunnel": {
                "up": self.dataplane.tunnel_up,
                "care_of_address": _addr(self.dataplane.care_of_address),
                "home_agent": _addr(self.dataplane.home_agent),
            },
            "binding_update_list": (mn["binding_update_list"] + self.hmip.local_binding_update_list(now)
                                    + self.route_optimisation.rows(now)),
            "route_optimisation": self.route_optimisation.status(now),
            "hmip": self.hmip.status(now),
            "refusal": self.last_refusal,
            "handovers": self.handovers,
            "neighbor_discovery": self.nd.as_dict(),
            "counters": counters,
            "ipsec": self.security.as_dict(now),
            "fastpath": self.fastpath.as_dict(),
            "uptime": round(now - self.started_at, 3),
            **(self.host_side.status(now) if self.host_side is not None else {}),
            **(self.tls_gateway.status(now) if self.tls_gateway is not None else {}),
            **(self.mobile_network.status(self.mobile_node) if self.mobile_network else {}),  # type: ignore[arg-type]
        }

    def handle_control(self, request: dict[str, Any]) -> dict[str, Any]:
        return answer_control(
            request, self.config.node.name, {"status": self.status, "host_config": self._host_config}
        )

    def _host_config(self) -> dict[str, Any]:
        if self.host_side is None:
            return {"error": "this guest has no host link configured"}
        return self.host_side.host_config()


def _addr(packed: bytes | None) -> str | None:
    return str(IPv6Address(packed)) if packed else None
