"""The offload half of a packet link: PACKET_VNET_HDR receive and send (netstack.wire.offload).

Mixed into ``PacketLink``: it shares that class's preallocated recvmmsg/sendmmsg buffers, so
a super-frame costs one slot of a batch like any frame.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from typing import Any

from netstack.runtime._mmsg import (
    DEFAULT_BATCH,
    FLAGS_LEN,
    FLAGS_OFFSET,
    MMSG_SIZE,
    NAMELEN_OFFSET,
    SOCKADDR_LL_SIZE,
    U32,
    recvmmsg,
)
from netstack.wire.offload import (
    F_NEEDS_CSUM,
    GSO_ECN,
    VNET_HDR_LEN,
    ZERO_VNET_HDR,
    Offload,
    SegmentationError,
    complete_checksum,
    parse_vnet_header,
    segment,
)

MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20
PACKET_OUTGOING = 4


def _keep_all(_frame: memoryview) -> bool:
    return True


def keep_none(_frame: memoryview) -> bool:
    """``keep`` for a reader that wants wire frames only."""
    return False


class OffloadIo:
    """PACKET_VNET_HDR receive/send; the attributes below belong to ``PacketLink``."""

    ifname: str
    vnet_hdr: bool
    batch: int
    frame_buffer: int
    counters: dict[str, int]
    _fd: int
    _filter_outgoing: bool
    _rx_meta: memoryview
    _rx_view: memoryview
    _rx_hdrs: Any
    _rx_names: Any

    def recv_batch(self, max_packets: int = DEFAULT_BATCH) -> list[memoryview]:
        raise NotImplementedError

    def _receive_error(self, err: int) -> None:
        raise NotImplementedError

    def _send_chunk(self, chunk: list[bytes | bytearray | memoryview],
                    headers: list[bytes] | None = None) -> tuple[int, bool]:
        raise NotImplementedError

    def recv_batch_offload(
        self,
        max_packets: int = DEFAULT_BATCH,
        keep: Callable[[memoryview], bool] | None = None,
    ) -> list[tuple[memoryview, Offload | None]]:
        """Like ``recv_batch``, but GSO super-frames stay whole, with their offload metadata.

        ``keep`` chooses the super-frames the caller handles whole (default: all); the others
        are cut into wire frames here. Only for a socket opened with ``vnet_hdr``; every
        other frame comes with None and a finished checksum. A kept super-frame's transport
        checksum is still partial.
        """
        if not self.vnet_hdr:
            return [(frame, None) for frame in self.recv_batch(max_packets)]
        return self._recv_vnet(max_packets, keep or _keep_all)

    def _recv_vnet(
        self, max_packets: int, keep: Callable[[memoryview], bool]
    ) -> list[tuple[memoryview, Offload | None]]:
        count = min(max_packets, self.batch)
        meta = self._rx_meta
        if self._filter_outgoing:
            for i in range(count):
                U32.pack_into(meta, i * MMSG_SIZE + NAMELEN_OFFSET, SOCKADDR_LL_SIZE)
        received = recvmmsg(self._fd, self._rx_hdrs, count, MSG_DONTWAIT, None) if recvmmsg else -1
        if received < 0:
            if recvmmsg is not None:
                self._receive_error(ctypes.get_errno())
            return []
        out: list[tuple[memoryview, Offload | None]] = []
        size = self.frame_buffer
        view = self._rx_view
        counters = self.counters
        for i in range(received):
            flags, length = FLAGS_LEN.unpack_from(meta, i * MMSG_SIZE + FLAGS_OFFSET)
            if flags & MSG_TRUNC or length < VNET_HDR_LEN:
                counters["rx_truncated"] += 1
                continue
            if self._filter_outgoing and self._rx_names[i].sll_pkttype == PACKET_OUTGOING:
                continue
            start = i * size
            frame = view[start + VNET_HDR_LEN : start + length]
            vflags, gso_type, hdr_len, gso_size, csum_start, csum_offset = parse_vnet_header(
                view[start : start + VNET_HDR_LEN])
            if gso_type & ~GSO_ECN:
                counters["rx_gso_frames"] += 1
                offload = Offload(vflags, gso_type, hdr_len, gso_size, csum_start, csum_offset)
                if keep(frame):
                    out.append((frame, offload))
                    continue
                try:
                    pieces = segment(frame, gso_size)
                except SegmentationError:
                    counters["rx_gso_dropped"] += 1
                    continue
                counters["rx_gso_segmented"] += len(pieces)
                out.extend((memoryview(piece), None) for piece in pieces)
                continue
            if vflags & F_NEEDS_CSUM:
                if not complete_checksum(frame, csum_start, csum_offset):
                    counters["rx_gso_dropped"] += 1
                    continue
                counters["rx_checksum_completed"] += 1
            out.append((frame, None))
        counters["rx_packets"] += len(out)
        return out

    def send_offload_batch(
        self, items: Sequence[tuple[bytes | bytearray | memoryview, Offload | None]]
    ) -> int:
        """Frames with their offload metadata (a socket opened with ``vnet_hdr``).

        A GSO super-frame is cut by the kernel on the way out (software GSO); a frame with a
        partial checksum is finished by the kernel or the peer. Returns how many went out.
        """
        if not self.vnet_hdr:
            raise ValueError(f"{self.ifname}: offload metadata needs a vnet_hdr socket")
        sent_total = 0
        pending = [(f, o) for f, o in items if len(f)]
        for start in range(0, len(pending), self.batch):
            chunk = pending[start : start + self.batch]
            packed: dict[Offload, bytes] = {}  # most frames of a batch share one header
            headers = [ZERO_VNET_HDR if o is None else packed.get(o) or packed.setdefault(o, o.pack())
                       for _f, o in chunk]
            sent, link_gone = self._send_chunk([f for f, _o in chunk], headers)
            sent_total += sent
            if link_gone:
                self.counters["tx_dropped"] += len(pending) - start - len(chunk)
                break
        self.counters["tx_packets"] += sent_total
        self.counters["tx_gso_frames"] += sum(1 for _f, o in pending if o is not None and o.is_gso)
        return sent_total

