"""IPv6-in-IPv6 tunnelling (RFC 2473) on plain bytes: the per-packet data path.

No dataclasses and no ipaddress objects here: addresses are 16-octet `bytes`, packets are
bytes/bytearray/memoryview, and `Encapsulator` writes into caller-owned buffers from a
precomputed header template so the batched path allocates nothing per packet.
"""

from __future__ import annotations

import struct

from netstack.wire.errors import BadLength, BadVersion, ParseError, TruncatedPacket

IPV6_HEADER_LEN = 40
IPPROTO_IPV6 = 41
IPPROTO_DSTOPTS = 60
_MAX_PAYLOAD = 0xFFFF
# Outer Destination Options headers (e.g. the RFC 2473 Tunnel Encapsulation Limit that Linux
# ip6tnl adds by default) we are willing to skip before the inner packet.
_MAX_SKIPPED_HEADERS = 4

_VTF_PLEN = struct.Struct("!IH")
_HEADER = struct.Struct("!IHBB16s16s")


def _traffic_class(inner: bytes | bytearray | memoryview) -> int:
    """Traffic class of the inner IPv6 packet, the RFC 2473 6.5 default for the outer header."""
    if len(inner) < 2:
        return 0
    return ((inner[0] & 0x0F) << 4) | (inner[1] >> 4)


def encapsulate(
    inner: bytes | bytearray | memoryview,
    outer_src: bytes,
    outer_dst: bytes,
    hop_limit: int = 64,
) -> bytearray:
    """Prepend an outer IPv6 header (next header 41, traffic class copied from the inner)."""
    length = len(inner)
    if length > _MAX_PAYLOAD:
        raise ValueError(f"inner packet of {length} octets does not fit an IPv6 payload")
    out = bytearray(IPV6_HEADER_LEN + length)
    _HEADER.pack_into(
        out,
        0,
        0x60000000 | (_traffic_class(inner) << 20),
        length,
        IPPROTO_IPV6,
        hop_limit,
        outer_src,
        outer_dst,
    )
    out[IPV6_HEADER_LEN:] = inner
    return out


def decapsulate(packet: bytes | bytearray | memoryview) -> tuple[bytes, bytes, memoryview]:
    """Split an IPv6-in-IPv6 packet into (outer src, outer dst, inner packet view).

    Bytes past the outer payload length (link padding) are excluded from the inner view.
    Raises ParseError subclasses when the packet is not IPv6-in-IPv6 or lengths are wrong.
    """
    view = memoryview(packet)
    size = len(view)
    if size < IPV6_HEADER_LEN:
        raise TruncatedPacket(f"IPv6 header needs 40 octets, got {size}")
    if view[0] >> 4 != 6:
        raise BadVersion(f"outer IP version {view[0] >> 4}")
    end = IPV6_HEADER_LEN + ((view[4] << 8) | view[5])
    if end > size:
        raise TruncatedPacket(f"outer payload length overruns the {size}-octet buffer")
    next_header = view[6]
    offset = IPV6_HEADER_LEN
    skipped = 0
    while next_header == IPPROTO_DSTOPTS and skipped < _MAX_SKIPPED_HEADERS:
        if offset + 8 > end:
            raise TruncatedPacket("outer Destination Options header truncated")
        next_header = view[offset]
        offset += (view[offset + 1] + 1) * 8
        skipped += 1
    if next_header != IPPROTO_IPV6:
        raise ParseError(f"next header {next_header} is not IPv6-in-IPv6", reason="not_ip6ip6")
    if offset + IPV6_HEADER_LEN > end:
        raise BadLength(f"inner packet shorter than an IPv6 header ({end - offset} octets)")
    if view[offset] >> 4 != 6:
        raise BadVersion(f"inner IP version {view[offset] >> 4}")
    return bytes(view[8:24]), bytes(view[24:40]), view[offset:end]


class Encapsulator:
    """Outer header for one tunnel (src, dst fixed), precomputed once, written per packet."""

    __slots__ = ("outer_src", "outer_dst", "hop_limit", "_template")

    def __init__(self, outer_src: bytes, outer_dst: bytes, hop_limit: int = 64) -> None:
        if len(outer_src) != 16 or len(outer_dst) != 16:
            raise ValueError("tunnel endpoints are 16-octet IPv6 addresses")
        self.outer_src = bytes(outer_src)
        self.outer_dst = bytes(outer_dst)
        self.hop_limit = hop_limit
        self._template = _HEADER.pack(0x60000000, 0, IPPROTO_IPV6, hop_limit, outer_src, outer_dst)

    def encapsulate_into(self, inner: bytes | bytearray | memoryview, out: bytearray) -> int:
        """Write header + inner at the start of `out` (not resized); returns the packet length."""
        length = len(inner)
        total = IPV6_HEADER_LEN + length
        if length > _MAX_PAYLOAD or total > len(out):
            raise ValueError(f"{total}-octet packet does not fit (buffer {len(out)}, max 65575)")
        out[0:IPV6_HEADER_LEN] = self._template
        # Only version/traffic class and payload length vary per packet.
        _VTF_PLEN.pack_into(out, 0, 0x60000000 | (_traffic_class(inner) << 20), length)
        out[IPV6_HEADER_LEN:total] = inner
        return total

    def header_for(self, inner: bytes | bytearray | memoryview) -> bytes:
        """The outer header for `inner` with payload length 0, for a GSO super-frame whose
        segments get their own lengths when they are cut (netstack.wire.offload.segment)."""
        return _VTF_PLEN.pack(0x60000000 | (_traffic_class(inner) << 20), 0) + self._template[6:]

    def encapsulate(self, inner: bytes | bytearray | memoryview) -> bytearray:
        """Allocating convenience form of `encapsulate_into`."""
        out = bytearray(IPV6_HEADER_LEN + len(inner))
        self.encapsulate_into(inner, out)
        return out
