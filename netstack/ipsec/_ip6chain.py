"""Small private walker over an IPv6 extension header chain (struct only, no dataclasses).

Kept private to netstack/ipsec so the ESP path does not depend on netstack/wire/ipv6.py.
It finds where transport-mode ESP goes (after Hop-by-Hop, Routing, Fragment and a
Destination Options header that carries a Home Address option or precedes a Routing header:
RFC 4303 3.1.1, RFC 3776 3: HAO and the type 2 Routing header stay outside ESP), the
upper-layer protocol, and the selector fields (effective addresses, ports, MH type).
"""

from __future__ import annotations

from netstack.wire.errors import BadLength, BadVersion, TruncatedPacket

IPV6_HEADER_LEN = 40
HOP_BY_HOP = 0
ROUTING = 43
FRAGMENT = 44
DEST_OPTS = 60
ESP = 50
IPV6_IN = 41
IPV4_IN = 4
NO_NEXT = 59
MH = 135
HAO_OPTION = 201
PORT_PROTOCOLS = (6, 17, 132)  # TCP, UDP, SCTP: selectors may use ports
_EXTENSION = (HOP_BY_HOP, ROUTING, FRAGMENT, DEST_OPTS)


class Chain:
    """Result of `walk`. Offsets are into the original packet."""

    __slots__ = (
        "src",
        "dst",
        "home_address",
        "routing_type2",
        "split_offset",
        "split_nh_field",
        "upper_protocol",
        "upper_offset",
        "upper_nh_field",
        "src_port",
        "dst_port",
        "mh_type",
    )

    def __init__(self) -> None:
        self.src = b""
        self.dst = b""
        self.home_address: bytes | None = None
        self.routing_type2: bytes | None = None
        self.split_offset = IPV6_HEADER_LEN  # where transport-mode ESP is inserted
        self.split_nh_field = 6  # the next-header byte to point at ESP
        self.upper_protocol = NO_NEXT
        self.upper_offset = IPV6_HEADER_LEN
        self.upper_nh_field = 6
        self.src_port: int | None = None
        self.dst_port: int | None = None
        self.mh_type: int | None = None

    @property
    def effective_src(self) -> bytes:
        return self.home_address or self.src

    @property
    def effective_dst(self) -> bytes:
        return self.routing_type2 or self.dst


def walk(packet: bytes | memoryview) -> Chain:
    """Walk an IPv6 packet's header chain; raises only ParseError subclasses."""
    n = len(packet)
    if n < IPV6_HEADER_LEN:
        raise TruncatedPacket(f"IPv6 packet of {n} bytes is shorter than its header")
    if packet[0] >> 4 != 6:
        raise BadVersion(f"IP version {packet[0] >> 4}, expected 6")
    if IPV6_HEADER_LEN + int.from_bytes(packet[4:6], "big") != n:
        raise BadLength("IPv6 payload length does not match the packet size")
    chain = Chain()
    chain.src = bytes(packet[8:24])
    chain.dst = bytes(packet[24:40])
    nh = packet[6]
    nh_field = 6
    off = IPV6_HEADER_LEN
    outside = True  # still in the part that stays in front of transport-mode ESP
    while nh in _EXTENSION:
        if off + 8 > n:
            raise TruncatedPacket("extension header runs past the packet")
        length = 8 if nh == FRAGMENT else (packet[off + 1] + 1) * 8
        end = off + length
        if end > n:
            raise TruncatedPacket("extension header runs past the packet")
        keep_outside = nh != DEST_OPTS
        if nh == ROUTING and packet[off + 2] == 2:
            if length != 24:
                raise BadLength("type 2 Routing header must be 24 bytes")
            chain.routing_type2 = bytes(packet[off + 8 : off + 24])
        elif nh == DEST_OPTS:
            hao = _find_home_address(packet, off + 2, end)
            if hao is not None:
                chain.home_address = hao
            keep_outside = hao is not None or packet[off] == ROUTING
        if outside and keep_outside:
            chain.split_offset = end
            chain.split_nh_field = off
        else:
            outside = False
        nh_field = off
        nh = packet[off]
        off = end
    chain.upper_protocol = nh
    chain.upper_offset = off
    chain.upper_nh_field = nh_field
    if nh in PORT_PROTOCOLS and off + 4 <= n:
        chain.src_port = int.from_bytes(packet[off : off + 2], "big")
        chain.dst_port = int.from_bytes(packet[off + 2 : off + 4], "big")
    elif nh == MH and off + 3 <= n:
        chain.mh_type = packet[off + 2]
    return chain


def _find_home_address(packet: bytes | memoryview, off: int, end: int) -> bytes | None:
    while off < end:
        opt_type = packet[off]
        if opt_type == 0:  # Pad1
            off += 1
            continue
        if off + 2 > end:
            raise TruncatedPacket("destination option runs past its header")
        opt_len = packet[off + 1]
        if off + 2 + opt_len > end:
            raise TruncatedPacket("destination option runs past its header")
        if opt_type == HAO_OPTION:
            if opt_len != 16:
                raise BadLength("Home Address option must carry 16 bytes")
            return bytes(packet[off + 2 : off + 18])
        off += 2 + opt_len
    return None


def walk_ipv4(packet: bytes | memoryview) -> Chain:
    """Selector fields of an IPv4 packet (inner packet of an IPv4-in-IPv6 tunnel)."""
    n = len(packet)
    if n < 20:
        raise TruncatedPacket(f"IPv4 packet of {n} bytes is shorter than its header")
    if packet[0] >> 4 != 4:
        raise BadVersion(f"IP version {packet[0] >> 4}, expected 4")
    ihl = (packet[0] & 0x0F) * 4
    if ihl < 20 or ihl > n:
        raise BadLength("bad IPv4 header length")
    chain = Chain()
    chain.src = bytes(packet[12:16])
    chain.dst = bytes(packet[16:20])
    chain.upper_protocol = packet[9]
    chain.upper_offset = ihl
    fragment_offset = int.from_bytes(packet[6:8], "big") & 0x1FFF
    if chain.upper_protocol in PORT_PROTOCOLS and fragment_offset == 0 and ihl + 4 <= n:
        chain.src_port = int.from_bytes(packet[ihl : ihl + 2], "big")
        chain.dst_port = int.from_bytes(packet[ihl + 2 : ihl + 4], "big")
    return chain


def walk_any(packet: bytes | memoryview) -> Chain:
    """IPv6 or IPv4 by the version nibble."""
    if len(packet) and packet[0] >> 4 == 4:
        return walk_ipv4(packet)
    return walk(packet)
