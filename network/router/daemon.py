"""The router advertisement daemon: `RouterAdvertiser` on one AF_PACKET link.

The router's kernel keeps routing on the interface; this daemon only sends RAs and answers
RSs, like radvd. A classic BPF filter on the packet socket lets only Router Solicitations up
to Python, so forwarded traffic never wakes the daemon. An RS is checked as RFC 4861 6.1.1
asks (hop limit 255, code 0, valid checksum and options, no source link-layer option from the
unspecified address); anything else is dropped and counted.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import struct
import time
from collections import Counter
from ipaddress import IPv6Address
from typing import Any

from pyroute2 import IPRoute

from netstack.nd.ra_sender import RouterAdvertiser
from netstack.runtime.afpacket import PacketLink
from netstack.runtime.daemon import answer_control, merged_counters
from netstack.runtime.loop import NodeLoop
from netstack.wire.errors import ParseError
from netstack.wire.icmpv6 import decode_icmpv6_packet
from netstack.wire.icmpv6_types import RouterSolicitation, SourceLinkLayerAddress
from netstack.wire.ipv6 import parse_ipv6_packet
from network.router.config import RouterConfig

log = logging.getLogger("router")

_ETHERTYPE_IPV6 = b"\x86\xdd"
SO_ATTACH_FILTER = 26
# ldh [12]; jeq 0x86dd; ldb [20]; jeq 58; ldb [54]; jeq 133; ret 0xffff; ret 0
_RS_FILTER = (
    (0x28, 0, 0, 12), (0x15, 0, 5, 0x86DD), (0x30, 0, 0, 20), (0x15, 0, 3, 58),
    (0x30, 0, 0, 54), (0x15, 0, 1, 133), (0x06, 0, 0, 0xFFFF), (0x06, 0, 0, 0),
)


def attach_rs_filter(sock: socket.socket) -> None:
    """Only ICMPv6 type 133 (no extension headers) reaches the socket."""
    program = b"".join(struct.pack("HBBI", *insn) for insn in _RS_FILTER)
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(_RS_FILTER), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def link_local_address(ifname: str, mac: bytes) -> IPv6Address:
    """The interface's fe80:: address (the kernel's), else the modified EUI-64 one."""
    with IPRoute() as ipr:
        index = socket.if_nametoindex(ifname)
        for msg in ipr.get_addr(family=socket.AF_INET6, index=index):
            address = IPv6Address(msg.get_attr("IFA_ADDRESS"))
            if address.is_link_local:
                return address
    eui = bytes((mac[0] ^ 0x02,)) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    return IPv6Address(b"\xfe\x80" + b"\x00" * 6 + eui)


def solicitation_source(frame: memoryview | bytes, counters: Counter[str]) -> IPv6Address | None:
    """The source of a valid Router Solicitation in an Ethernet frame, else None (counted)."""
    frame = memoryview(frame)
    if len(frame) < 14 + 48 or frame[12:14] != _ETHERTYPE_IPV6:
        counters["rx_dropped_not_rs"] += 1
        return None
    try:
        parsed = parse_ipv6_packet(frame[14:])
        message = decode_icmpv6_packet(parsed)
    except ParseError as exc:
        counters[f"rx_dropped_rs_{exc.reason}"] += 1
        return None
    if not isinstance(message, RouterSolicitation):
        counters["rx_dropped_not_rs"] += 1
        return None
    if parsed.hop_limit != 255:
        counters["rx_dropped_rs_hop_limit"] += 1
        return None
    if parsed.src == IPv6Address("::") and any(
        isinstance(o, SourceLinkLayerAddress) for o in message.options
    ):
        counters["rx_dropped_rs_unspecified_with_slla"] += 1
        return None
    return parsed.src


def _multicast_mac(address: IPv6Address) -> bytes:
    return b"\x33\x33" + address.packed[12:]


class RouterDaemon:
    def __init__(self, config: RouterConfig) -> None:
        self.config = config
        self.counters: Counter[str] = Counter()
        self.link = PacketLink(config.link.interface)
        attach_rs_filter(self.link._sock)
        self.link_local = link_local_address(config.link.interface, self.link.mac)
        self.advertiser = RouterAdvertiser(config.ra_config(), self.link.mac, self.link_local)
        self.loop: NodeLoop | None = None
        self.started_at = time.monotonic()

    def start(self, loop: NodeLoop) -> None:
        self.loop = loop
        loop.add_reader(self.link, self._on_readable)
        now = loop.now()
        self._send(self.advertiser.start(now), {})
        loop.arm(self.advertiser.next_timer())

    def on_timer(self, now: float) -> None:
        self._send(self.advertiser.handle_timer(now), {})
        if self.loop is not None:
            self.loop.arm(self.advertiser.next_timer())

    def close(self) -> None:
        try:
            self._send(self.advertiser.stop(time.monotonic()), {})
        finally:
            self.link.close()

    def _on_readable(self) -> None:
        now = time.monotonic()
        for frame in self.link.recv_batch():
            source = solicitation_source(frame, self.counters)
            if source is not None:
                self._send(self.advertiser.receive_router_solicitation(source, now),
                           {source: bytes(frame[6:12])})
        if self.loop is not None:
            self.loop.arm(self.advertiser.next_timer())

    def _send(self, packets: list[tuple[IPv6Address, bytes]], macs: dict[IPv6Address, bytes]) -> None:
        frames = []
        for destination, packet in packets:
            mac = _multicast_mac(destination) if destination.is_multicast else macs.get(destination)
            if mac is None:
                self.counters["tx_dropped_no_mac"] += 1
                continue
            frames.append(mac + self.link.mac + _ETHERTYPE_IPV6 + packet)
        if frames:
            self.link.send_batch(frames)

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        c = self.config
        return {
            "node": c.node.name,
            "role": "router",
            "interface": c.link.interface,
            "link_local": str(self.link_local),
            "prefixes": [str(p) for p in c.router.prefixes],
            "intervals": [c.router.min_interval, c.router.max_interval],
            "map": (None if c.map.address is None else
                    {"address": str(c.map.address), "distance": c.map.distance,
                     "preference": c.map.preference, "valid_lifetime": c.map.valid_lifetime}),
            "counters": merged_counters(self.counters, self.advertiser.counters),
            "uptime": round(now - self.started_at, 3),
        }

    def handle_control(self, request: dict[str, Any]) -> dict[str, Any]:
        return answer_control(request, self.config.node.name, {"status": self.status})
