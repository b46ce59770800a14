"""The TAHI-style tester: a scapy node on one bed segment, driven from the test process.

A `LinkTester` owns an AF_PACKET socket opened inside a probe namespace (the socket stays in
that namespace after the thread returns), so one pytest process can play several TAHI
nodes at once ("TN" on the visited link, "HN" on the home link) without a scapy process per
case. Frames are built and dissected with scapy (control messages only, never data rates).
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from ipaddress import IPv6Address

from scapy.layers.l2 import Ether
from scapy.packet import Packet

from provisioning import netns

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23


class LinkTester:
    """Send frames on a link and wait for the frame a test expects."""

    def __init__(self, namespace: str, ifname: str = "eth0") -> None:
        self.namespace = namespace
        with netns.inside(namespace):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.bind((ifname, 0))
            self.sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.mac = ":".join(f"{b:02x}" for b in self.sock.getsockname()[4][:6])
        self.sock.setblocking(False)

    def close(self) -> None:
        self.sock.close()

    def send(self, frame: Packet | bytes) -> None:
        if isinstance(frame, Packet) and Ether in frame and frame[Ether].src in (
                None, "", "00:00:00:00:00:00"):  # scapy's default before a payload it knows
            frame[Ether].src = self.mac
        self.sock.send(bytes(frame))

    def drain(self) -> None:
        """Forget what arrived so far (each case starts on a quiet queue)."""
        while True:
            try:
                self.sock.recv(65535)
            except BlockingIOError:
                return

    def frames(self, timeout: float) -> list[Packet]:
        """Every frame that arrives within `timeout` seconds."""
        out: list[Packet] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            frame = self._recv(left)
            if frame is not None:
                out.append(frame)
        return out

    def expect(self, match: Callable[[Packet], bool], timeout: float = 5.0) -> Packet | None:
        """The first frame for which `match` is true, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            frame = self._recv(left)
            if frame is None:
                continue
            try:
                if match(frame):
                    return frame
            except (AttributeError, IndexError, TypeError):
                continue  # a frame of another shape than the predicate reads
        return None

    def _recv(self, timeout: float) -> Packet | None:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        try:
            data = self.sock.recv(65535)
        except BlockingIOError:
            return None
        if len(data) < 14 or data[12:14] != b"\x86\xdd":
            return None
        return Ether(data)


def same_address(a: object, b: object) -> bool:
    """Addresses compared by value (scapy gives strings in whichever spelling)."""
    try:
        return IPv6Address(str(a)) == IPv6Address(str(b))
    except ValueError:
        return False
