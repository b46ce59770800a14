"""Virtual network 15 (`eth1`), the guest's side of the link to the host OS (patent Fig. 5, 22).

The agent owns the interface in userspace: it answers ARP for the gateway and the virtual IPv4
pool (the host reaches every translated correspondent through it), answers Neighbor
Solicitations for the IPv6 gateway address it offers the host for E2, and sorts the host's
frames into IPv4 (to translate) and IPv6 of the home address (to pass through).
"""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from typing import TYPE_CHECKING

from netstack.runtime.afpacket import PacketLink
from netstack.runtime.afpacket_split import SplitPacketLink
from netstack.wire.arp import ARP_REQUEST, ZERO_MAC, arp_reply_for, build_arp, parse_arp
from netstack.wire.errors import ParseError
from netstack.wire.ethernet import mac_to_str
from netstack.wire.icmpv6 import build_icmpv6_packet, decode_icmpv6_packet
from netstack.wire.icmpv6_types import (
    NeighborAdvertisement,
    NeighborSolicitation,
    TargetLinkLayerAddress,
)
from netstack.wire.ipv6 import parse_ipv6_packet
from netstack.wire.offload import Offload

if TYPE_CHECKING:
    from guest_agent.mobile_network import MobileNetwork

_ETH_IPV4 = b"\x08\x00"
_ETH_IPV6 = b"\x86\xdd"
_ETH_ARP = b"\x08\x06"
_BROADCAST = b"\xff" * 6
MAX_WAITING = 16  # packets held for the host while ARP resolves its MAC


