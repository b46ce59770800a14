"""IPv4 + UDP bytes helpers for the control path (RFC 791, RFC 768).

The guest agent speaks a little IPv4 itself on the host link (DNS answers to IPv4
applications), so it needs to build and check whole IPv4/UDP datagrams. This is not the
translation path (`netstack.translate`); it allocates freely and favours clear errors.
Addresses are 4-octet `bytes` in network order.
"""

from __future__ import annotations

import struct

from netstack.wire.checksum import internet_checksum, ones_complement_sum
from netstack.wire.errors import BadChecksum, BadLength, BadVersion, ParseError, TruncatedPacket

IPV4_HEADER_LEN = 20
UDP_HEADER_LEN = 8
PROTO_UDP = 17
MAX_IPV4_PACKET = 0xFFFF

# version/IHL, TOS, total length, identification, flags/fragment offset, TTL, protocol,
# header checksum, source, destination
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_MF = 0x2000
_OFFSET_MASK = 0x1FFF


def ipv4_header_checksum(header: bytes | bytearray | memoryview) -> int:
    """Checksum to store in an IPv4 header whose checksum field is zero.

    Over a header with its checksum already filled in, the result is 0 when it is correct.
    """
    return internet_checksum(header)


def _udp_checksum(src4: bytes, dst4: bytes, udp: bytes | bytearray | memoryview) -> int:
    pseudo = ones_complement_sum(src4 + dst4 + struct.pack("!xBH", PROTO_UDP, len(udp)))
    return internet_checksum(udp, pseudo)


def build_ipv4_udp(
    src4: bytes,
    dst4: bytes,
    sport: int,
    dport: int,
    payload: bytes | bytearray | memoryview,
    ttl: int = 64,
    ident: int = 0,
) -> bytes:
    """A complete IPv4/UDP datagram with both checksums (DF clear, no options)."""
    if len(src4) != 4 or len(dst4) != 4:
        raise ValueError("IPv4 addresses are 4 octets")
    udp_len = UDP_HEADER_LEN + len(payload)
    total = IPV4_HEADER_LEN + udp_len
    if total > MAX_IPV4_PACKET:
        raise ValueError(f"IPv4 datagram of {total} octets exceeds 65535")
    udp = bytearray(_UDP.pack(sport, dport, udp_len, 0) + bytes(payload))
    checksum = _udp_checksum(src4, dst4, udp)
    # A computed zero is sent as all ones: zero on the wire means "no checksum" (RFC 768).
    struct.pack_into("!H", udp, 6, checksum or 0xFFFF)
    header = bytearray(_IPV4.pack(0x45, 0, total, ident & 0xFFFF, 0, ttl, PROTO_UDP, 0, src4, dst4))
    struct.pack_into("!H", header, 10, ipv4_header_checksum(header))
    return bytes(header + udp)


def parse_ipv4_udp(
    packet: bytes | bytearray | memoryview,
) -> tuple[bytes, bytes, int, int, memoryview]:
    """Check and split an IPv4/UDP datagram: (src4, dst4, sport, dport, payload view).

    Raises ParseError (a subclass with a counter `reason`) for anything the control path
    cannot use: wrong version, bad lengths, bad header or UDP checksum, fragments (the agent
    does not reassemble for its own services) and protocols other than UDP. A zero UDP
    checksum means the sender did not compute one and is accepted. Octets after the IPv4
    total length (Ethernet padding) are ignored.
    """
    view = memoryview(packet)
    if len(view) < IPV4_HEADER_LEN:
        raise TruncatedPacket(f"IPv4 header needs 20 octets, got {len(view)}")
    ver_ihl, _tos, total, _ident, frag, _ttl, proto, _csum, src4, dst4 = _IPV4.unpack_from(view)
    if ver_ihl >> 4 != 4:
        raise BadVersion(f"IP version {ver_ihl >> 4}, expected 4")
    header_len = (ver_ihl & 0x0F) * 4
    if header_len < IPV4_HEADER_LEN:
        raise BadLength(f"IPv4 IHL {header_len // 4} is below 5")
    if total < header_len or total > len(view):
        raise BadLength(
            f"IPv4 total length {total} does not fit header {header_len} / buffer {len(view)}"
        )
    if ipv4_header_checksum(view[:header_len]) != 0:
        raise BadChecksum("IPv4 header checksum mismatch")
    if frag & (_MF | _OFFSET_MASK):
        raise ParseError("IPv4 fragment", reason="ipv4_fragment")
    if proto != PROTO_UDP:
        raise ParseError(f"IPv4 protocol {proto} is not UDP", reason="not_udp")
    udp = view[header_len:total]
    if len(udp) < UDP_HEADER_LEN:
        raise TruncatedPacket(f"UDP header needs 8 octets, got {len(udp)}")
    sport, dport, udp_len, udp_csum = _UDP.unpack_from(udp)
    if udp_len < UDP_HEADER_LEN or udp_len > len(udp):
        raise BadLength(f"UDP length {udp_len} does not fit {len(udp)} octets")
    udp = udp[:udp_len]
    if udp_csum != 0 and _udp_checksum(src4, dst4, udp) != 0:
        raise BadChecksum("UDP checksum mismatch")
    return src4, dst4, sport, dport, udp[UDP_HEADER_LEN:]


def icmpv4_echo_reply(request: bytes | bytearray | memoryview) -> bytes | None:
    """The Echo Reply (RFC 792) to an unfragmented IPv4 Echo Request; None for anything else.

    Used by the guest to answer pings to its gateway address on the host link.
    """
    view = memoryview(request)
    if len(view) < 28 or view[0] >> 4 != 4 or view[9] != 1:
        return None
    ihl = (view[0] & 0x0F) * 4
    total = (view[2] << 8) | view[3]
    if ihl < 20 or total > len(view) or total < ihl + 8 or view[ihl] != 8:
        return None
    if ((view[6] << 8) | view[7]) & (_MF | _OFFSET_MASK):
        return None
    if internet_checksum(view[ihl:total]) != 0:
        return None
    icmp = bytearray(view[ihl:total])
    icmp[0] = 0  # echo reply
    icmp[2:4] = b"\x00\x00"
    icmp[2:4] = internet_checksum(icmp).to_bytes(2, "big")
    header = bytearray(_IPV4.pack(0x45, view[1], 20 + len(icmp), 0, 0, 64, 1, 0, bytes(view[16:20]), bytes(view[12:16])))
    header[10:12] = ipv4_header_checksum(header).to_bytes(2, "big")
    return bytes(header) + bytes(icmp)
