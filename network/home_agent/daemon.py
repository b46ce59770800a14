"""The home agent daemon (patent: HA 4 on home network 6): one-armed, userspace, on the home link.

Composition: LinkNode (AF_PACKET + NdHost with proxy ND), HomeAgent (binding cache), ProxyDad
and HomeAgentDataPlane. What the HA does with packets to its own address (BUs, reverse
tunnels, nested ESP) lives in network/home_agent/to_self.py. The kernel of the HA's namespace
has IPv6 disabled on the home link interface, because the CI kernel cannot parse the Home
Address option.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

from netstack.mobility.events import BindingCreated, BindingDeleted, BindingUpdated, DadRequested
from netstack.mobility.home_agent import HomeAgent, HomeAgentPolicy
from netstack.mobility.mh_errors import ErrorRateLimiter
from netstack.mobility.prefix_table import PrefixTable
from netstack.nd.config import NdConfig
from netstack.nd.events import RouterChanged
from netstack.nd.host import NdHost
from netstack.runtime.afpacket import PacketLink
from netstack.runtime.afpacket_split import serve_after_tc
from netstack.runtime.configfile import ConfigError
from netstack.runtime.daemon import answer_control, merged_counters
from netstack.runtime.link_node import LinkNode
from netstack.runtime.linkconfig import configure_link, link_is_up
from netstack.runtime.loop import NodeLoop
from netstack.runtime.sa_state import SaStatePersister
from netstack.wire.icmpv6 import build_icmpv6_packet
from netstack.wire.icmpv6_types import ICMPv6Error, ICMPv6Type
from netstack.wire.offload import Offload, segment
from network.home_agent.config import HomeAgentConfig
from network.home_agent.fast_path import (
    HOME_LINK_PROTOCOL,
    HomeAgentFastPathControl,
    fastpath_section,
)
from network.home_agent.forwarding import IPPROTO_IPV6, HomeAgentDataPlane
from network.home_agent.hmip import DirectRegistrations
from network.home_agent.nesting import NestedTunnels, SecurityLayers
from network.home_agent.persistence import CoalescedWriter, load_bindings, save_bindings
from network.home_agent.proxy_dad import ProxyDad
from network.home_agent.to_self import HomeAgentSelfReceive

log = logging.getLogger("home_agent")

_ETHERTYPE_IPV6 = b"\x86\xdd"
_ND_ICMP_TYPES = frozenset((133, 134, 135, 136, 137))


class HomeAgentDaemon(HomeAgentSelfReceive):
    def __init__(self, config: HomeAgentConfig) -> None:
        self.config = config
        section = config.home_agent
        self.address = section.address
        self.home_prefix = section.home_prefix
        self.counters: Counter[str] = Counter()
        # MN-HA IPsec (signalling and tunnel); first, so an unsafe key file stops us early.
        self.security = SecurityLayers(config.ipsec, address=section.address)
        self.sa_state = SaStatePersister(
            config.node.state_dir / f"{config.node.name}-esp-state.json", self.security.processors
        )
        self.sa_state.restore()
        ifname = config.interface
        if config.link.manage_interface:
            configure_link(ifname, disable_ipv6=True, offloads_off=True)
        self.link = PacketLink(ifname, vnet_hdr=config.link.offloads)
        if fastpath_section(config).enabled:  # only what the tc program passes on
            serve_after_tc(self.link, HOME_LINK_PROTOCOL)
        self.nd = NdHost(self.link.mac, config=NdConfig(is_router=True, slaac=False))
        self.node = LinkNode(self.link, self.nd, self.counters)
        self.node.keep_super_frame = self._is_reverse_tunnel
        if config.link.tx_thread:
            self.node.use_background_sender()
        self.home_agent = self._registration_service(config)
        self.proxy_dad = ProxyDad(retrans_timer=section.dad_retrans_timer)
        self.dataplane = HomeAgentDataPlane(
            section.address.packed,
            self.link.mac,
            self.counters,
            self.home_agent.lookup,
            link_mtu=config.link.mtu,
        )
        self.tunnels = NestedTunnels(
            self.dataplane, self.home_agent.lookup, self.security, self.counters,
            self._packet_too_big,
        )
        # Link-layer source of BUs sent from the home link (a node returning home): the BA
        # goes straight to it, since the node does not own its home address yet (11.5.4).
        self._on_link_macs: dict[IPv6Address, bytes] = {}
        # HMIPv6 registration type 3 (BU from the LCoA): its BA goes back to the LCoA.
        self.hmip_replies = DirectRegistrations(self.home_prefix)
        # Data frames of one receive batch, sent with one sendmmsg at the end of the batch.
        self._tx_frames: list[bytes] = []
        self._error_limiter = ErrorRateLimiter()
        self.bindings_writer = CoalescedWriter(lambda now: self._save_bindings(now))
        self.fastpath = HomeAgentFastPathControl(self)  # eBPF tc program under this path
        self.loop: NodeLoop | None = None
        self.started_at = time.monotonic()

    def _registration_service(self, config: HomeAgentConfig) -> HomeAgent:
        """The binding cache's state machine (the MAP daemon puts its own here)."""
        section = config.home_agent
        policy = HomeAgentPolicy(
            allowed_home_addresses=frozenset(section.allowed_home_addresses) or None,
            refused_home_addresses=frozenset(section.refused_home_addresses),
            max_lifetime=section.max_lifetime,
            require_protection=section.require_protection or config.ipsec.require_protection,
            allow_mobile_routers=config.nemo.allow_mobile_routers,
        )
        try:  # RFC 3963: which prefixes each mobile router may register
            prefix_table = PrefixTable(
                {mr.home_address: mr.prefixes for mr in config.nemo.mobile_routers},
                home_prefix=section.home_prefix,
            )
        except ValueError as exc:
            raise ConfigError(f"[nemo] {exc}") from None
        return HomeAgent(section.address, home_prefix=section.home_prefix, policy=policy,
                         prefix_table=prefix_table)

    # ------------------------------------------------------------------ lifecycle

    def start(self, loop: NodeLoop) -> None:
        self.loop = loop
        now = loop.now()
        loop.add_reader(self.link, self._on_link_readable)
        if link_is_up(self.config.interface):
            self.nd.link_up(now)
        self.nd.add_static_address(self.address, self.home_prefix.prefixlen, now, dad=True)
        if self.config.home_agent.default_router is not None:
            self.nd.set_default_router(self.config.home_agent.default_router)
        self.fastpath.start()  # before the restore: restored bindings reach its map too
        self._restore_bindings(now)
        self._after_input(now)

    @property
    def bindings_file(self) -> Path:
        return self.config.node.state_dir / f"{self.config.node.name}-bindings.json"

    def _restore_bindings(self, now: float) -> None:
        try:
            entries = load_bindings(self.bindings_file, now)
        except ValueError as exc:
            log.warning("ignoring saved bindings: %s", exc)
            self.counters["bindings_file_unreadable"] += 1
            return
        restored = self.home_agent.restore(entries, now)
        self.bindings_writer.last = now  # the file already holds what was just restored
        # Proxy ND resumes without a multicast NA per binding: the home link's caches still
        # hold our MAC, and 100k NAs at start would be a storm (NS are answered as before).
        while (event := self.home_agent.next_event()) is not None:
            if isinstance(event, BindingCreated):
                self.security.binding_updated(event.home_address, event.care_of_address)
                self.nd.proxies.add(event.home_address)
                self.fastpath.bind(event.home_address, event.care_of_address)
        if restored:
            log.info("restored %d binding(s) from %s", restored, self.bindings_file)

    def _save_bindings(self, now: float) -> None:
        try:
            save_bindings(self.home_agent.binding_cache, self.bindings_file, now)
        except OSError as exc:
            self.counters["bindings_save_failed"] += 1
            log.warning("cannot save bindings: %s", exc)

    def close(self) -> None:
        self.fastpath.close()
        self._save_bindings(time.monotonic())
        self.sa_state.save(time.monotonic())
        self.node.close()

    def on_timer(self, now: float) -> None:
        self.bindings_writer.on_timer(now)
        self.nd.handle_timer(now)
        self.home_agent.handle_timer(now)
        self.proxy_dad.handle_timer(now)
        self._after_input(now)

    # ------------------------------------------------------------------ receive

    def _on_link_readable(self) -> None:
        now = time.monotonic()
        own = self.address.packed
        for frame, packet in self.node.received_ipv6():
            next_header = packet[6]
            if next_header == 58 and len(packet) > 40 and packet[40] in _ND_ICMP_TYPES:
                self._handle_nd(packet, bytes(frame[6:12]), now)
                continue
            destination = bytes(packet[24:40])
            if destination == own:
                self._to_self(packet, bytes(frame[6:12]), now)
                continue
            care_of_address = self.home_agent.lookup(destination)
            if care_of_address is not None:
                self._intercept(packet, care_of_address, now)
            else:
                self.counters["rx_ignored_not_for_us"] += 1
        if self.node.super_frames:
            self._reverse_tunnel_super_frames(now)
        if self._tx_frames:
            self.node.send_frames(self._tx_frames)
            self._tx_frames = []
        self._after_input(now)

    def _is_reverse_tunnel(self, frame: memoryview) -> bool:
        """A GRO super-frame of the reverse tunnel (IPv6-in-IPv6 to us), kept whole."""
        return (
            len(frame) > 94
            and frame[12:14] == _ETHERTYPE_IPV6
            and frame[14 + 6] == IPPROTO_IPV6
            and frame[14 + 24 : 14 + 40] == self.address.packed
            and not self.security.esp_tunnel
        )

    def _reverse_tunnel_super_frames(self, now: float) -> None:
        """Steps 515-516 once per super-frame: the kernel cuts the inner packets (GSO)."""
        out: list[tuple[bytes, Offload]] = []
        for frame, offload in self.node.super_frames:
            if self.security.refuse_plain_tunnel():
                continue
            inner = self.dataplane.detunnel(frame[14:])
            if inner is None:
                continue
            forwarded = bytearray(inner)
            eth = self.dataplane.frame(b"")
            if eth is None or IPv6Address(bytes(forwarded[24:40])) in self.home_prefix:
                # on-link destination or no router yet: the ordinary per-packet path
                for piece in segment(forwarded, offload.gso_size, l3_offset=0):
                    self._forward(piece, now)
                continue
            forwarded[7] -= 1
            self.counters["rx_detunnelled_super_frames"] += 1
            out.append((eth + forwarded, offload.shifted(-40)))
        self.node.send_offloaded(out)

    def _intercept(self, packet: memoryview, care_of_address: bytes, now: float) -> None:
        # one tunnel, or two when the CoA is inside a mobile network (nesting.py, claim 21)
        outer, care_of_address = self.tunnels.encapsulate(packet, care_of_address, now)
        if outer is None:
            return
        frame = self.dataplane.frame(outer)
        if frame is not None:
            self._tx_frames.append(frame)
        else:
            self.node.send_packet(outer, IPv6Address(care_of_address), now)

    def _packet_too_big(self, packet: memoryview, now: float, overhead: int = 40) -> None:
        source = IPv6Address(bytes(packet[8:24]))
        mtu = max(1280, self.dataplane.link_mtu - overhead)
        error = ICMPv6Error(ICMPv6Type.PACKET_TOO_BIG, 0, mtu, bytes(packet[: 1280 - 48]))
        self.node.send_packet(build_icmpv6_packet(self.address, source, error, hop_limit=64), source, now)

    def _reverse_tunnel(self, packet: memoryview, now: float, depth: int = 0) -> None:
        inner = self.dataplane.detunnel(packet)
        if inner is None:
            return
        if not self._detunnelled_to_self(inner, b"", now, depth):
            self._forward(bytearray(inner), now)

    def _forward(self, forwarded: bytearray, now: float) -> None:
        """Forward a packet of a home address (out of the reverse tunnel) one hop on."""
        forwarded[7] -= 1
        destination = IPv6Address(bytes(forwarded[24:40]))
        if destination not in self.home_prefix:
            frame = self.dataplane.frame(forwarded)
            if frame is not None:
                self._tx_frames.append(frame)
                return
        self.node.send_packet(bytes(forwarded), destination, now)

    # ------------------------------------------------------------------ events and outputs

    def _after_input(self, now: float) -> None:
        for _ in range(16):
            progressed = False
            while (event := self.nd.next_event()) is not None:
                progressed = True
                if isinstance(event, RouterChanged):
                    self.dataplane.set_next_hop(event.router_mac)
                    self.fastpath.sync()
            while (event := self.home_agent.next_event()) is not None:
                progressed = True
                self._on_binding_event(event, now)
            for address, duplicate in self.proxy_dad.results():
                progressed = True
                self.home_agent.dad_result(address, duplicate, now)
            for message in self.home_agent.messages_to_send():
                progressed = True
                self._send_mobility(message, now)
            for group, packet in self.proxy_dad.packets_to_send():
                progressed = True
                self.node.send_packet(packet, group, now)
            if not progressed:
                break
        if self._tx_frames:
            self.node.send_frames(self._tx_frames)
            self._tx_frames = []
        self.node.flush()
        if self.sa_state.processors:
            self.sa_state.maybe_save(now)
        if self.loop is not None:
            self.loop.arm_earliest(
                [self.nd.get_timer(), self.home_agent.get_timer(), self.proxy_dad.get_timer(),
                 self.bindings_writer.due]
            )

    def _send_mobility(self, message: Any, now: float) -> None:
        message = self.hmip_replies.redirect(message)
        packet = self.security.seal_mobility_message(message, now)
        if packet is None:
            return  # dropped by the SPD, counted by the processor
        self.counters["tx_mobility_messages"] += 1
        mac = self._on_link_macs.get(message.dst)
        care_of_address = self.home_agent.lookup(message.dst.packed) if mac is None else None
        if mac is not None:
            self.node.send_frames([mac + self.link.mac + _ETHERTYPE_IPV6 + packet])
        elif care_of_address is not None:
            # a BA to a node inside a mobile network: through its mobile router's tunnel
            self._intercept(memoryview(packet), care_of_address, now)
        else:
            self.node.send_packet(packet, message.dst, now)

    def _on_binding_event(self, event: object, now: float) -> None:
        if isinstance(event, DadRequested):
            if self.config.home_agent.proxy_dad:
                self.proxy_dad.start(event.home_address, now)
            else:
                self.home_agent.dad_result(event.home_address, False, now)
        elif isinstance(event, BindingCreated | BindingUpdated):
            log.info("binding %s -> %s", event.home_address, event.care_of_address)
            # the tunnel SAs of this home address follow its care-of address (RFC 4877 4.1)
            self.security.binding_updated(event.home_address, event.care_of_address)
            # Proxy ND for the home address (RFC 6275 10.4.1): answer NS, announce with NA.
            if not self.nd.is_proxied(event.home_address):
                self.nd.add_proxy(event.home_address, now)
            self.fastpath.bind(event.home_address, event.care_of_address)
            self.bindings_writer.changed(now)
        elif isinstance(event, BindingDeleted):
            log.info("binding for %s deleted", event.home_address)
            self.fastpath.unbind(event.home_address)
            self.nd.remove_proxy(event.home_address)
            self.bindings_writer.changed(now)

    # ------------------------------------------------------------------ control API

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        ha = self.home_agent.as_dict(now)
        counters = merged_counters(self.counters, self.nd.counters, self.home_agent.counters,
                                   self.home_agent.prefix_table.counters)
        return {
            "node": self.config.node.name,
            "role": "home_agent",
            "address": str(self.address),
            "home_prefix": str(self.home_prefix),
            "binding_cache": ha["binding_cache"],
            "prefix_table": ha["prefix_table"],
            "neighbor_discovery": self.nd.as_dict(),
            "counters": counters,
            "ipsec": self.security.as_dict(now),
            "fastpath": self.fastpath.as_dict(),
            "uptime": round(now - self.started_at, 3),
        }

    def handle_control(self, request: dict[str, Any]) -> dict[str, Any]:
        return answer_control(request, self.config.node.name, {"status": self.status})
