"""Pure parts of netstack.runtime: ctypes layouts, netlink parsing, LinkMonitor logic."""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import socket
import struct

import pytest

from netstack.runtime import _mmsg, afpacket, linkconfig
from netstack.runtime._blocking import call_blocking
from netstack.runtime.control import to_jsonable
from netstack.runtime.tun import TunDevice


def test_ctypes_layouts_match_linux_abi() -> None:
    # <linux/socket.h>, <linux/if_packet.h> on LP64: a wrong size would corrupt the kernel's
    # view of every batch.
    assert ctypes.sizeof(_mmsg.IoVec) == 16
    assert ctypes.sizeof(_mmsg.MsgHdr) == 56
    assert ctypes.sizeof(_mmsg.MMsgHdr) == 64
    assert _mmsg.MMsgHdr.msg_len.offset == 56
    assert ctypes.sizeof(_mmsg.SockaddrLL) == 20
    assert _mmsg.SockaddrLL.sll_pkttype.offset == 10
    assert _mmsg.FLAGS_LEN.size == 12


def test_batch_syscalls_are_available() -> None:
    assert _mmsg.recvmmsg is not None
    assert _mmsg.sendmmsg is not None


@pytest.mark.parametrize("kwargs", [{"frame_buffer": 10}, {"batch": 0}])
def test_packet_link_rejects_bad_sizes_before_opening_a_socket(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        afpacket.PacketLink("does-not-matter", **kwargs)


def test_tun_rejects_overlong_name() -> None:
    with pytest.raises(ValueError, match="too long"):
        TunDevice("x" * 16)


def _nl(msg_type: int, payload: bytes, flags: int = 0) -> bytes:
    length = 16 + len(payload)
    padded = payload + b"\0" * (-length % 4)
    return struct.pack("=IHHII", length, msg_type, flags, 0, 0) + padded


def _link(msg_type: int, index: int, flags: int) -> bytes:
    return _nl(msg_type, struct.pack("=BxHiII", 0, 1, index, flags, 0) + b"\x08\x00\x03\x00")


UP = linkconfig.IFF_UP | linkconfig.IFF_LOWER_UP


def test_parse_link_messages_multi_part_datagram() -> None:
    data = _link(linkconfig.RTM_NEWLINK, 7, UP) + _link(linkconfig.RTM_DELLINK, 9, 0)
    assert linkconfig._parse_link_messages(data) == [
        (linkconfig.RTM_NEWLINK, 7, UP),
        (linkconfig.RTM_DELLINK, 9, 0),
    ]


def test_parse_link_messages_ignores_truncated_and_other_types() -> None:
    good = _link(linkconfig.RTM_NEWLINK, 3, UP)
    assert linkconfig._parse_link_messages(good[:-6]) == []  # length field beyond buffer
    assert linkconfig._parse_link_messages(b"\x01\x02") == []
    assert linkconfig._parse_link_messages(_nl(20, b"\0" * 16) + good) == [
        (linkconfig.RTM_NEWLINK, 3, UP)
    ]
    zero_length = struct.pack("=IHHII", 0, 16, 0, 0, 0)
    assert linkconfig._parse_link_messages(zero_length) == []


def test_parse_link_messages_raises_netlink_error() -> None:
    error = _nl(linkconfig.NLMSG_ERROR, struct.pack("=i", -errno.ENODEV) + b"\0" * 16)
    with pytest.raises(OSError) as info:
        linkconfig._parse_link_messages(error)
    assert info.value.errno == errno.ENODEV
    ack = _nl(linkconfig.NLMSG_ERROR, struct.pack("=i", 0) + b"\0" * 16)
    assert linkconfig._parse_link_messages(ack) == []


def _monitor_on(sock: socket.socket, ifindex: int, carrier: bool) -> linkconfig.LinkMonitor:
    monitor = object.__new__(linkconfig.LinkMonitor)
    monitor.ifname = "test0"
    monitor.ifindex = ifindex
    monitor.carrier = carrier
    monitor.overruns = 0
    monitor._sock = sock
    return monitor


def test_link_monitor_reports_transitions_only_for_its_interface() -> None:
    feed, end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    end.setblocking(False)
    monitor = _monitor_on(end, ifindex=5, carrier=True)
    try:
        assert monitor.poll() == []
        feed.send(_link(linkconfig.RTM_NEWLINK, 5, UP))  # no change
        feed.send(_link(linkconfig.RTM_NEWLINK, 6, 0))  # another interface
        feed.send(_link(linkconfig.RTM_NEWLINK, 5, linkconfig.IFF_UP))  # carrier lost
        feed.send(_link(linkconfig.RTM_NEWLINK, 5, linkconfig.IFF_UP))  # still lost
        feed.send(_link(linkconfig.RTM_NEWLINK, 5, UP))  # back
        assert monitor.poll() == [False, True]
        assert monitor.carrier is True
        feed.send(_link(linkconfig.RTM_DELLINK, 5, UP))  # interface removed
        assert monitor.poll() == [False]
        assert monitor.poll() == []
    finally:
        feed.close()
        end.close()


def test_to_jsonable_types() -> None:
    assert to_jsonable(ipaddress.IPv6Address("2001:db8::1")) == "2001:db8::1"
    assert to_jsonable(ipaddress.IPv4Network("10.0.0.0/8")) == "10.0.0.0/8"
    assert to_jsonable(b"\x01\xff") == "01ff"
    assert to_jsonable(frozenset({1})) == [1]
    with pytest.raises(TypeError):
        to_jsonable(object())


def test_call_blocking_runs_off_loop_thread_inside_asyncio() -> None:
    import asyncio
    import threading

    main_thread = threading.get_ident()

    def where() -> int:
        return threading.get_ident()

    assert call_blocking(where) == main_thread  # no loop: direct call

    async def main() -> int:
        return call_blocking(where)

    assert asyncio.run(main()) != main_thread

    def fail() -> None:
        raise KeyError("propagated")

    async def failing() -> None:
        call_blocking(fail)

    with pytest.raises(KeyError, match="propagated"):
        asyncio.run(failing())
