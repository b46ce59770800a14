"""ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861, RFC 6275 7.1-7.4, RFC 5380 4) codec.

Plain functions over bytes: one encoder/decoder pair per message and per option, named after
the RFC. The message dataclasses live in `netstack.wire.icmpv6_types`. Decoders raise only
`ParseError` subclasses; encoders raise ValueError (or struct.error) for values that do not fit the wire format
(those are programming errors, not input).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from ipaddress import IPv6Address, IPv6Network

from netstack.wire.checksum import internet_checksum, pseudo_header_sum
from netstack.wire.errors import BadChecksum, BadOption, ParseError, TruncatedPacket
from netstack.wire.icmpv6_types import (
    IPPROTO_ICMPV6,
    AdvertisementInterval,
    EchoReply,
    EchoRequest,
    HomeAgentInformation,
    ICMPv6Error,
    ICMPv6Message,
    ICMPv6Type,
    MapOption,
    Mtu,
    NDOption,
    NDOptionType,
    NeighborAdvertisement,
    NeighborSolicitation,
    PrefixInformation,
    RouterAdvertisement,
    RouterSolicitation,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
    UnknownICMPv6Message,
    UnknownNDOption,
)
from netstack.wire.ipv6 import ParsedPacket, build_ipv6_packet

ICMPV6_HEADER_LEN = 4
IPV6_MIN_MTU = 1280
IPV6_HEADER_LEN = 40
# RFC 4443 2.4(c): an error message carries as much of the invoking packet as fits in the
# minimum MTU, i.e. 1280 - 40 (IPv6 header) - 8 (ICMPv6 header + parameter).
MAX_INVOKING_PACKET_LEN = IPV6_MIN_MTU - IPV6_HEADER_LEN - 8
ERROR_TYPES = frozenset(
    {
        ICMPv6Type.DESTINATION_UNREACHABLE,
        ICMPv6Type.PACKET_TOO_BIG,
        ICMPv6Type.TIME_EXCEEDED,
        ICMPv6Type.PARAMETER_PROBLEM,
    }
)

_ND_TYPES = frozenset(
    {
        ICMPv6Type.ROUTER_SOLICITATION,
        ICMPv6Type.ROUTER_ADVERTISEMENT,
        ICMPv6Type.NEIGHBOR_SOLICITATION,
        ICMPv6Type.NEIGHBOR_ADVERTISEMENT,
    }
)

_SOLICITED_NODE_PREFIX = IPv6Address("ff02::1:ff00:0").packed[:13]

_HEADER = struct.Struct("!BBH")
_RA_BODY = struct.Struct("!BBHII")
_NA_FLAGS = struct.Struct("!B3x")
_ECHO = struct.Struct("!HH")
_PARAMETER = struct.Struct("!I")
_PREFIX_INFO = struct.Struct("!BBBBIII16s")
_MTU_OPTION = struct.Struct("!BBHI")
_ADV_INTERVAL = struct.Struct("!BBHI")
_HA_INFO = struct.Struct("!BBHhH")
_MAP_OPTION = struct.Struct("!BBBBI16s")

_RA_MANAGED = 0x80
_RA_OTHER = 0x40
_RA_HOME_AGENT = 0x20
_NA_ROUTER = 0x80
_NA_SOLICITED = 0x40
_NA_OVERRIDE = 0x20
_PIO_ON_LINK = 0x80
_PIO_AUTONOMOUS = 0x40
_PIO_ROUTER_ADDRESS = 0x20
_MAP_RCOA = 0x80


def solicited_node_multicast(addr: IPv6Address) -> IPv6Address:
    """ff02::1:ffXX:XXXX from the low 24 bits of `addr` (RFC 4291 2.7.1)."""
    return IPv6Address(_SOLICITED_NODE_PREFIX + IPv6Address(addr).packed[13:])


# ---------------------------------------------------------------- options


def _pad_to_octets(body: bytes) -> bytes:
    """Zero-pad an option (type and length included) to a multiple of 8 octets."""
    return body + b"\x00" * (-len(body) % 8)


def _link_layer_option(option_type: int, address: bytes) -> bytes:
    body = _pad_to_octets(bytes((option_type, 0)) + bytes(address))
    if len(body) // 8 > 255:
        raise ValueError("link-layer address too long for an ND option")
    return bytes((option_type, len(body) // 8)) + body[2:]


def encode_nd_option(option: NDOption) -> bytes:
    """One ND option in wire format, padded to a multiple of 8 octets (RFC 4861 4.6)."""
    if isinstance(option, SourceLinkLayerAddress):
        return _link_layer_option(NDOptionType.SOURCE_LINK_LAYER_ADDRESS, option.address)
    if isinstance(option, TargetLinkLayerAddress):
        return _link_layer_option(NDOptionType.TARGET_LINK_LAYER_ADDRESS, option.address)
    if isinstance(option, PrefixInformation):
        flags = (
            (_PIO_ON_LINK if option.on_link else 0)
            | (_PIO_AUTONOMOUS if option.autonomous else 0)
            | (_PIO_ROUTER_ADDRESS if option.router_address else 0)
        )
        return _PREFIX_INFO.pack(
            NDOptionType.PREFIX_INFORMATION,
            4,
            option.prefix.prefixlen,
            flags,
            option.valid_lifetime,
            option.preferred_lifetime,
            0,
            option.prefix.network_address.packed,
        )
    if isinstance(option, Mtu):
        return _MTU_OPTION.pack(NDOptionType.MTU, 1, 0, option.mtu)
    if isinstance(option, AdvertisementInterval):
        return _ADV_INTERVAL.pack(NDOptionType.ADVERTISEMENT_INTERVAL, 1, 0, option.interval_ms)
    if isinstance(option, HomeAgentInformation):
        # RFC 6275 7.4: the preference is a signed 16-bit integer, the lifetime unsigned.
        return _HA_INFO.pack(
            NDOptionType.HOME_AGENT_INFORMATION, 1, 0, option.preference, option.lifetime
        )
    if isinstance(option, MapOption):
        if not (0 <= option.distance <= 15 and 0 <= option.preference <= 15):
            raise ValueError("MAP distance and preference are 4-bit fields")
        return _MAP_OPTION.pack(
            NDOptionType.MAP,
            3,
            (option.distance << 4) | option.preference,
            _MAP_RCOA if option.rcoa_required else 0,
            option.valid_lifetime,
            IPv6Address(option.map_address).packed,
        )
    if isinstance(option, UnknownNDOption):
        body = _pad_to_octets(bytes((option.type, 0)) + bytes(option.data))
        if len(body) // 8 > 255:
            raise ValueError("option too long")
        return bytes((option.type, len(body) // 8)) + body[2:]
    raise ValueError(f"not an ND option: {option!r}")


def encode_nd_options(options: tuple[NDOption, ...]) -> bytes:
    return b"".join(encode_nd_option(option) for option in options)


def _expect_length(option_type: int, length: int, expected: int) -> None:
    if length != expected:
        raise BadOption(f"ND option {option_type} has length {length}, expected {expected}")


def _decode_link_layer(option_type: int, data: memoryview) -> NDOption:
    # An Ethernet address fills an 8-octet option exactly; other link layers keep all octets.
    address = bytes(data[2:8]) if len(data) == 8 else bytes(data[2:])
    if option_type == NDOptionType.SOURCE_LINK_LAYER_ADDRESS:
        return SourceLinkLayerAddress(address)
    return TargetLinkLayerAddress(address)


def _decode_prefix_information(data: memoryview) -> PrefixInformation:
    _expect_length(NDOptionType.PREFIX_INFORMATION, len(data) // 8, 4)
    _, _, prefixlen, flags, valid, preferred, _, prefix = _PREFIX_INFO.unpack(data)
    if prefixlen > 128:
        raise BadOption(f"prefix length {prefixlen} > 128")
    # Bits after the prefix length are reserved (RFC 4861 4.6.2): mask them off.
    network = IPv6Network((IPv6Address(prefix), prefixlen), strict=False)
    return PrefixInformation(
        prefix=network,
        valid_lifetime=valid,
        preferred_lifetime=preferred,
        on_link=bool(flags & _PIO_ON_LINK),
        autonomous=bool(flags & _PIO_AUTONOMOUS),
        router_address=bool(flags & _PIO_ROUTER_ADDRESS),
    )


def _decode_mtu(data: memoryview) -> Mtu:
    _expect_length(NDOptionType.MTU, len(data) // 8, 1)
    return Mtu(_MTU_OPTION.unpack(data)[3])


def _decode_advertisement_interval(data: memoryview) -> AdvertisementInterval:
    _expect_length(NDOptionType.ADVERTISEMENT_INTERVAL, len(data) // 8, 1)
    return AdvertisementInterval(_ADV_INTERVAL.unpack(data)[3])


def _decode_home_agent_information(data: memoryview) -> HomeAgentInformation:
    _expect_length(NDOptionType.HOME_AGENT_INFORMATION, len(data) // 8, 1)
    _, _, _, preference, lifetime = _HA_INFO.unpack(data)
    return HomeAgentInformation(preference=preference, lifetime=lifetime)


def _decode_map(data: memoryview) -> MapOption:
    _expect_length(NDOptionType.MAP, len(data) // 8, 3)
    _, _, dist_pref, flags, valid, address = _MAP_OPTION.unpack(data)
    return MapOption(
        distance=dist_pref >> 4,
        preference=dist_pref & 0x0F,
        valid_lifetime=valid,
        map_address=IPv6Address(address),
        rcoa_required=bool(flags & _MAP_RCOA),
    )


_OPTION_DECODERS: dict[int, Callable[[memoryview], NDOption]] = {
    NDOptionType.PREFIX_INFORMATION: _decode_prefix_information,
    NDOptionType.MTU: _decode_mtu,
    NDOptionType.ADVERTISEMENT_INTERVAL: _decode_advertisement_interval,
    NDOptionType.HOME_AGENT_INFORMATION: _decode_home_agent_information,
    NDOptionType.MAP: _decode_map,
}


def decode_nd_options(data: bytes | memoryview) -> tuple[NDOption, ...]:
    """Walk the ND options area (RFC 4861 4.6). Length 0 is invalid (BadOption)."""
    view = memoryview(data)
    options: list[NDOption] = []
    offset = 0
    while offset < len(view):
        if len(view) - offset < 2:
            raise TruncatedPacket("ND option header truncated")
        option_type, length = view[offset], view[offset + 1]
        if length == 0:
            raise BadOption(f"ND option {option_type} with length 0")
        end = offset + length * 8
        if end > len(view):
            raise TruncatedPacket(f"ND option {option_type} runs past the message")
        body = view[offset:end]
        if option_type in (
            NDOptionType.SOURCE_LINK_LAYER_ADDRESS,
            NDOptionType.TARGET_LINK_LAYER_ADDRESS,
        ):
            options.append(_decode_link_layer(option_type, body))
        elif option_type in _OPTION_DECODERS:
            options.append(_OPTION_DECODERS[option_type](body))
        else:
            options.append(UnknownNDOption(option_type, bytes(body[2:])))
        offset = end
    return tuple(options)


# ---------------------------------------------------------------- messages


def _encode_body(message: ICMPv6Message) -> tuple[int, int, bytes]:
    """(type, code, bytes after the 4-byte header) for a message."""
    if isinstance(message, RouterSolicitation):
        return ICMPv6Type.ROUTER_SOLICITATION, 0, b"\x00" * 4 + encode_nd_options(message.options)
    if isinstance(message, RouterAdvertisement):
        flags = (
            (_RA_MANAGED if message.managed else 0)
            | (_RA_OTHER if message.other else 0)
            | (_RA_HOME_AGENT if message.home_agent else 0)
        )
        fixed = _RA_BODY.pack(
            message.cur_hop_limit,
            flags,
            message.router_lifetime,
            message.reachable_time,
            message.retrans_timer,
        )
        return ICMPv6Type.ROUTER_ADVERTISEMENT, 0, fixed + encode_nd_options(message.options)
    if isinstance(message, NeighborSolicitation):
        body = b"\x00" * 4 + IPv6Address(message.target).packed
        return ICMPv6Type.NEIGHBOR_SOLICITATION, 0, body + encode_nd_options(message.options)
    if isinstance(message, NeighborAdvertisement):
        flags = (
            (_NA_ROUTER if message.router else 0)
            | (_NA_SOLICITED if message.solicited else 0)
            | (_NA_OVERRIDE if message.override else 0)
        )
        body = _NA_FLAGS.pack(flags) + IPv6Address(message.target).packed
        return ICMPv6Type.NEIGHBOR_ADVERTISEMENT, 0, body + encode_nd_options(message.options)
    if isinstance(message, EchoRequest):
        body = _ECHO.pack(message.identifier, message.sequence) + bytes(message.data)
        return ICMPv6Type.ECHO_REQUEST, 0, body
    if isinstance(message, EchoReply):
        body = _ECHO.pack(message.identifier, message.sequence) + bytes(message.data)
        return ICMPv6Type.ECHO_REPLY, 0, body
    if isinstance(message, ICMPv6Error):
        if message.type not in ERROR_TYPES:
            raise ValueError(f"ICMPv6 error type must be 1-4, got {message.type}")
        invoking = bytes(message.invoking_packet[:MAX_INVOKING_PACKET_LEN])
        return message.type, message.code, _PARAMETER.pack(message.parameter) + invoking
    if isinstance(message, UnknownICMPv6Message):
        return message.type, message.code, bytes(message.body)
    raise ValueError(f"not an ICMPv6 message: {message!r}")


def encode_icmpv6(message: ICMPv6Message, src: IPv6Address, dst: IPv6Address) -> bytes:
    """The ICMPv6 message with its checksum over the IPv6 pseudo-header (RFC 4443 2.3)."""
    icmp_type, code, body = _encode_body(message)
    unsummed = _HEADER.pack(icmp_type, code, 0) + body
    initial = pseudo_header_sum(
        IPv6Address(src).packed, IPv6Address(dst).packed, len(unsummed), IPPROTO_ICMPV6
    )
    checksum = internet_checksum(unsummed, initial)
    return unsummed[:2] + checksum.to_bytes(2, "big") + unsummed[4:]


def _need(body: memoryview, length: int, what: str) -> None:
    if len(body) < length:
        raise TruncatedPacket(f"{what} needs {length} octets after the ICMPv6 header")


def _decode_router_solicitation(code: int, body: memoryview) -> ICMPv6Message:
    _need(body, 4, "Router Solicitation")
    return RouterSolicitation(options=decode_nd_options(body[4:]))


def _decode_router_advertisement(code: int, body: memoryview) -> ICMPv6Message:
    _need(body, _RA_BODY.size, "Router Advertisement")
    hop_limit, flags, lifetime, reachable, retrans = _RA_BODY.unpack_from(body)
    return RouterAdvertisement(
        cur_hop_limit=hop_limit,
        managed=bool(flags & _RA_MANAGED),
        other=bool(flags & _RA_OTHER),
        home_agent=bool(flags & _RA_HOME_AGENT),
        router_lifetime=lifetime,
        reachable_time=reachable,
        retrans_timer=retrans,
        options=decode_nd_options(body[_RA_BODY.size :]),
    )


def _decode_neighbor_solicitation(code: int, body: memoryview) -> ICMPv6Message:
    _need(body, 20, "Neighbor Solicitation")
    return NeighborSolicitation(
        target=IPv6Address(bytes(body[4:20])), options=decode_nd_options(body[20:])
    )


def _decode_neighbor_advertisement(code: int, body: memoryview) -> ICMPv6Message:
    _need(body, 20, "Neighbor Advertisement")
    flags = body[0]
    return NeighborAdvertisement(
        target=IPv6Address(bytes(body[4:20])),
        router=bool(flags & _NA_ROUTER),
        solicited=bool(flags & _NA_SOLICITED),
        override=bool(flags & _NA_OVERRIDE),
        options=decode_nd_options(body[20:]),
    )


def _decode_echo_request(code: int, body: memoryview) -> ICMPv6Message:
    _need(body, _ECHO.size, "Echo Request")
    identifier, sequence = _ECHO.unpack_from(body)
    return EchoRequest(identifier, sequence, bytes(body[_ECHO.size :]))


def _decode_echo_reply(code: int, body: memoryview) -> ICMPv6Message:
    _need(body, _ECHO.size, "Echo Reply")
    identifier, sequence = _ECHO.unpack_from(body)
    return EchoReply(identifier, sequence, bytes(body[_ECHO.size :]))


_MESSAGE_DECODERS: dict[int, Callable[[int, memoryview], ICMPv6Message]] = {
    ICMPv6Type.ROUTER_SOLICITATION: _decode_router_solicitation,
    ICMPv6Type.ROUTER_ADVERTISEMENT: _decode_router_advertisement,
    ICMPv6Type.NEIGHBOR_SOLICITATION: _decode_neighbor_solicitation,
    ICMPv6Type.NEIGHBOR_ADVERTISEMENT: _decode_neighbor_advertisement,
    ICMPv6Type.ECHO_REQUEST: _decode_echo_request,
    ICMPv6Type.ECHO_REPLY: _decode_echo_reply,
}


def decode_icmpv6(
    data: bytes | bytearray | memoryview,
    src: IPv6Address,
    dst: IPv6Address,
    *,
    verify_checksum: bool = True,
) -> ICMPv6Message:
    """Decode one ICMPv6 message (the IPv6 payload). Raises only ParseError subclasses."""
    view = memoryview(data)
    if len(view) < ICMPV6_HEADER_LEN:
        raise TruncatedPacket("ICMPv6 header truncated")
    if verify_checksum:
        initial = pseudo_header_sum(
            IPv6Address(src).packed, IPv6Address(dst).packed, len(view), IPPROTO_ICMPV6
        )
        if internet_checksum(view, initial) != 0:
            raise BadChecksum("ICMPv6 checksum mismatch")
    icmp_type, code, _ = _HEADER.unpack_from(view)
    body = view[ICMPV6_HEADER_LEN:]
    decoder = _MESSAGE_DECODERS.get(icmp_type)
    if decoder is not None:
        if code != 0 and icmp_type in _ND_TYPES:
            # RFC 4861 6.1 / 7.1: an ND message with a non-zero code is invalid.
            raise ParseError(f"ND message type {icmp_type} with code {code}", reason="nd_bad_code")
        return decoder(code, body)
    if icmp_type in ERROR_TYPES:
        _need(body, _PARAMETER.size, "ICMPv6 error")
        return ICMPv6Error(
            type=icmp_type,
            code=code,
            parameter=_PARAMETER.unpack_from(body)[0],
            invoking_packet=bytes(body[_PARAMETER.size :]),
        )
    return UnknownICMPv6Message(icmp_type, code, bytes(body))


def build_icmpv6_packet(
    src: IPv6Address, dst: IPv6Address, message: ICMPv6Message, *, hop_limit: int = 255
) -> bytes:
    """A full IPv6 packet carrying `message` (hop limit 255 as ND requires, RFC 4861 6.1)."""
    payload = encode_icmpv6(message, src, dst)
    return build_ipv6_packet(src, dst, IPPROTO_ICMPV6, payload, hop_limit=hop_limit)


def decode_icmpv6_packet(packet: ParsedPacket) -> ICMPv6Message:
    """Decode the ICMPv6 payload of a parsed packet; the checksum uses the effective
    addresses (home address from a HAO, final destination from a type 2 RH; RFC 6275 6.3)."""
    if packet.upper_protocol != IPPROTO_ICMPV6:
        raise ParseError(
            f"upper-layer protocol {packet.upper_protocol} is not ICMPv6", reason="not_icmpv6"
        )
    return decode_icmpv6(packet.payload, packet.effective_source, packet.effective_destination)


__all__ = [
    "ICMPV6_HEADER_LEN",
    "MAX_INVOKING_PACKET_LEN",
    "build_icmpv6_packet",
    "decode_icmpv6",
    "decode_icmpv6_packet",
    "decode_nd_options",
    "encode_icmpv6",
    "encode_nd_option",
    "encode_nd_options",
    "solicited_node_multicast",
]
