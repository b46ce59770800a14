"""Segmentation and checksum offload metadata (virtio_net_hdr) and software GSO on bytes.

With PACKET_VNET_HDR a packet socket passes each frame with the 10-octet ``virtio_net_hdr``
the kernel uses for TAP and virtio-net: whether the transport checksum is still to be done
(CHECKSUM_PARTIAL: the field holds only the pseudo-header sum) and whether the frame is a
GSO super-frame (up to 64 KB of TCP or UDP payload in one buffer, ``gso_size`` octets per
segment on the wire). Reading super-frames lets a forwarder handle one header per 40-odd
segments; this module gives everything else back ordinary frames:

* ``complete_checksum`` finishes a partial checksum in place, as the kernel's
  ``skb_checksum_help`` does;
* ``segment`` cuts a super-frame into wire-sized packets, as the kernel's software GSO does
  (TCP sequence numbers and flags, UDP lengths, IPv4 identification and header checksum,
  every IP header's length), through any number of IPv6-in-IPv6 / IP-in-IP layers.

Sans-IO: bytes in, bytes out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from netstack.wire.checksum import ones_complement_sum

# include/uapi/linux/virtio_net.h
F_NEEDS_CSUM = 1
F_DATA_VALID = 2
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_UDP = 3  # UFO (IPv4 fragmentation of one datagram): not produced by current kernels
GSO_TCPV6 = 4
GSO_UDP_L4 = 5
GSO_ECN = 0x80

VNET_HDR_LEN = 10
# PACKET_VNET_HDR uses the legacy virtio layout in the host's byte order.
_VNET_HDR = struct.Struct("=BBHHHH")
ZERO_VNET_HDR = bytes(VNET_HDR_LEN)

_TCP, _UDP, _IPV6_IN, _IPV4_IN = 6, 17, 41, 4
_TCP_FIN, _TCP_PSH, _TCP_CWR = 0x01, 0x08, 0x80
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class SegmentationError(ValueError):
    """A super-frame this module cannot cut (unknown layers, bad offsets)."""


@dataclass(frozen=True, slots=True)
class Offload:
    """One ``virtio_net_hdr``: checksum state and GSO parameters of a frame."""

    flags: int = 0
    gso_type: int = GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    @property
    def is_gso(self) -> bool:
        return (self.gso_type & ~GSO_ECN) != GSO_NONE

    @property
    def needs_checksum(self) -> bool:
        return bool(self.flags & F_NEEDS_CSUM)

    def pack(self) -> bytes:
        return _VNET_HDR.pack(self.flags, self.gso_type, self.hdr_len, self.gso_size,
                              self.csum_start, self.csum_offset)

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> Offload:
        return cls(*_VNET_HDR.unpack_from(data))

    def shifted(self, delta: int) -> Offload:
        """The same offload after ``delta`` octets were added (+) or removed (-) in front."""
        return Offload(self.flags, self.gso_type, max(0, self.hdr_len + delta) if self.hdr_len else 0,
                       self.gso_size, self.csum_start + delta, self.csum_offset)


def parse_vnet_header(data: bytes | bytearray | memoryview) -> tuple[int, int, int, int, int, int]:
    """(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset) without an object."""
    return _VNET_HDR.unpack_from(data)


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def complete_checksum(buffer: bytearray | memoryview, csum_start: int, csum_offset: int) -> bool:
    """Finish a CHECKSUM_PARTIAL transport checksum in place; False if the offsets are bad.

    The field already holds the folded pseudo-header sum; the sum runs from ``csum_start``
    to the end of the buffer. 0 is written as 0xFFFF (equivalent, and UDP's "no checksum").
    """
    field = csum_start + csum_offset
    if csum_start < 0 or field + 2 > len(buffer):
        return False
    checksum = (~ones_complement_sum(buffer[csum_start:])) & 0xFFFF
    _U16.pack_into(buffer, field, checksum or 0xFFFF)
    return True


@dataclass(frozen=True, slots=True)
class _Layers:
    """Where the IP headers and the transport header of a super-frame are."""

    ipv4: tuple[int, ...]  # offsets of IPv4 headers
    ipv6: tuple[int, ...]  # offsets of IPv6 headers
    inner: int  # offset of the innermost IP header (the pseudo-header's)
    inner_version: int
    transport: int
    protocol: int
    header_end: int  # first payload octet


def _layers(buffer: bytes | bytearray | memoryview, l3_offset: int) -> _Layers:
    ipv4: list[int] = []
    ipv6: list[int] = []
    position = l3_offset
    for _ in range(4):  # outer IP, at most a few tunnel layers, then TCP/UDP
        if position + 20 > len(buffer):
            raise SegmentationError("truncated IP header")
        version = buffer[position] >> 4
        if version == 4:
            ihl = (buffer[position] & 0x0F) * 4
            if ihl < 20:
                raise SegmentationError("bad IPv4 header length")
            ipv4.append(position)
            protocol = buffer[position + 9]
            inner, inner_version, position = position, 4, position + ihl
        elif version == 6:
            ipv6.append(position)
            protocol = buffer[position + 6]
            inner, inner_version, position = position, 6, position + 40
        else:
            raise SegmentationError(f"IP version {version}")
        if protocol in (_IPV6_IN, _IPV4_IN):
            continue
        if protocol == _TCP:
            if position + 20 > len(buffer):
                raise SegmentationError("truncated TCP header")
            header_end = position + (buffer[position + 12] >> 4) * 4
        elif protocol == _UDP:
            header_end = position + 8
        else:
            raise SegmentationError(f"transport protocol {protocol} (extension headers?)")
        if header_end > len(buffer):
            raise SegmentationError("truncated transport header")
        return _Layers(tuple(ipv4), tuple(ipv6), inner, inner_version, position, protocol,
                       header_end)
    raise SegmentationError("too many IP layers")


def _address_sum(buffer: bytes | bytearray | memoryview, layers: _Layers) -> int:
    inner = layers.inner
    if layers.inner_version == 4:
        return ones_complement_sum(buffer[inner + 12 : inner + 20])
    return ones_complement_sum(buffer[inner + 8 : inner + 40])


def segment(
    buffer: bytes | bytearray | memoryview,
    gso_size: int,
    *,
    l3_offset: int = 14,
    partial: bool = False,
) -> list[bytearray]:
    """Cut a super-frame into packets of at most ``gso_size`` payload octets each.

    ``buffer`` starts with ``l3_offset`` octets of link header (copied into every segment),
    then IP headers (IPv4 or IPv6, tunnelled in each other or not), then TCP or UDP. With
    ``partial`` the transport checksum of every segment is left as CHECKSUM_PARTIAL (the
    pseudo-header sum, for a socket that offloads it), otherwise it is computed in full.
    Raises SegmentationError for anything else (IPv6 extension headers, other protocols).
    """
    if gso_size <= 0:
        raise SegmentationError("gso_size must be positive")
    layers = _layers(buffer, l3_offset)
    header_end = layers.header_end
    template = bytearray(buffer[:header_end])
    payload = memoryview(buffer)[header_end:]
    transport = layers.transport
    tcp = layers.protocol == _TCP
    check_field = transport + (16 if tcp else 6)
    _U16.pack_into(template, check_field, 0)
    if tcp:
        sequence = _U32.unpack_from(template, transport + 4)[0]
        flags = template[transport + 13]
    else:
        sequence = flags = 0
    ipv4_layers = [(offset, _U16.unpack_from(template, offset + 4)[0], (template[offset] & 0x0F) * 4)
                   for offset in layers.ipv4]
    ipv6_layers = layers.ipv6
    pseudo_base = _address_sum(template, layers) + layers.protocol
    total = len(payload)
    count = max(1, -(-total // gso_size))
    transport_header = header_end - transport
    pack16, pack32 = _U16.pack_into, _U32.pack_into
    out: list[bytearray] = []
    for index in range(count):
        chunk = payload[index * gso_size : (index + 1) * gso_size]
        packet = bytearray(template)
        size = header_end + len(chunk)  # whole segment, link header included
        for offset, first_id, ihl in ipv4_layers:
            pack16(packet, offset + 2, size - offset)
            pack16(packet, offset + 4, (first_id + index) & 0xFFFF)
            pack16(packet, offset + 10, 0)
            pack16(packet, offset + 10, (~ones_complement_sum(packet[offset : offset + ihl])) & 0xFFFF)
        for offset in ipv6_layers:
            pack16(packet, offset + 4, size - offset - 40)
        l4_length = transport_header + len(chunk)
        if tcp:
            pack32(packet, transport + 4, (sequence + index * gso_size) & 0xFFFFFFFF)
            if index or index != count - 1:
                segment_flags = flags
                if index:
                    segment_flags &= ~_TCP_CWR  # congestion window reduced: said once
                if index != count - 1:
                    segment_flags &= ~(_TCP_FIN | _TCP_PSH)
                packet[transport + 13] = segment_flags
        else:
            pack16(packet, transport + 4, l4_length)
        pseudo = _fold(pseudo_base + l4_length)
        if partial:
            pack16(packet, check_field, pseudo)
            packet += chunk
        else:
            packet += chunk
            checksum = (~ones_complement_sum(memoryview(packet)[transport:], pseudo)) & 0xFFFF
            pack16(packet, check_field, checksum or 0xFFFF)
        out.append(packet)
    return out
