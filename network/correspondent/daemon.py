"""The correspondent node daemon (patent CN 2): route optimisation (E3 Fig. 20) and end-to-end
ESP (embodiment 5).

The CN kernel has no ESP, so, like the home agent, the CN owns its link in userspace
(LinkNode: AF_PACKET + NdHost, kernel IPv6 disabled on the interface) and gives its address to
a TUN device, where the CN's real servers (http.server, iperf3) stay unmodified kernel
applications. Between the two sits the end-to-end security processor: packets from the TUN go
out through its SPD (ESP transport mode to the mobile node's home address, bypass otherwise),
packets from the link come in through it (decrypted, or dropped and counted). Route
optimisation (network.correspondent.route_optimisation) wraps both: RR signalling, HAO in,
type 2 Routing Header out.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from netstack.ipsec.keys import build_processor, load_key_file
from netstack.ipsec.processor import SecurityProcessor
from netstack.nd.config import NdConfig
from netstack.nd.events import RouterChanged
from netstack.nd.host import NdHost
from netstack.runtime.afpacket import PacketLink
from netstack.runtime.daemon import answer_control, merged_counters
from netstack.runtime.link_node import LinkNode
from netstack.runtime.linkconfig import configure_link, link_is_up
from netstack.runtime.loop import NodeLoop
from netstack.runtime.sa_state import SaStatePersister
from netstack.runtime.tun import TunDevice, add_loopback_address
from network.correspondent.config import CorrespondentConfig
from network.correspondent.route_optimisation import CorrespondentRouteOptimisation

log = logging.getLogger("correspondent")

_ETHERTYPE_IPV6 = b"\x86\xdd"
_ND_ICMP_TYPES = frozenset((133, 134, 135, 136, 137))


class CorrespondentDaemon:
    def __init__(self, config: CorrespondentConfig) -> None:
        self.config = config
        section = config.correspondent
        self.address = section.address
        self.counters: Counter[str] = Counter()
        self.end_to_end: SecurityProcessor | None = None
        if config.ipsec.end_to_end and config.ipsec.key_file is not None:
            # refuses a key file others can read (KeyFileError: one line, exit 2)
            keys = load_key_file(config.ipsec.key_file, now=time.monotonic())
            self.end_to_end = build_processor("end_to_end", keys)
        self.sa_state = SaStatePersister(
            config.node.state_dir / f"{config.node.name}-esp-state.json", (self.end_to_end,)
        )
        self.sa_state.restore()
        ifname = config.link.interface
        if config.link.manage_interface:
            configure_link(ifname, disable_ipv6=True, offloads_off=True)
        self.link = PacketLink(ifname)
        self.nd = NdHost(self.link.mac, config=NdConfig(slaac=False))
        self.node = LinkNode(self.link, self.nd, self.counters)
        self.tun = TunDevice(config.tun.name, config.tun.mtu)
        self.tun.add_address(section.address, 128)
        # The extra addresses (cn1..cn5.example) live on `lo`, deprecated: replies still come
        # from `address`, and a program that takes the TUN's first address for its own (a
        # softphone's SDP) gets `address`, which is what the end-to-end SPD selects.
        for extra in section.extra_addresses:
            add_loopback_address(extra)
        self._owned = frozenset(a.packed for a in (section.address, *section.extra_addresses))
        self.route_optimisation: CorrespondentRouteOptimisation | None = None
        if config.route_optimisation.enabled:
            self.route_optimisation = CorrespondentRouteOptimisation(section.address, self.counters)
        self.tun.add_route(IPv6Network("::/0"))
        self._eth_header: bytes | None = None
        self.loop: NodeLoop | None = None
        self.started_at = time.monotonic()

    # ------------------------------------------------------------------ lifecycle

    def start(self, loop: NodeLoop) -> None:
        self.loop = loop
        now = loop.now()
        loop.add_reader(self.link, self._on_link_readable)
        loop.add_reader(self.tun, self._on_tun_readable)
        if link_is_up(self.config.link.interface):
            self.nd.link_up(now)
        section = self.config.correspondent
        self.nd.add_static_address(section.address, section.prefixlen, now, dad=True)
        for extra in section.extra_addresses:
            self.nd.add_static_address(extra, section.prefixlen, now, dad=True)
        self.nd.set_default_router(section.default_router)
        self._after_input(now)

    def close(self) -> None:
        self.sa_state.save(time.monotonic())
        for closer in (self.tun.close, self.link.close):
            with contextlib.suppress(OSError):
                closer()

    def on_timer(self, now: float) -> None:
        self.nd.handle_timer(now)
        if self.route_optimisation is not None:
            self.route_optimisation.correspondent.handle_timer(now)
        self._after_input(now)

    # ------------------------------------------------------------------ link -> servers

    def _on_link_readable(self) -> None:
        now = time.monotonic()
        owned = self._owned
        e2e = self.end_to_end
        ro = self.route_optimisation
        for frame, packet in self.node.received_ipv6():
            if packet[6] == 58 and len(packet) > 40 and packet[40] in _ND_ICMP_TYPES:
                self.node.handle_icmpv6(packet, bytes(frame[6:12]), now)
                continue
            if bytes(packet[24:40]) not in owned:
                self.counters["rx_ignored_not_for_us"] += 1
                continue
            if ro is not None and (packet := ro.inbound(packet, now)) is None:
                continue  # signalling, or a HAO without a binding (Binding Error sent)
            if e2e is not None:
                plain = e2e.inbound(packet, now)
                if plain is None:
                    self.counters["rx_dropped_ipsec"] += 1  # the processor counts the reason
                    continue
                self.tun.write(plain)
            else:
                self.tun.write(packet)
            self.counters["rx_delivered"] += 1
        self._after_input(now)

    # ------------------------------------------------------------------ servers -> link

    def _on_tun_readable(self) -> None:
        now = time.monotonic()
        e2e = self.end_to_end
        ro = self.route_optimisation
        eth = self._eth_header
        frames = []
        for packet in self.tun.read_batch():
            if len(packet) < 40 or packet[0] >> 4 != 6:
                self.counters["tx_dropped_not_ipv6"] += 1
                continue
            if e2e is not None:
                protected = e2e.outbound(packet, now)
                if protected is None:
                    self.counters["tx_dropped_ipsec"] += 1
                    continue
                packet = protected
            if ro is not None:
                packet = ro.outbound(packet, now)
            if eth is not None:
                frames.append(eth + packet)
            else:
                self.node.send_packet(packet, IPv6Address(packet[24:40]), now)
        self.counters["tx_sent"] += len(frames)
        self.node.send_frames(frames)
        self._after_input(now)

    # ------------------------------------------------------------------ events and outputs

    def _after_input(self, now: float) -> None:
        while (event := self.nd.next_event()) is not None:
            if isinstance(event, RouterChanged):
                # every packet of this one-armed node leaves through the default router
                mac = event.router_mac
                self._eth_header = (mac + self.link.mac + _ETHERTYPE_IPV6) if mac else None
        ro = self.route_optimisation
        if ro is not None:
            for packet, destination in ro.packets_to_send():
                self.counters["tx_mobility_messages"] += 1
                self.node.send_packet(packet, destination, now)
        self.node.flush()
        if self.sa_state.processors:
            self.sa_state.maybe_save(now)
        if self.loop is not None:
            self.loop.arm_earliest([self.nd.get_timer(),
                                    ro.correspondent.get_timer() if ro is not None else None])

    # ------------------------------------------------------------------ control API

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        ro = self.route_optimisation
        counters = merged_counters(self.counters, self.nd.counters,
                                   ro.correspondent.counters if ro is not None else {})
        ipsec: dict[str, Any] = {"end_to_end": {"enabled": self.end_to_end is not None}}
        if self.end_to_end is not None:
            ipsec["end_to_end"].update(self.end_to_end.as_dict(now))
        return {
            "node": self.config.node.name,
            "role": "correspondent",
            "address": str(self.address),
            "tun": self.config.tun.name,
            "neighbor_discovery": self.nd.as_dict(),
            "counters": counters,
            "ipsec": ipsec,
            "route_optimisation": (ro.correspondent.as_dict(now) if ro is not None
                                   else {"route_optimisation": False}),
            "uptime": round(now - self.started_at, 3),
        }

    def handle_control(self, request: dict[str, Any]) -> dict[str, Any]:
        return answer_control(request, self.config.node.name, {"status": self.status})
