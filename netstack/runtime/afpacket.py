"""AF_PACKET link endpoint: whole Ethernet frames in and out of one interface.

The node owns the link (kernel IPv6 disabled on it, offloads off, see ``linkconfig``), so
every frame it sees is a real on-the-wire frame. Receive and send are batched through
``recvmmsg``/``sendmmsg`` called with ctypes on preallocated buffers: about 64 frames per
system call instead of one, which roughly doubles packets per second in Python.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import socket
import struct
from collections.abc import Iterable

from netstack.runtime._mmsg import (
    DEFAULT_BATCH,
)
from netstack.runtime._mmsg import (
    FLAGS_LEN as _FLAGS_LEN,
)
from netstack.runtime._mmsg import (
    FLAGS_OFFSET as _FLAGS_OFFSET,
)
from netstack.runtime._mmsg import (
    MMSG_SIZE as _MMSG_SIZE,
)
from netstack.runtime._mmsg import (
    NAMELEN_OFFSET as _NAMELEN_OFFSET,
)
from netstack.runtime._mmsg import (
    SOCKADDR_LL_SIZE as _SOCKADDR_LL_SIZE,
)
from netstack.runtime._mmsg import (
    U32 as _U32,
)
from netstack.runtime._mmsg import (
    IoVec as _IoVec,
)
from netstack.runtime._mmsg import (
    MMsgHdr as _MMsgHdr,
)
from netstack.runtime._mmsg import (
    SockaddrLL as _SockaddrLL,
)
from netstack.runtime._mmsg import (
    TxIoVec as _TxIoVec,
)
from netstack.runtime._mmsg import recvmmsg as _recvmmsg
from netstack.runtime._mmsg import sendmmsg as _sendmmsg
from netstack.runtime.afpacket_offload import OffloadIo, keep_none
from netstack.wire.offload import (
    VNET_HDR_LEN,
    ZERO_VNET_HDR,
)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
PACKET_VNET_HDR = 15
PACKET_OUTGOING = 4  # sll_pkttype of our own transmissions (only seen without IGNORE_OUTGOING)
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927

DEFAULT_FRAME_BUFFER = 2048  # enough for a 1500-byte MTU frame once GRO/TSO are off
DEFAULT_SOCKET_BUFFER = 4 * 1024 * 1024
# With PACKET_VNET_HDR a frame can be a 64 KB GSO super-frame (gso_max_size 65536 + Ethernet)
GSO_FRAME_BUFFER = 65536 + 14 + VNET_HDR_LEN + 32

# Errors that mean "this frame cannot go out now": drop it, count it, carry on.
_TX_CONGESTED = (errno.EAGAIN, errno.ENOBUFS)
_LINK_GONE = (errno.ENETDOWN, errno.ENXIO, errno.ENODEV)


def _ifreq(ifname: str) -> bytes:
    return struct.pack("16s24x", ifname.encode())


def read_mac(sock: socket.socket, ifname: str) -> bytes:
    """Hardware address of ``ifname`` (in the namespace of ``sock``) via SIOCGIFHWADDR."""
    reply = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, _ifreq(ifname))
    return bytes(reply[18:24])  # ifr_hwaddr: 2-byte family, then the address


def read_mtu(sock: socket.socket, ifname: str) -> int:
    """MTU of ``ifname`` via SIOCGIFMTU."""
    reply = fcntl.ioctl(sock.fileno(), SIOCGIFMTU, _ifreq(ifname))
    return int(struct.unpack_from("i", reply, 16)[0])


def _set_buffer(sock: socket.socket, force_opt: int, plain_opt: int, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_opt, size)  # root: beyond net.core.*mem_max
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, plain_opt, size)


class PacketLink(OffloadIo):
    """Raw Ethernet endpoint bound to one interface (AF_PACKET, SOCK_RAW, ETH_P_ALL).

    Non-blocking: register ``fileno()`` with the event loop and drain with ``recv_batch``.
    Our own transmissions are not looped back (PACKET_IGNORE_OUTGOING; on kernels without it
    they are filtered by packet type). Frames longer than ``frame_buffer`` are dropped and
    counted in ``counters["rx_truncated"]`` — with offloads off nothing exceeds MTU + 14.

    With ``vnet_hdr`` the socket carries the kernel's offload metadata (PACKET_VNET_HDR, see
    ``netstack.wire.offload``), so the peer may keep its checksum and segmentation offloads
    on: ``recv_batch`` still returns finished wire frames (partial checksums completed, GSO
    super-frames cut in software), while ``recv_batch_offload`` hands super-frames to a
    caller that handles one header per super-frame, and ``send_offload_batch`` sends them.
    """

    def __init__(
        self,
        ifname: str,
        *,
        frame_buffer: int = DEFAULT_FRAME_BUFFER,
        batch: int = DEFAULT_BATCH,
        socket_buffer: int = DEFAULT_SOCKET_BUFFER,
        vnet_hdr: bool = False,
        protocol: int = ETH_P_ALL,
    ) -> None:
        if frame_buffer < 64 or batch < 1:
            raise ValueError("frame_buffer must be >= 64 and batch >= 1")
        if vnet_hdr:
            frame_buffer = max(frame_buffer, GSO_FRAME_BUFFER)
        self.vnet_hdr = vnet_hdr
        self.ifname = ifname
        self.frame_buffer = frame_buffer
        self.batch = batch
        self.counters: dict[str, int] = {
            "rx_packets": 0,
            "rx_truncated": 0,
            "rx_link_errors": 0,
            "tx_packets": 0,
            "tx_dropped": 0,
            "tx_errors": 0,
        }
        if vnet_hdr:
            self.counters.update(rx_checksum_completed=0, rx_gso_frames=0, rx_gso_segmented=0,
                                 rx_gso_dropped=0, tx_gso_frames=0)
        # Protocol 0 at creation, ETH_P_ALL at bind: no frames from other interfaces can sneak
        # into the queue between socket() and bind(). ETH_P_ALL sockets are taps: the kernel
        # hands them every frame before tc ingress runs; a socket bound to one ethertype gets
        # only what tc ingress passed on (so the fast path's redirected packets never arrive).
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            if vnet_hdr:
                self._sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            self._sock.bind((ifname, protocol))
            self.ifindex = socket.if_nametoindex(ifname)
            self._filter_outgoing = False
            try:
                self._sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            except OSError:
                self._filter_outgoing = True  # kernel < 4.20: drop PACKET_OUTGOING ourselves
            _set_buffer(self._sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, socket_buffer)
            _set_buffer(self._sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, socket_buffer)
            self._sock.setblocking(False)
            self.mac = read_mac(self._sock, ifname)
        except BaseException:
            self._sock.close()
            raise
        self._fd = self._sock.fileno()
        self._setup_rx(batch, frame_buffer)
        self._setup_tx(batch)

    # -- setup ---------------------------------------------------------------------------

    def _setup_rx(self, batch: int, frame_buffer: int) -> None:
        self._rx_storage = (ctypes.c_char * (batch * frame_buffer))()
        self._rx_view = memoryview(self._rx_storage).cast("B")
        self._rx_names = (_SockaddrLL * batch)()
        self._rx_iov = (_IoVec * batch)()
        self._rx_hdrs = (_MMsgHdr * batch)()
        base = ctypes.addressof(self._rx_storage)
        for i in range(batch):
            self._rx_iov[i].iov_base = base + i * frame_buffer
            self._rx_iov[i].iov_len = frame_buffer
            hdr = self._rx_hdrs[i].msg_hdr
            hdr.msg_iov = ctypes.addressof(self._rx_iov[i])
            hdr.msg_iovlen = 1
            if self._filter_outgoing:  # source address only needed to spot our own frames
                hdr.msg_name = ctypes.addressof(self._rx_names[i])
        self._rx_meta = memoryview(self._rx_hdrs).cast("B")
        self._one_buffer = bytearray(frame_buffer)
        self._one_view = memoryview(self._one_buffer)

    def _setup_tx(self, batch: int) -> None:
        # Two iovecs per message: [virtio_net_hdr, frame] with PACKET_VNET_HDR, else [frame].
        self._tx_iov = (_TxIoVec * (2 * batch))()
        self._tx_hdrs = (_MMsgHdr * batch)()
        for i in range(batch):
            hdr = self._tx_hdrs[i].msg_hdr
            if self.vnet_hdr:
                self._tx_iov[2 * i].iov_base = ZERO_VNET_HDR
                self._tx_iov[2 * i].iov_len = VNET_HDR_LEN
                hdr.msg_iov = ctypes.addressof(self._tx_iov[2 * i])
                hdr.msg_iovlen = 2
            else:
                hdr.msg_iov = ctypes.addressof(self._tx_iov[2 * i + 1])
                hdr.msg_iovlen = 1

    def bind_protocol(self, protocol: int) -> None:
        """Serve only one ethertype from now on: a socket bound to one is served after tc
        ingress (ETH_P_ALL is a tap, served before it), see netstack.fastpath."""
        self._sock.bind((self.ifname, protocol))

    # -- properties ----------------------------------------------------------------------

    def fileno(self) -> int:
        return self._fd

    @property
    def mtu(self) -> int:
        """Current interface MTU (read from the kernel each time; it can change)."""
        return read_mtu(self._sock, self.ifname)

    # -- receive -------------------------------------------------------------------------

    def recv_batch(self, max_packets: int = DEFAULT_BATCH) -> list[memoryview]:
        """Up to ``max_packets`` frames that are waiting; [] when none.

        The views point into preallocated buffers and stay valid only until the next
        ``recv_batch`` call: copy (``bytes(view)``) anything that must live longer.
        """
        if self.vnet_hdr:
            return [frame for frame, _offload in self._recv_vnet(max_packets, keep_none)]
        if _recvmmsg is None:
            return self._recv_loop(max_packets)
        count = min(max_packets, self.batch)
        filter_outgoing = self._filter_outgoing
        meta = self._rx_meta
        if filter_outgoing:
            for i in range(count):  # msg_namelen is in/out: reset before every call
                _U32.pack_into(meta, i * _MMSG_SIZE + _NAMELEN_OFFSET, _SOCKADDR_LL_SIZE)
        received = _recvmmsg(self._fd, self._rx_hdrs, count, MSG_DONTWAIT, None)
        if received < 0:
            self._receive_error(ctypes.get_errno())
            return []
        frames: list[memoryview] = []
        size = self.frame_buffer
        view = self._rx_view
        # Read msg_flags/msg_len straight from the header array with struct: attribute access
        # on ctypes structures costs several times more per frame.
        for i in range(received):
            flags, length = _FLAGS_LEN.unpack_from(meta, i * _MMSG_SIZE + _FLAGS_OFFSET)
            if flags & MSG_TRUNC:
                self.counters["rx_truncated"] += 1
                continue
            if filter_outgoing and self._rx_names[i].sll_pkttype == PACKET_OUTGOING:
                continue
            start = i * size
            frames.append(view[start : start + length])
        self.counters["rx_packets"] += len(frames)
        return frames

    def recv_one(self) -> memoryview | None:
        """One waiting frame or None (fallback path, one system call per frame).

        The view is valid until the next ``recv_one`` call.
        """
        while True:
            try:
                length, address = self._sock.recvfrom_into(self._one_buffer, 0, MSG_TRUNC)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                self._receive_error(exc.errno or 0)
                return None
            # With MSG_TRUNC a packet socket reports the frame's real length.
            if length > self.frame_buffer:
                self.counters["rx_truncated"] += 1
                continue
            if self._filter_outgoing and address[2] == PACKET_OUTGOING:
                continue
            self.counters["rx_packets"] += 1
            return self._one_view[:length]

    def _recv_loop(self, max_packets: int) -> list[memoryview]:
        frames = []
        for _ in range(max_packets):
            frame = self.recv_one()
            if frame is None:
                break
            frames.append(bytes(frame))  # recv_one reuses one buffer: copy
        return [memoryview(f) for f in frames]

    def _receive_error(self, err: int) -> None:
        if err in (errno.EAGAIN, errno.EINTR):
            return
        if err in _LINK_GONE:
            # The kernel reports a link going down once on the socket; the link monitor tells
            # the daemon, the socket stays usable when the link comes back.
            self.counters["rx_link_errors"] += 1
            return
        raise OSError(err, f"recvmmsg on {self.ifname}: {errno.errorcode.get(err, err)}")

    # -- send ----------------------------------------------------------------------------

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        """Send one frame; False (and counted) when the kernel would block or refuses it."""
        try:
            if self.vnet_hdr:
                self._sock.sendmsg([ZERO_VNET_HDR, frame])
            else:
                self._sock.send(frame)
        except (BlockingIOError, InterruptedError):
            self.counters["tx_dropped"] += 1
            return False
        except OSError as exc:
            if exc.errno in _TX_CONGESTED or exc.errno in _LINK_GONE:
                self.counters["tx_dropped"] += 1
            else:
                self.counters["tx_errors"] += 1  # e.g. EMSGSIZE for a frame above the MTU
            return False
        self.counters["tx_packets"] += 1
        return True

    def send_batch(self, frames: Iterable[bytes | bytearray | memoryview]) -> int:
        """Send frames with as few ``sendmmsg`` calls as possible; returns how many went out.

        Frames the kernel cannot take (queue full, link down) are dropped and counted; a
        single bad frame (too long) is skipped and counted in ``tx_errors``.
        """
        pending = [f for f in frames if len(f)]
        if _sendmmsg is None:
            return sum(self.send(f) for f in pending)
        sent_total = 0
        for start in range(0, len(pending), self.batch):
            chunk = pending[start : start + self.batch]
            sent, link_gone = self._send_chunk(chunk)
            sent_total += sent
            if link_gone:
                self.counters["tx_dropped"] += len(pending) - start - len(chunk)
                break
        self.counters["tx_packets"] += sent_total
        return sent_total

    def _send_chunk(
        self, chunk: list[bytes | bytearray | memoryview], headers: list[bytes] | None = None
    ) -> tuple[int, bool]:
        keep_alive = []  # writable-buffer exports must outlive the system call
        iov = self._tx_iov
        if headers is not None:
            for i, header in enumerate(headers):
                iov[2 * i].iov_base = header
        for i, frame in enumerate(chunk):
            slot = 2 * i + 1
            if isinstance(frame, bytes):
                iov[slot].iov_base = frame
            elif isinstance(frame, memoryview) and frame.readonly:
                copy = bytes(frame)
                keep_alive.append(copy)
                iov[slot].iov_base = copy
            else:
                exported = (ctypes.c_char * len(frame)).from_buffer(frame)
                keep_alive.append(exported)
                iov[slot].iov_base = ctypes.addressof(exported)
            iov[slot].iov_len = len(frame)
        count = len(chunk)
        index = 0
        sent = 0
        hdr_size = ctypes.sizeof(_MMsgHdr)
        base = ctypes.addressof(self._tx_hdrs)
        link_gone = False
        while index < count:
            done = _sendmmsg(self._fd, base + index * hdr_size, count - index, 0)
            if done > 0:
                index += done
                sent += done
                continue
            err = ctypes.get_errno()
            if err == errno.EINTR:
                continue
            if err in _TX_CONGESTED or err in _LINK_GONE:
                self.counters["tx_dropped"] += count - index
                link_gone = err in _LINK_GONE
                break
            self.counters["tx_errors"] += 1  # this frame is bad (EMSGSIZE, EINVAL): skip it
            index += 1
        for i in range(count):
            iov[2 * i + 1].iov_base = None  # release references to the frames
            if headers is not None:
                iov[2 * i].iov_base = ZERO_VNET_HDR
        del keep_alive
        return sent, link_gone

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> PacketLink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
