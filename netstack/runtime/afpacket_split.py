"""One interface read through one AF_PACKET socket per ethertype, as if it were one link.

A socket bound to ETH_P_ALL is a tap: the kernel delivers every received frame to it before
tc ingress runs, so it would also see the packets a tc program redirects (the fast path,
netstack.fastpath). Sockets bound to one ethertype each are served after tc ingress and see
exactly what the programs passed on. `SplitPacketLink` keeps PacketLink's interface (one
pollable descriptor: an epoll set of the sockets; receive drains each; send uses the first).
"""

from __future__ import annotations

import select
from collections.abc import Callable, Iterable
from typing import Any

from netstack.runtime._mmsg import DEFAULT_BATCH
from netstack.runtime.afpacket import PacketLink
from netstack.wire.offload import Offload

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD


class SplitPacketLink:
    def __init__(self, ifname: str, protocols: Iterable[int], **options: Any) -> None:
        self.links: list[PacketLink] = []
        self._epoll = select.epoll()
        try:
            for protocol in protocols:
                link = PacketLink(ifname, protocol=protocol, **options)
                self.links.append(link)
                self._epoll.register(link.fileno(), select.EPOLLIN)
        except BaseException:
            self.close()
            raise
        first = self.links[0]
        self.ifname, self.ifindex, self.mac, self.vnet_hdr = first.ifname, first.ifindex, first.mac, first.vnet_hdr
        self.counters = first.counters

    def fileno(self) -> int:
        return self._epoll.fileno()

    @property
    def mtu(self) -> int:
        return self.links[0].mtu

    def recv_batch(self, max_packets: int = DEFAULT_BATCH) -> list[memoryview]:
        frames: list[memoryview] = []
        for link in self.links:
            frames.extend(link.recv_batch(max_packets))
        return frames

    def recv_batch_offload(
        self, max_packets: int = DEFAULT_BATCH, keep: Callable[[memoryview], bool] | None = None
    ) -> list[tuple[memoryview, Offload | None]]:
        frames: list[tuple[memoryview, Offload | None]] = []
        for link in self.links:
            frames.extend(link.recv_batch_offload(max_packets, keep))
        return frames

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        return self.links[0].send(frame)

    def send_batch(self, frames: Iterable[bytes | bytearray | memoryview]) -> int:
        return self.links[0].send_batch(frames)

    def send_offload_batch(self, items: list[tuple[bytes, Offload]]) -> int:
        return self.links[0].send_offload_batch(items)

    def close(self) -> None:
        for link in self.links:
            link.close()
        self._epoll.close()


def open_link(ifname: str, protocols: tuple[int, ...] | None, **options: Any) -> PacketLink | SplitPacketLink:
    """A tap (ETH_P_ALL) when `protocols` is None; else the ethertypes' sockets after tc
    ingress (one: a plain PacketLink bound to it)."""
    if protocols is None:
        return PacketLink(ifname, **options)
    if len(protocols) == 1:
        return PacketLink(ifname, protocol=protocols[0], **options)
    return SplitPacketLink(ifname, protocols, **options)


def serve_after_tc(link: object, protocol: int) -> None:
    """Rebind a link's packet socket to one ethertype, so it is served after tc ingress
    (stand-in links of tests and fuzzers have no socket: left alone)."""
    bind = getattr(link, "bind_protocol", None)
    if bind is not None:
        bind(protocol)
