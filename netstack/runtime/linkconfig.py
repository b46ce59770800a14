"""Prepare an interface the node owns, and watch its carrier.

A userspace node owns its links through AF_PACKET, so the kernel must keep out of them:
kernel IPv6 is disabled on the interface (no kernel ND, RS, MLD or address of its own), and
checksum/segmentation/GRO offloads are switched off so AF_PACKET sees finished, MTU-sized
frames (with offloads on, a veth delivers 64 KB GSO super-frames and packets whose checksum is
left for "hardware" that does not exist). The test bed turns offloads off on both ends of
every veth: the *sender's* offloads decide what the receiver sees.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from pyroute2.ethtool import Ethtool

from netstack.runtime._blocking import call_blocking

# Offload features (ethtool -k names) we switch off when the device lets us. Names absent on
# a device are skipped; "[fixed]" ones cannot change and are reported as they are.
OFFLOAD_FEATURES: tuple[str, ...] = (
    "rx-checksum",
    "tx-checksum-ipv4",
    "tx-checksum-ipv6",
    "tx-checksum-ip-generic",
    "tx-checksum-sctp",
    "tx-scatter-gather",
    "tx-scatter-gather-fraglist",
    "tx-tcp-segmentation",
    "tx-tcp-ecn-segmentation",
    "tx-tcp-mangleid-segmentation",
    "tx-tcp6-segmentation",
    "tx-tcp-accecn-segmentation",
    "tx-udp-segmentation",
    "tx-generic-segmentation",
    "tx-gso-list",
    "rx-gro",
    "rx-gro-hw",
    "rx-gro-list",
    "rx-udp-gro-forwarding",
    "rx-lro",
)

# rtnetlink constants (linux/rtnetlink.h, linux/netlink.h, linux/if.h)
NETLINK_ROUTE = 0
RTMGRP_LINK = 0x1
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")


def configure_link(ifname: str, *, disable_ipv6: bool = True, offloads_off: bool = True) -> None:
    """Make ``ifname`` (in the caller's namespace) fit for a userspace node.

    ``disable_ipv6=False`` leaves the kernel's IPv6 setting as it is.
    """
    socket.if_nametoindex(ifname)  # OSError now for a missing interface, not half-configured
    if disable_ipv6:
        set_kernel_ipv6(ifname, enabled=False)
    if offloads_off:
        set_offloads_off(ifname)


def set_kernel_ipv6(ifname: str, *, enabled: bool) -> None:
    """Write net.ipv6.conf.<ifname>.disable_ipv6 (the writer's network namespace)."""
    path = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"
    if not os.path.isdir("/proc/sys/net/ipv6"):
        return  # kernel without IPv6: nothing to keep out of the way
    with open(path, "w") as knob:
        knob.write("0" if enabled else "1")


def kernel_ipv6_disabled(ifname: str) -> bool:
    with open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6") as knob:
        return knob.read().strip() == "1"


def _set_offloads_off(ifname: str) -> dict[str, bool]:
    ethtool = Ethtool()
    try:
        features = ethtool.get_features(ifname)
        changed = False
        for name in OFFLOAD_FEATURES:
            feature = features.features.get(name)
            if feature is not None and feature.available and feature.enable:
                feature.enable = False
                changed = True
        if changed:
            ethtool.set_features(ifname, features)
        return _offload_state(ethtool, ifname)
    finally:
        ethtool.close()


def _offload_state(ethtool: Ethtool, ifname: str,
                   names: tuple[str, ...] = OFFLOAD_FEATURES) -> dict[str, bool]:
    features = ethtool.get_features(ifname).features
    return {name: bool(features[name].enable) for name in names if name in features}


def _set_features(ifname: str, wanted: dict[str, bool]) -> dict[str, bool]:
    ethtool = Ethtool()
    try:
        features = ethtool.get_features(ifname)
        for name, enable in wanted.items():
            feature = features.features.get(name)
            if feature is not None and feature.available:
                feature.enable = enable
        ethtool.set_features(ifname, features)
        return _offload_state(ethtool, ifname)
    finally:
        ethtool.close()


def set_features(ifname: str, wanted: dict[str, bool]) -> dict[str, bool]:
    """Set ethtool features by name (``{"rx-gro": True}``); returns the state read back."""
    return call_blocking(_set_features, ifname, wanted)


def set_offloads_off(ifname: str) -> dict[str, bool]:
    """Switch off checksum, SG, TSO, GSO, GRO and LRO offloads that the device can change.

    Returns the features' state read back afterwards (name -> enabled); a feature still True
    is fixed by the driver (e.g. on ``lo``).
    """
    return call_blocking(_set_offloads_off, ifname)


def offload_state(ifname: str, names: tuple[str, ...] = OFFLOAD_FEATURES) -> dict[str, bool]:
    """The current state of ``names`` (default ``OFFLOAD_FEATURES``) on ``ifname``."""

    def read() -> dict[str, bool]:
        ethtool = Ethtool()
        try:
            return _offload_state(ethtool, ifname, names)
        finally:
            ethtool.close()

    return call_blocking(read)


# -- carrier -----------------------------------------------------------------------------


def _netlink_socket(groups: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    sock.bind((0, groups))
    return sock


def _parse_link_messages(data: bytes) -> list[tuple[int, int, int]]:
    """(message type, ifindex, ifi_flags) for each RTM_NEWLINK/RTM_DELLINK in a datagram."""
    links = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, msg_type, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        if msg_type == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, offset + _NLMSGHDR.size)
            if code < 0:
                raise OSError(-code, os.strerror(-code))
        elif msg_type in (RTM_NEWLINK, RTM_DELLINK) and length >= _NLMSGHDR.size + _IFINFOMSG.size:
            _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(
                data, offset + _NLMSGHDR.size
            )
            links.append((msg_type, index, flags))
        offset += (length + 3) & ~3
    return links


def _link_flags(ifindex: int) -> int:
    request = _NLMSGHDR.pack(
        _NLMSGHDR.size + _IFINFOMSG.size, RTM_GETLINK, NLM_F_REQUEST, 1, 0
    ) + _IFINFOMSG.pack(socket.AF_UNSPEC, 0, ifindex, 0, 0)
    with _netlink_socket() as sock:
        sock.settimeout(2.0)
        sock.send(request)
        while True:
            for msg_type, index, flags in _parse_link_messages(sock.recv(65536)):
                if msg_type == RTM_NEWLINK and index == ifindex:
                    return flags


def _usable(flags: int) -> bool:
    return bool(flags & IFF_UP) and bool(flags & IFF_LOWER_UP)


def link_is_up(ifname: str) -> bool:
    """True when ``ifname`` is administratively up and has carrier (IFF_LOWER_UP)."""
    return _usable(_link_flags(socket.if_nametoindex(ifname)))


class LinkMonitor:
    """Carrier changes of one interface from rtnetlink (RTMGRP_LINK), non-blocking.

    Register ``fileno()`` with the event loop and call ``poll()`` when readable: it returns
    the carrier transitions seen since the last call (True = carrier back, False = lost), in
    order, with repeats of the same state suppressed. ``carrier`` holds the current state.
    A raw netlink socket parsed with struct (only the fixed ifinfomsg header is needed): it
    fits a running asyncio loop, unlike pyroute2's synchronous IPRoute.
    """

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.ifindex = socket.if_nametoindex(ifname)
        # Subscribe first, then read the state: a change in between shows up in poll().
        self._sock = _netlink_socket(RTMGRP_LINK)
        try:
            self._sock.setblocking(False)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.carrier = link_is_up(ifname)
        except BaseException:
            self._sock.close()
            raise
        self.overruns = 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def poll(self) -> list[bool]:
        changes: list[bool] = []
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return changes
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:  # ENOBUFS: events were lost; resynchronise
                    raise
                self.overruns += 1
                self._note(changes, self._query_carrier())
                continue
            for msg_type, index, flags in _parse_link_messages(data):
                if index != self.ifindex:
                    continue
                self._note(changes, msg_type == RTM_NEWLINK and _usable(flags))

    def _query_carrier(self) -> bool:
        try:
            return _usable(_link_flags(self.ifindex))
        except OSError:
            return False  # the interface is gone

    def _note(self, changes: list[bool], up: bool) -> None:
        if up != self.carrier:
            self.carrier = up
            changes.append(up)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> LinkMonitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
