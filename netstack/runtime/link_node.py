"""A link owned in userspace: an AF_PACKET socket, its NdHost and Ethernet framing.

Both the guest agent and the network's nodes (home agent, later MAP and CN) own their links
this way (DESIGN.md section 2, "one userspace node model"). This class moves frames between
the socket and the sans-IO NdHost; the daemon decides what every other IPv6 packet means.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from ipaddress import IPv6Address

from netstack.nd.host import NdHost
from netstack.runtime.afpacket import PacketLink
from netstack.runtime.sender import BackgroundSender
from netstack.wire.errors import ParseError
from netstack.wire.ethernet import ETH_P_IPV6
from netstack.wire.icmpv6 import decode_icmpv6_packet
from netstack.wire.icmpv6_types import (
    ICMPv6Message,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterAdvertisement,
    RouterSolicitation,
)
from netstack.wire.ipv6 import ParsedPacket, parse_ipv6_packet
from netstack.wire.offload import Offload

log = logging.getLogger(__name__)

_ETHERTYPE_IPV6 = ETH_P_IPV6.to_bytes(2, "big")
_ND_MESSAGES = (RouterSolicitation, RouterAdvertisement, NeighborSolicitation, NeighborAdvertisement)


class LinkNode:
    """Frames in and out of one interface, with Neighbor Discovery done by `nd`."""

    def __init__(self, link: PacketLink, nd: NdHost, counters: Counter[str]) -> None:
        self.link = link
        self.nd = nd
        self.counters = counters
        self.mac = link.mac
        self.sender: BackgroundSender | None = None
        # With an offload-aware link: which GSO super-frames the node handles whole (the rest
        # is cut into wire-sized packets), and those kept from the last receive.
        self.keep_super_frame: Callable[[memoryview], bool] | None = None
        self.super_frames: list[tuple[memoryview, Offload]] = []

    def received_ipv6(self) -> list[tuple[memoryview, memoryview]]:
        """Drain the socket: (frame, IPv6 packet) for every well-formed IPv6 frame.

        Anything else is dropped and counted here, once for every node: other ethertypes,
        runts, a wrong IP version, a payload length longer than the frame. The views are
        valid until the next call.
        """
        counters = self.counters
        out: list[tuple[memoryview, memoryview]] = []
        self.super_frames = []
        for frame in self._frames():
            if frame[12:14] != _ETHERTYPE_IPV6:
                counters["rx_ignored_not_ipv6"] += 1
                continue
            if len(frame) < 54:
                counters["rx_dropped_runt"] += 1
                continue
            packet = frame[14:]
            if packet[0] >> 4 != 6:
                counters["rx_dropped_bad_version"] += 1
                continue
            if 40 + ((packet[4] << 8) | packet[5]) > len(packet):
                counters["rx_dropped_bad_length"] += 1
                continue
            out.append((frame, packet))
        return out

    def _frames(self) -> list[memoryview]:
        keep = self.keep_super_frame
        if keep is None or not self.link.vnet_hdr:
            return self.link.recv_batch()  # super-frames come back cut into wire frames
        frames: list[memoryview] = []
        for frame, offload in self.link.recv_batch_offload(keep=keep):
            if offload is None:
                frames.append(frame)
            else:
                self.super_frames.append((frame, offload))
        return frames

    def send_offloaded(self, items: list[tuple[bytes, Offload]]) -> None:
        """Frames with offload metadata (GSO super-frames the kernel cuts on the way out)."""
        if not items:
            return
        if self.sender is not None:
            self.sender.submit_offloaded(items)
            return
        sent = self.link.send_offload_batch(items)
        if sent < len(items):
            self.counters["tx_dropped_link_busy"] += len(items) - sent

    def send_packet(self, packet: bytes, destination: IPv6Address, now: float) -> None:
        """Queue an IPv6 packet for `destination` (next hop resolved by ND); see `flush`."""
        self.nd.send(packet, destination, now)

    def send_frames(self, frames: list[bytes]) -> None:
        if not frames:
            return
        if self.sender is not None:
            self.sender.submit(frames)
            return
        sent = self.link.send_batch(frames)
        if sent < len(frames):
            self.counters["tx_dropped_link_busy"] += len(frames) - sent

    def use_background_sender(self) -> None:
        """Send from a thread of its own (see netstack.runtime.sender)."""
        if self.sender is None:
            self.sender = BackgroundSender(self.link, self.counters)

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()
        self.link.close()

    def flush(self) -> None:
        """Send everything ND produced (its own messages and resolved data packets)."""
        pending = self.nd.frames_to_send()
        if not pending:
            return
        mac = self.mac
        self.send_frames([dst_mac + mac + _ETHERTYPE_IPV6 + packet for dst_mac, packet in pending])

    def handle_icmpv6(
        self, packet: memoryview, src_mac: bytes, now: float
    ) -> tuple[ParsedPacket, ICMPv6Message] | None:
        """Decode an ICMPv6 packet; ND goes to `nd`. Returns other ICMPv6 messages to the caller."""
        try:
            parsed = parse_ipv6_packet(packet)
            message = decode_icmpv6_packet(parsed)
        except ParseError as exc:
            self.counters[f"rx_dropped_icmpv6_{exc.reason}"] += 1
            return None
        if isinstance(message, _ND_MESSAGES):
            self.nd.receive(parsed.src, parsed.dst, parsed.hop_limit, message, src_mac, now)
            return None
        return parsed, message

    def parse(self, packet: memoryview) -> ParsedPacket | None:
        try:
            return parse_ipv6_packet(packet)
        except ParseError as exc:
            self.counters[f"rx_dropped_{exc.reason}"] += 1
            return None