class HostLink:
    def __init__(
        self,
        link: PacketLink | SplitPacketLink,
        *,
        pool: IPv4Network,
        gateway_ipv4: IPv4Address,
        home_ipv4: IPv4Address,
        home_address: IPv6Address,
        ipv6_gateway: IPv6Address,
        counters: Counter[str],
    ) -> None:
        self.link = link
        self.mac = link.mac
        self.pool = pool
        self.gateway_ipv4 = gateway_ipv4.packed
        self.home_ipv4 = home_ipv4.packed
        self.home_address = home_address.packed
        self.ipv6_gateway = ipv6_gateway
        self.counters = counters
        self.host_mac: bytes | None = None  # learned from the host's ARP and IPv4 frames
        self.host_ipv6_mac: bytes | None = None  # learned from the host's IPv6 frames
        self._ipv4_header: bytes | None = None
        self._ipv6_header: bytes | None = None
        # Packets for the host held while its MAC is being resolved (like a neighbour queue).
        self._waiting_ipv4: list[bytes] = []
        # IPv4 GSO super-frames from the last receive (only with an offload-aware link)
        self.ipv4_super_frames: list[tuple[memoryview, Offload]] = []
        # NEMO (guest_agent.mobile_network): takes the mobile network's frames first
        self.mobile_network: MobileNetwork | None = None

    def fileno(self) -> int:
        return self.link.fileno()

    # ------------------------------------------------------------------ receive

    def receive(self) -> tuple[list[memoryview], list[memoryview]]:
        """Drain the socket: answer ARP/ND; return (IPv4 packets, IPv6 packets of the HoA).

        IPv4 GSO super-frames (the host's TSO, on an offload-aware link) are left whole in
        ``ipv4_super_frames`` for translation once per super-frame; the link cuts other
        super-frames into wire-sized packets.
        """
        ipv4: list[memoryview] = []
        ipv6: list[memoryview] = []
        replies: list[bytes] = []
        self.ipv4_super_frames = []
        for frame, offload in self.link.recv_batch_offload(keep=self._translated_whole):
            if offload is not None:
                self.ipv4_super_frames.append((frame[14:], offload))
                continue
            if len(frame) < 34:
                self.counters["host_rx_dropped_runt"] += 1
                continue
            ethertype = frame[12:14]
            if ethertype == _ETH_IPV4:
                if frame[14 + 12 : 14 + 16] == self.home_ipv4:
                    self._learn_ipv4_mac(bytes(frame[6:12]))
                ipv4.append(frame[14:])
            elif ethertype == _ETH_IPV6:
                if self.mobile_network is not None and self.mobile_network.take(frame):
                    continue
                packet = frame[14:]
                if packet[6] == 58 and len(packet) > 40 and packet[40] == 135:
                    reply = self._answer_ns(packet, bytes(frame[6:12]))
                    if reply is not None:
                        replies.append(reply)
                elif packet[8:24] == self.home_address:
                    self._learn_ipv6_mac(bytes(frame[6:12]))
                    ipv6.append(packet)
                else:
                    self.counters["host_rx_ignored_ipv6"] += 1
            elif ethertype == _ETH_ARP:
                reply = self._answer_arp(frame[14:])
                if reply is not None:
                    replies.append(reply)
            else:
                self.counters["host_rx_ignored"] += 1
        if replies:
            self.link.send_batch(replies)
        return ipv4, ipv6

    def _translated_whole(self, frame: memoryview) -> bool:
        """IPv4 super-frames of the home address's IPv4 for a correspondent (not for the
        agent itself: DNS and ping go per packet); the link cuts every other one."""
        return (
            frame[12:14] == _ETH_IPV4
            and frame[14 + 12 : 14 + 16] == self.home_ipv4
            and frame[14 + 16 : 14 + 20] != self.gateway_ipv4
        )

    def _answer_arp(self, payload: memoryview) -> bytes | None:
        try:
            arp = parse_arp(payload)
        except ParseError:
            self.counters["host_rx_dropped_arp_malformed"] += 1
            return None
        if arp.sender_ip == self.home_ipv4:
            self._learn_ipv4_mac(arp.sender_mac)
        if arp.op != ARP_REQUEST:
            return None
        target = IPv4Address(arp.target_ip)
        if arp.target_ip == self.home_ipv4 or target not in self.pool:
            return None
        self.counters["host_arp_answered"] += 1
        return arp.sender_mac + self.mac + _ETH_ARP + arp_reply_for(arp, self.mac)

    def _answer_ns(self, packet: memoryview, src_mac: bytes) -> bytes | None:
        try:
            parsed = parse_ipv6_packet(packet)
            message = decode_icmpv6_packet(parsed)
        except ParseError:
            self.counters["host_rx_dropped_nd_malformed"] += 1
            return None
        if not isinstance(message, NeighborSolicitation) or message.target != self.ipv6_gateway:
            return None
        if parsed.hop_limit != 255:
            self.counters["host_rx_dropped_nd_hop_limit"] += 1
            return None
        unspecified = parsed.src == IPv6Address("::")
        destination = IPv6Address("ff02::1") if unspecified else parsed.src
        advert = NeighborAdvertisement(
            target=self.ipv6_gateway,
            router=True,
            solicited=not unspecified,
            override=True,
            options=(TargetLinkLayerAddress(self.mac),),
        )
        reply = build_icmpv6_packet(self.ipv6_gateway, destination, advert)
        dst_mac = b"\x33\x33\x00\x00\x00\x01" if unspecified else src_mac
        self.counters["host_ns_answered"] += 1
        return dst_mac + self.mac + _ETH_IPV6 + reply

    def _learn_ipv4_mac(self, mac: bytes) -> None:
        if mac != self.host_mac:
            self.host_mac = mac
            self._ipv4_header = mac + self.mac + _ETH_IPV4
        if self._waiting_ipv4:
            waiting, self._waiting_ipv4 = self._waiting_ipv4, []
            self.send_ipv4(waiting)

    def _learn_ipv6_mac(self, mac: bytes) -> None:
        if mac != self.host_ipv6_mac:
            self.host_ipv6_mac = mac
            self._ipv6_header = mac + self.mac + _ETH_IPV6

    # ------------------------------------------------------------------ send

    def send_ipv4(self, packets: list[bytes]) -> None:
        header = self._ipv4_header
        if header is None:
            # Nothing heard from the host yet: ask for it and hold a few packets meanwhile.
            room = MAX_WAITING - len(self._waiting_ipv4)
            self._waiting_ipv4.extend(packets[:room])
            if len(packets) > room:
                self.counters["host_tx_dropped_unresolved"] += len(packets) - max(room, 0)
            request = build_arp(ARP_REQUEST, self.mac, self.gateway_ipv4, ZERO_MAC, self.home_ipv4)
            self.link.send(_BROADCAST + self.mac + _ETH_ARP + request)
            return
        self.counters["host_tx_ipv4"] += len(packets)
        self.link.send_batch([header + p for p in packets])

    def send_ipv6(self, packets: list[bytes]) -> None:
        header = self._ipv6_header or self._ipv4_header_as_ipv6()
        if header is None:
            self.counters["host_tx_dropped_unresolved"] += len(packets)
            return
        self.counters["host_tx_ipv6"] += len(packets)
        self.link.send_batch([header + p for p in packets])

    def _ipv4_header_as_ipv6(self) -> bytes | None:
        # One host interface carries both families: its IPv4 MAC is its IPv6 MAC too.
        return None if self.host_mac is None else self.host_mac + self.mac + _ETH_IPV6

    def as_dict(self) -> dict[str, object]:
        return {
            "mac": mac_to_str(self.mac),
            "host_mac": mac_to_str(self.host_mac) if self.host_mac else None,
            "gateway_ipv4": str(IPv4Address(self.gateway_ipv4)),
            "home_ipv4": str(IPv4Address(self.home_ipv4)),
            "ipv6_gateway": str(self.ipv6_gateway),
            "pool": str(self.pool),
        }
