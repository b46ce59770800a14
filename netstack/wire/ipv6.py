"""IPv6 header (RFC 8200) and the extension headers Mobile IPv6 needs (control-path view).

Hop-by-Hop and Destination Options (TLV options, Pad1/PadN, the Home Address option of
RFC 6275 6.3), the type 2 Routing Header (RFC 6275 6.4), the Fragment header (RFC 8200 4.5).
This is the whole-packet, dataclass-based view for control traffic; the data path uses
`netstack.wire.ip6ip6` on plain bytes instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

from netstack.wire.errors import BadLength, BadOption, BadVersion, ParseError, TruncatedPacket

IPV6_HEADER_LEN = 40
MAX_PAYLOAD_LEN = 0xFFFF

IPPROTO_HOPOPTS = 0
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPPROTO_MH = 135

OPT_PAD1 = 0
OPT_PADN = 1
OPT_HOME_ADDRESS = 201  # RFC 6275 6.3: 0b11 (discard + ICMP unless multicast) | not changing en route
ROUTING_TYPE_2 = 2

# Where the walk stops: anything not in this set is an upper layer (or ESP/AH/IPv6/No Next Header).
_WALKED_HEADERS = frozenset({IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS})

_IPV6_HEADER = struct.Struct("!IHBB16s16s")
_FRAGMENT_HEADER = struct.Struct("!BBHI")


# ---------------------------------------------------------------- extension headers


@dataclass(frozen=True)
class TLVOption:
    """A Hop-by-Hop / Destination option kept as type and raw data (RFC 8200 4.2)."""

    type: int
    data: bytes = b""


@dataclass(frozen=True)
class HomeAddressOption:
    """Home Address destination option, type 201 (RFC 6275 6.3); aligned 8n+6 by the encoder."""

    address: IPv6Address


ExtensionOption = TLVOption | HomeAddressOption


@dataclass(frozen=True)
class HopByHopOptions:
    """Hop-by-Hop Options header. Decoded options never contain Pad1/PadN."""

    options: tuple[ExtensionOption, ...] = ()


@dataclass(frozen=True)
class DestinationOptions:
    """Destination Options header. Decoded options never contain Pad1/PadN."""

    options: tuple[ExtensionOption, ...] = ()


@dataclass(frozen=True)
class RoutingHeaderType2:
    """Type 2 Routing Header (RFC 6275 6.4): one address, hdr ext len 2, segments left 1."""

    address: IPv6Address
    segments_left: int = 1


@dataclass(frozen=True)
class RoutingHeader:
    """A Routing Header of another type, kept raw (type-specific data after the first 4 octets)."""

    routing_type: int
    segments_left: int
    data: bytes


@dataclass(frozen=True)
class FragmentHeader:
    """Fragment header (RFC 8200 4.5). `offset` is the wire field: units of 8 octets."""

    offset: int
    more: bool
    identification: int


ExtensionHeader = (
    HopByHopOptions | DestinationOptions | RoutingHeaderType2 | RoutingHeader | FragmentHeader
)


# ---------------------------------------------------------------- parsed packet


@dataclass(frozen=True)
class ParsedPacket:
    """An IPv6 packet with its extension header chain walked."""

    src: IPv6Address
    dst: IPv6Address
    traffic_class: int
    flow_label: int
    hop_limit: int
    extension_headers: tuple[ExtensionHeader, ...]
    home_address: IPv6Address | None
    routing_type2: IPv6Address | None
    upper_protocol: int
    upper_offset: int
    payload: bytes
    raw: bytes

    @property
    def effective_source(self) -> IPv6Address:
        """The home address from a HAO if present (RFC 6275 6.3), else the IPv6 source."""
        return self.home_address if self.home_address is not None else self.src

    @property
    def effective_destination(self) -> IPv6Address:
        """The type 2 routing header address if present (final destination), else dst."""
        return self.routing_type2 if self.routing_type2 is not None else self.dst

    @property
    def is_fragment(self) -> bool:
        """True when a Fragment header makes this a real fragment (not an atomic one)."""
        return any(
            isinstance(h, FragmentHeader) and (h.offset or h.more) for h in self.extension_headers
        )


# ---------------------------------------------------------------- parsing


def _parse_tlv_options(body: memoryview, where: str) -> tuple[ExtensionOption, ...]:
    """Options area of a Hop-by-Hop / Destination Options header (after the 2 fixed octets)."""
    options: list[ExtensionOption] = []
    pos = 0
    end = len(body)
    while pos < end:
        opt_type = body[pos]
        if opt_type == OPT_PAD1:
            pos += 1
            continue
        if pos + 2 > end:
            raise BadOption(f"{where}: option type {opt_type} without a length octet")
        opt_len = body[pos + 1]
        data_end = pos + 2 + opt_len
        if data_end > end:
            raise BadOption(f"{where}: option type {opt_type} overruns the header")
        if opt_type == OPT_PADN:
            pass
        elif opt_type == OPT_HOME_ADDRESS:
            if opt_len != 16:
                raise BadOption(f"{where}: Home Address option length {opt_len}, expected 16")
            options.append(HomeAddressOption(IPv6Address(bytes(body[pos + 2 : data_end]))))
        else:
            options.append(TLVOption(opt_type, bytes(body[pos + 2 : data_end])))
        pos = data_end
    return tuple(options)


def parse_ipv6_packet(data: bytes | bytearray | memoryview) -> ParsedPacket:
    """Parse an IPv6 packet and walk its extension headers.

    Stops at the first upper-layer protocol or at ESP (50), AH (51), IPv6 (41), No Next
    Header (59), or after a Fragment header of a real fragment (the rest is not parseable
    before reassembly). Bytes past the payload length (link-layer padding) are ignored.
    Raises only ParseError subclasses.
    """
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    if len(view) < IPV6_HEADER_LEN:
        raise TruncatedPacket(f"IPv6 header needs 40 octets, got {len(view)}")
    vtf, payload_len, next_header, hop_limit, src_b, dst_b = _IPV6_HEADER.unpack_from(view)
    if vtf >> 28 != 6:
        raise BadVersion(f"IP version {vtf >> 28}, expected 6")
    end = IPV6_HEADER_LEN + payload_len
    if end > len(view):
        raise TruncatedPacket(f"payload length {payload_len} exceeds the {len(view) - 40} octets present")

    headers: list[ExtensionHeader] = []
    home_address: IPv6Address | None = None
    routing_type2: IPv6Address | None = None
    offset = IPV6_HEADER_LEN
    while next_header in _WALKED_HEADERS:
        if next_header == IPPROTO_HOPOPTS and offset != IPV6_HEADER_LEN:
            # RFC 8200 4.1: Hop-by-Hop must immediately follow the IPv6 header.
            raise ParseError("Hop-by-Hop Options header not first", reason="bad_header_order")
        if offset + 8 > end:
            raise TruncatedPacket(f"extension header {next_header} truncated at offset {offset}")
        if next_header == IPPROTO_FRAGMENT:
            nh, _reserved, off_flags, ident = _FRAGMENT_HEADER.unpack_from(view, offset)
            frag = FragmentHeader(offset=off_flags >> 3, more=bool(off_flags & 1), identification=ident)
            headers.append(frag)
            offset += 8
            next_header = nh
            if frag.offset or frag.more:
                break
            continue
        nh = view[offset]
        hdr_len = (view[offset + 1] + 1) * 8
        if offset + hdr_len > end:
            raise TruncatedPacket(
                f"extension header {next_header} of {hdr_len} octets overruns the payload"
            )
        if next_header == IPPROTO_ROUTING:
            routing_type = view[offset + 2]
            segments_left = view[offset + 3]
            if routing_type == ROUTING_TYPE_2:
                if hdr_len != 24:
                    raise BadLength(f"type 2 routing header ext len {hdr_len // 8 - 1}, expected 2")
                if segments_left > 1:
                    raise BadOption(f"type 2 routing header segments left {segments_left}")
                if routing_type2 is not None:
                    raise BadOption("more than one type 2 routing header")
                routing_type2 = IPv6Address(bytes(view[offset + 8 : offset + 24]))
                headers.append(RoutingHeaderType2(routing_type2, segments_left))
            else:
                headers.append(
                    RoutingHeader(routing_type, segments_left, bytes(view[offset + 4 : offset + hdr_len]))
                )
        else:
            where = "Hop-by-Hop" if next_header == IPPROTO_HOPOPTS else "Destination Options"
            options = _parse_tlv_options(view[offset + 2 : offset + hdr_len], where)
            if next_header == IPPROTO_HOPOPTS:
                headers.append(HopByHopOptions(options))
            else:
                for opt in options:
                    if isinstance(opt, HomeAddressOption):
                        if home_address is not None:
                            raise BadOption("more than one Home Address option")
                        home_address = opt.address
                headers.append(DestinationOptions(options))
        offset += hdr_len
        next_header = nh

    raw = bytes(view[:end])
    return ParsedPacket(
        src=IPv6Address(src_b),
        dst=IPv6Address(dst_b),
        traffic_class=(vtf >> 20) & 0xFF,
        flow_label=vtf & 0xFFFFF,
        hop_limit=hop_limit,
        extension_headers=tuple(headers),
        home_address=home_address,
        routing_type2=routing_type2,
        upper_protocol=next_header,
        upper_offset=offset,
        payload=raw[offset:],
        raw=raw,
    )


# ---------------------------------------------------------------- building


def _address_bytes(addr: IPv6Address | bytes | str) -> bytes:
    if isinstance(addr, IPv6Address):
        return addr.packed
    if isinstance(addr, bytes | bytearray | memoryview):
        packed = bytes(addr)
        if len(packed) != 16:
            raise ValueError(f"an IPv6 address is 16 octets, got {len(packed)}")
        return packed
    return IPv6Address(addr).packed


def _padding(n: int) -> bytes:
    """Pad1 for one octet, PadN (type 1, length n-2, zero data) for more (RFC 8200 4.2)."""
    if n == 0:
        return b""
    if n == 1:
        return b"\x00"
    return bytes((OPT_PADN, n - 2)) + bytes(n - 2)


def _encode_tlv_header(next_header: int, options: tuple[ExtensionOption, ...]) -> bytes:
    """Encode a Hop-by-Hop / Destination Options header, padding HAO to 8n+6 and the end to 8n."""
    out = bytearray((next_header, 0))
    for opt in options:
        if isinstance(opt, HomeAddressOption):
            out += _padding((6 - len(out)) % 8)
            out += bytes((OPT_HOME_ADDRESS, 16)) + _address_bytes(opt.address)
        else:
            if opt.type == OPT_PAD1:
                out.append(OPT_PAD1)
                continue
            if len(opt.data) > 255:
                raise ValueError(f"option {opt.type} data is {len(opt.data)} octets, max 255")
            out += bytes((opt.type, len(opt.data))) + opt.data
    out += _padding(-len(out) % 8)
    if len(out) > 2048:
        raise ValueError("options header longer than 2048 octets")
    out[1] = len(out) // 8 - 1
    return bytes(out)


def _header_rank(header: ExtensionHeader) -> int:
    # RFC 6275 6.3/6.4 order: Hop-by-Hop, Routing, Destination Options (HAO), Fragment.
    if isinstance(header, HopByHopOptions):
        return 0
    if isinstance(header, RoutingHeaderType2 | RoutingHeader):
        return 1
    if isinstance(header, DestinationOptions):
        return 2
    if isinstance(header, FragmentHeader):
        return 3
    raise TypeError(f"not an extension header: {header!r}")


def _encode_extension_header(header: ExtensionHeader, next_header: int) -> tuple[int, bytes]:
    """Returns (this header's protocol number, its bytes)."""
    if isinstance(header, HopByHopOptions):
        return IPPROTO_HOPOPTS, _encode_tlv_header(next_header, header.options)
    if isinstance(header, DestinationOptions):
        return IPPROTO_DSTOPTS, _encode_tlv_header(next_header, header.options)
    if isinstance(header, RoutingHeaderType2):
        body = struct.pack("!BBBB4x", next_header, 2, ROUTING_TYPE_2, header.segments_left)
        return IPPROTO_ROUTING, body + _address_bytes(header.address)
    if isinstance(header, RoutingHeader):
        raw = bytes((next_header, 0, header.routing_type, header.segments_left)) + header.data
        if len(raw) % 8:
            raise ValueError("routing header length must be a multiple of 8 octets")
        return IPPROTO_ROUTING, bytes((raw[0], len(raw) // 8 - 1)) + raw[2:]
    if isinstance(header, FragmentHeader):
        if not 0 <= header.offset < 1 << 13:
            raise ValueError(f"fragment offset {header.offset} out of range (8-octet units)")
        off_flags = (header.offset << 3) | int(header.more)
        return IPPROTO_FRAGMENT, _FRAGMENT_HEADER.pack(next_header, 0, off_flags, header.identification)
    raise TypeError(f"not an extension header: {header!r}")


def build_ipv6_packet(
    src: IPv6Address | bytes,
    dst: IPv6Address | bytes,
    upper_protocol: int,
    payload: bytes,
    *,
    hop_limit: int = 64,
    traffic_class: int = 0,
    flow_label: int = 0,
    home_address: IPv6Address | bytes | None = None,
    routing_type2: IPv6Address | bytes | None = None,
    extension_headers: tuple[ExtensionHeader, ...] = (),
) -> bytes:
    """Build an IPv6 packet. Upper-layer checksums are the caller's job.

    `home_address` adds a Home Address option (merged into the first DestinationOptions in
    `extension_headers` if there is one); `routing_type2` adds a type 2 Routing Header.
    Headers are emitted in the order Hop-by-Hop, Routing, Destination Options, Fragment.
    Invalid arguments raise ValueError/TypeError (they are programming errors, not input).
    """
    headers = list(extension_headers)
    if routing_type2 is not None:
        if any(isinstance(h, RoutingHeaderType2) for h in headers):
            raise ValueError("routing_type2 given twice")
        headers.append(RoutingHeaderType2(IPv6Address(_address_bytes(routing_type2))))
    if home_address is not None:
        hao = HomeAddressOption(IPv6Address(_address_bytes(home_address)))
        for i, header in enumerate(headers):
            if isinstance(header, DestinationOptions):
                headers[i] = DestinationOptions((hao, *header.options))
                break
        else:
            headers.append(DestinationOptions((hao,)))
    headers.sort(key=_header_rank)  # stable: callers' relative order kept within a rank

    chain = bytearray(payload)
    next_header = upper_protocol
    for header in reversed(headers):
        next_header, encoded = _encode_extension_header(header, next_header)
        chain[:0] = encoded
    if len(chain) > MAX_PAYLOAD_LEN:
        raise ValueError(f"payload of {len(chain)} octets needs a jumbogram (unsupported)")
    if not 0 <= flow_label <= 0xFFFFF or not 0 <= traffic_class <= 0xFF:
        raise ValueError("traffic class or flow label out of range")
    vtf = (6 << 28) | (traffic_class << 20) | flow_label
    header = _IPV6_HEADER.pack(
        vtf, len(chain), next_header, hop_limit, _address_bytes(src), _address_bytes(dst)
    )
    return header + bytes(chain)
