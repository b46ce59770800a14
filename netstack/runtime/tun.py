"""TUN device: plain IP packets between the node and local kernel applications.

Every node offers IP to unmodified kernel applications (DNS, TLS relay, a CN's servers)
through a TUN interface carrying its home address; the node reads what they send with
``read_batch`` and writes what they should receive with ``write``. IFF_NO_PI: each read or
write is exactly one IP packet, no 4-byte packet-information prefix.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import socket
import struct

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netstack.runtime._blocking import call_blocking

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFA_F_NODAD = 0x02
DEFAULT_TUN_MTU = 1460  # leaves room for the 40-byte IPv6-in-IPv6 header on a 1500 link
_READ_SIZE = 65536  # a TUN read returns at most one packet, never more than 64 KiB


def _iproute(method: str, *args: object, **kwargs: object) -> None:
    """One IPRoute request in the caller's namespace (off-loop if an asyncio loop runs)."""

    def run() -> None:
        with IPRoute() as ipr:
            getattr(ipr, method)(*args, **kwargs)

    call_blocking(run)


def add_loopback_address(address: ipaddress.IPv6Address, *, preferred: bool = False) -> None:
    """Give an address to `lo`: the kernel delivers packets for it whatever interface they come
    in by, but programs that pick "the interface's address" (baresip, via getifaddrs) never see
    it on the TUN. Idempotent (an existing address is left alone)."""
    extra: dict[str, object] = {"flags": IFA_F_NODAD}
    if not preferred:
        extra["IFA_CACHEINFO"] = {"ifa_preferred": 0, "ifa_valid": 0xFFFFFFFF,
                                  "cstamp": 0, "tstamp": 0}

    def run() -> None:
        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname="lo")[0]
            try:
                ipr.addr("add", index=index, address=str(address), prefixlen=128, **extra)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise

    call_blocking(run)


class TunDevice:
    """A TUN interface owned by this process (it disappears when the descriptor closes).

    Created in the caller's network namespace, set to ``mtu`` and brought up. Non-blocking:
    register ``fileno()`` with the event loop and drain with ``read_batch``.
    """

    def __init__(self, name: str, mtu: int = DEFAULT_TUN_MTU, *, up: bool = True) -> None:
        if len(name.encode()) > 15:
            raise ValueError(f"interface name too long: {name!r}")
        self._fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            request = struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI)
            reply = fcntl.ioctl(self._fd, TUNSETIFF, request)
            self.name = reply[:16].rstrip(b"\0").decode()
            self.ifindex = socket.if_nametoindex(self.name)
            self.counters: dict[str, int] = {"rx_packets": 0, "tx_packets": 0, "tx_dropped": 0}
            self.set_link(mtu=mtu, up=up)
        except BaseException:
            os.close(self._fd)
            raise
        self.mtu = mtu

    def fileno(self) -> int:
        return self._fd

    # -- data ----------------------------------------------------------------------------

    def read_batch(self, max_packets: int = 64) -> list[bytes]:
        """Up to ``max_packets`` IP packets the kernel has queued for us; [] when none."""
        packets: list[bytes] = []
        read = os.read
        fd = self._fd
        for _ in range(max_packets):
            try:
                packets.append(read(fd, _READ_SIZE))
            except (BlockingIOError, InterruptedError):
                break
        self.counters["rx_packets"] += len(packets)
        return packets

    def write(self, packet: bytes | bytearray | memoryview) -> bool:
        """Hand one IP packet to the kernel; False (counted) if it was refused."""
        try:
            os.write(self._fd, packet)
        except OSError:
            # EAGAIN (queue full), EINVAL (not an IP packet), EIO (link down): the kernel
            # drops; so do we, counted.
            self.counters["tx_dropped"] += 1
            return False
        self.counters["tx_packets"] += 1
        return True

    # -- configuration (pyroute2, no `ip` command) ---------------------------------------

    def set_link(self, *, mtu: int | None = None, up: bool | None = None) -> None:
        """Change MTU and/or administrative state."""
        spec: dict[str, object] = {}
        if mtu is not None:
            spec["mtu"] = mtu
            self.mtu = mtu
        if up is not None:
            spec["state"] = "up" if up else "down"
        if spec:
            _iproute("link", "set", index=self.ifindex, **spec)

    def add_address(self, address: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
                    prefixlen: int, *, preferred: bool = True) -> None:
        """Add an address; IPv6 addresses skip DAD (IFA_F_NODAD): the node owns them.
        `preferred=False` adds it deprecated (never picked as a source address)."""
        addr = ipaddress.ip_address(address)
        extra: dict[str, object] = {"flags": IFA_F_NODAD} if addr.version == 6 else {}
        if not preferred:
            extra["IFA_CACHEINFO"] = {"ifa_preferred": 0, "ifa_valid": 0xFFFFFFFF,
                                      "cstamp": 0, "tstamp": 0}
        _iproute("addr", "add", index=self.ifindex, address=str(addr), prefixlen=prefixlen, **extra)

    def add_route(self, destination: str | ipaddress.IPv4Network | ipaddress.IPv6Network,
                  *, gateway: str | None = None, metric: int | None = None) -> None:
        """Route ``destination`` (e.g. "::/0", "2001:db8::/64") through this TUN."""
        network = ipaddress.ip_network(destination, strict=False)
        spec: dict[str, object] = {"dst": str(network), "oif": self.ifindex}
        if network.version == 6:
            spec["family"] = socket.AF_INET6
        if gateway is not None:
            spec["gateway"] = gateway
        if metric is not None:
            spec["priority"] = metric
        _iproute("route", "add", **spec)

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> TunDevice:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
