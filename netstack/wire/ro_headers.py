"""Route optimisation headers on plain bytes (RFC 6275 6.3, 6.4, 9.3, 11.3): the per-packet path.

Each inserter holds one precomputed 24-octet header (a Destination Options header with PadN +
Home Address option, or a type 2 Routing Header) and splices it behind the fixed IPv6 header.
No checksum changes anywhere: upper-layer checksums are computed over the home address
(RFC 6275 6.3/6.4 pseudo-header rules), which is what the sender's stack used.

Only packets whose first header after IPv6 is an upper layer, ESP or a Fragment header are
route optimised (`insertable`): every other chain keeps the tunnel, which is always correct.
"""

from __future__ import annotations

import struct

IPPROTO_ROUTING = 43
IPPROTO_DSTOPTS = 60
OPT_HOME_ADDRESS = 201
EXTENSION_LEN = 24  # both headers: 3 x 8 octets

# Next headers we insert in front of: TCP, UDP, ICMPv6, ESP, Fragment, No Next Header.
INSERTABLE = frozenset((6, 17, 58, 50, 44, 59))
_PLEN = struct.Struct("!H")


def _insert(packet: bytes | bytearray | memoryview, header: int, body: bytes, *,
            source: bytes | None = None, destination: bytes | None = None) -> bytearray:
    """`packet` with a 24-octet extension header (`header`, then `body`) behind the IPv6
    header, and the source or destination replaced."""
    out = bytearray(len(packet) + EXTENSION_LEN)
    out[0:4] = packet[0:4]
    _PLEN.pack_into(out, 4, ((packet[4] << 8) | packet[5]) + EXTENSION_LEN)
    out[6] = header
    out[7] = packet[7]
    out[8:24] = source if source is not None else packet[8:24]
    out[24:40] = destination if destination is not None else packet[24:40]
    out[40] = packet[6]
    out[41] = 2  # (2 + 1) x 8 octets
    out[42:64] = body
    out[64:] = packet[40:]
    return out


class HomeAddressInserter:
    """Send routine 100, direct path: HoA -> CN becomes CoA -> CN + Home Address option."""

    def __init__(self, care_of_address: bytes, home_address: bytes) -> None:
        self.care_of_address = care_of_address
        self.home_address = home_address
        self.packets = 0  # counted by the data path: was the direct path used lately?
        # PadN(2) so the option starts at 8n+6 (RFC 6275 6.3), then the option itself.
        self._options = bytes((1, 2, 0, 0, OPT_HOME_ADDRESS, 16)) + home_address

    def insert(self, packet: bytes | bytearray | memoryview) -> bytearray:
        return _insert(packet, IPPROTO_DSTOPTS, self._options, source=self.care_of_address)


class RoutingHeaderInserter:
    """The CN's send path: CN -> HoA becomes CN -> CoA + type 2 Routing Header (HoA)."""

    def __init__(self, care_of_address: bytes, home_address: bytes) -> None:
        self.care_of_address = care_of_address
        self.home_address = home_address
        self._tail = bytes((2, 1, 0, 0, 0, 0)) + home_address  # type 2, segments left 1

    def insert(self, packet: bytes | bytearray | memoryview) -> bytearray:
        return _insert(packet, IPPROTO_ROUTING, self._tail, destination=self.care_of_address)


def _strip(packet: bytes | bytearray | memoryview, *, source: bytes | None,
           destination: bytes | None) -> bytearray:
    out = bytearray(len(packet) - EXTENSION_LEN)
    out[0:4] = packet[0:4]
    _PLEN.pack_into(out, 4, ((packet[4] << 8) | packet[5]) - EXTENSION_LEN)
    out[6] = packet[40]
    out[7] = packet[7]
    out[8:24] = source if source is not None else packet[8:24]
    out[24:40] = destination if destination is not None else packet[24:40]
    out[40:] = packet[64:]
    return out


def home_address_of(packet: bytes | bytearray | memoryview) -> bytes | None:
    """The home address of a packet whose first extension header is our 24-octet Destination
    Options header (PadN + HAO, or HAO + PadN / Pad1s), else None."""
    if len(packet) < 64 or packet[6] != IPPROTO_DSTOPTS or packet[41] != 2:
        return None
    pos, end = 42, 64
    while pos < end:
        kind = packet[pos]
        if kind == 0:
            pos += 1
            continue
        if pos + 2 > end:
            return None
        length = packet[pos + 1]
        if kind == OPT_HOME_ADDRESS:
            if length != 16 or pos + 18 > end:
                return None
            return bytes(packet[pos + 2 : pos + 18])
        if kind != 1:
            return None  # another option: not a plain HAO header, leave it to the slow path
        pos += 2 + length
    return None


def strip_home_address(packet: bytes | bytearray | memoryview, home_address: bytes) -> bytearray:
    """The CN's receive path (RFC 6275 9.3.1): deliver as sent from the home address."""
    return _strip(packet, source=home_address, destination=None)


def routing_header_address(packet: bytes | bytearray | memoryview) -> bytes | None:
    """The address of a type 2 Routing Header right behind the IPv6 header, else None."""
    if (
        len(packet) < 64
        or packet[6] != IPPROTO_ROUTING
        or packet[41] != 2
        or packet[42] != 2
        or packet[43] != 1
    ):
        return None
    return bytes(packet[48:64])


def strip_routing_header(packet: bytes | bytearray | memoryview, home_address: bytes) -> bytearray:
    """Receive routine 120, direct path (RFC 6275 11.3.3): deliver as addressed to the HoA."""
    return _strip(packet, source=None, destination=home_address)
