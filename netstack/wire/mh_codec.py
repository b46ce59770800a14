"""Mobility Header codec (RFC 6275 6.1/6.2, RFC 3963 4.3): messages <-> bytes.

The dataclasses live in `netstack.wire.mh`. Encoding inserts Pad1/PadN so each option meets
its alignment (relative to the start of the Mobility Header) and the header is a multiple
of 8 octets; decoding drops padding. The checksum covers the IPv6 pseudo-header built from
the addresses the caller passes: the home address (HAO) as source and the final destination
(type 2 routing header) as destination, RFC 6275 6.1.1.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from ipaddress import IPv6Address

from netstack.wire.checksum import internet_checksum, pseudo_header_sum
from netstack.wire.errors import (
    BadChecksum,
    BadLength,
    BadPayloadProto,
    ParseError,
    TruncatedPacket,
    UnknownMobilityHeaderType,
)
from netstack.wire.ipv6 import IPPROTO_NONE, ParsedPacket, build_ipv6_packet
from netstack.wire.mh import (
    IPPROTO_MH,
    BindingAck,
    BindingError,
    BindingRefreshRequest,
    BindingUpdate,
    CareOfTest,
    CareOfTestInit,
    HomeTest,
    HomeTestInit,
    MHType,
    MobilityMessage,
    MobilityOption,
)
from netstack.wire.mh_options import (
    LIFETIME_UNIT,
    _cookie,
    _decode_options,
    _encode_options,
    _packed,
    _to_units,
    _u8,
    _u16,
)

MH_HEADER_LEN = 6  # Payload Proto, Header Len, MH Type, Reserved, Checksum
MAX_LIFETIME = 0xFFFF * LIFETIME_UNIT

# BU flags (RFC 6275 6.1.7; M: RFC 5380; R: RFC 3963 — bit positions as assigned by IANA).
_BU_A, _BU_H, _BU_L, _BU_K, _BU_M, _BU_R = 0x8000, 0x4000, 0x2000, 0x1000, 0x0800, 0x0400
# BA flags (RFC 6275 6.1.8; R: RFC 3963).
_BA_K, _BA_R = 0x80, 0x40

# Fixed-part layouts following the 6-octet MH header.
_BRR = struct.Struct("!H")
_TEST_INIT = struct.Struct("!H8s")
_TEST = struct.Struct("!H8s8s")
_BU = struct.Struct("!HHH")
_BA = struct.Struct("!BBHH")
_BE = struct.Struct("!BB16s")

_FIXED_LEN = {
    MHType.BINDING_REFRESH_REQUEST: _BRR.size,
    MHType.HOME_TEST_INIT: _TEST_INIT.size,
    MHType.CARE_OF_TEST_INIT: _TEST_INIT.size,
    MHType.HOME_TEST: _TEST.size,
    MHType.CARE_OF_TEST: _TEST.size,
    MHType.BINDING_UPDATE: _BU.size,
    MHType.BINDING_ACK: _BA.size,
    MHType.BINDING_ERROR: _BE.size,
}



def _encode_fixed(message: MobilityMessage) -> tuple[int, bytes]:
    """(MH type, message data before the options)."""
    if isinstance(message, BindingUpdate):
        flags = (
            (_BU_A if message.ack else 0)
            | (_BU_H if message.home_registration else 0)
            | (_BU_L if message.link_local_compat else 0)
            | (_BU_K if message.key_management else 0)
            | (_BU_M if message.map_registration else 0)
            | (_BU_R if message.mobile_router else 0)
        )
        units = _to_units(message.lifetime, "lifetime")
        return MHType.BINDING_UPDATE, _BU.pack(_u16(message.sequence, "sequence"), flags, units)
    if isinstance(message, BindingAck):
        flags = (_BA_K if message.key_management else 0) | (_BA_R if message.mobile_router else 0)
        units = _to_units(message.lifetime, "lifetime")
        return MHType.BINDING_ACK, _BA.pack(
            _u8(message.status, "status"), flags, _u16(message.sequence, "sequence"), units
        )
    if isinstance(message, BindingError):
        return MHType.BINDING_ERROR, _BE.pack(
            _u8(message.status, "status"), 0, _packed(message.home_address)
        )
    if isinstance(message, BindingRefreshRequest):
        return MHType.BINDING_REFRESH_REQUEST, _BRR.pack(0)
    if isinstance(message, HomeTestInit):
        return MHType.HOME_TEST_INIT, _TEST_INIT.pack(0, _cookie(message.home_init_cookie, "home init cookie"))
    if isinstance(message, CareOfTestInit):
        return MHType.CARE_OF_TEST_INIT, _TEST_INIT.pack(
            0, _cookie(message.care_of_init_cookie, "care-of init cookie")
        )
    if isinstance(message, HomeTest):
        return MHType.HOME_TEST, _TEST.pack(
            _u16(message.home_nonce_index, "home nonce index"),
            _cookie(message.home_init_cookie, "home init cookie"),
            _cookie(message.home_keygen_token, "home keygen token"),
        )
    if isinstance(message, CareOfTest):
        return MHType.CARE_OF_TEST, _TEST.pack(
            _u16(message.care_of_nonce_index, "care-of nonce index"),
            _cookie(message.care_of_init_cookie, "care-of init cookie"),
            _cookie(message.care_of_keygen_token, "care-of keygen token"),
        )
    raise TypeError(f"not a mobility message: {message!r}")


def encode_mobility_header(
    message: MobilityMessage, src: IPv6Address | bytes, dst: IPv6Address | bytes
) -> bytes:
    """Encode `message` with its checksum over the pseudo-header (src, dst, length, 135).

    Pass the effective addresses: the home address when a HAO is sent, the final
    destination when a type 2 routing header is sent (RFC 6275 6.1.1).
    """
    mh_type, fixed = _encode_fixed(message)
    start = MH_HEADER_LEN + len(fixed)
    mh = bytearray(struct.pack("!BBBBH", IPPROTO_NONE, 0, mh_type, 0, 0))
    mh += fixed
    mh += _encode_options(message.options, start)
    if len(mh) > 2048:
        raise ValueError("Mobility Header longer than the 8-bit Header Len allows")
    mh[1] = len(mh) // 8 - 1
    initial = pseudo_header_sum(_packed(src), _packed(dst), len(mh), IPPROTO_MH)
    struct.pack_into("!H", mh, 4, internet_checksum(mh, initial))
    return bytes(mh)


def _bu(fixed: bytes, options: tuple[MobilityOption, ...]) -> BindingUpdate:
    sequence, flags, units = _BU.unpack(fixed)
    return BindingUpdate(
        sequence=sequence,
        lifetime=units * LIFETIME_UNIT,
        ack=bool(flags & _BU_A),
        home_registration=bool(flags & _BU_H),
        link_local_compat=bool(flags & _BU_L),
        key_management=bool(flags & _BU_K),
        map_registration=bool(flags & _BU_M),
        mobile_router=bool(flags & _BU_R),
        options=options,
    )


def _ba(fixed: bytes, options: tuple[MobilityOption, ...]) -> BindingAck:
    status, flags, sequence, units = _BA.unpack(fixed)
    return BindingAck(
        status=status,
        sequence=sequence,
        lifetime=units * LIFETIME_UNIT,
        key_management=bool(flags & _BA_K),
        mobile_router=bool(flags & _BA_R),
        options=options,
    )


def _be(fixed: bytes, options: tuple[MobilityOption, ...]) -> BindingError:
    status, _reserved, home = _BE.unpack(fixed)
    return BindingError(status=status, home_address=IPv6Address(home), options=options)


def _hoti(fixed: bytes, options: tuple[MobilityOption, ...]) -> HomeTestInit:
    return HomeTestInit(_TEST_INIT.unpack(fixed)[1], options)


def _coti(fixed: bytes, options: tuple[MobilityOption, ...]) -> CareOfTestInit:
    return CareOfTestInit(_TEST_INIT.unpack(fixed)[1], options)


def _hot(fixed: bytes, options: tuple[MobilityOption, ...]) -> HomeTest:
    return HomeTest(*_TEST.unpack(fixed), options)


def _cot(fixed: bytes, options: tuple[MobilityOption, ...]) -> CareOfTest:
    return CareOfTest(*_TEST.unpack(fixed), options)


def _brr(_fixed: bytes, options: tuple[MobilityOption, ...]) -> BindingRefreshRequest:
    return BindingRefreshRequest(options)


_DECODERS: dict[int, Callable[[bytes, tuple[MobilityOption, ...]], MobilityMessage]] = {
    MHType.BINDING_REFRESH_REQUEST: _brr,
    MHType.HOME_TEST_INIT: _hoti,
    MHType.CARE_OF_TEST_INIT: _coti,
    MHType.HOME_TEST: _hot,
    MHType.CARE_OF_TEST: _cot,
    MHType.BINDING_UPDATE: _bu,
    MHType.BINDING_ACK: _ba,
    MHType.BINDING_ERROR: _be,
}


def decode_mobility_header(
    data: bytes | bytearray | memoryview,
    src: IPv6Address | bytes,
    dst: IPv6Address | bytes,
    *,
    verify_checksum: bool = True,
) -> MobilityMessage:
    """Decode one Mobility Header (the whole upper-layer payload) in RFC 6275 9.2 order.

    Raises TruncatedPacket/BadLength (Header Len vs buffer, or shorter than the MH type
    needs), BadChecksum, BadPayloadProto (not 59), UnknownMobilityHeaderType (checked after the checksum, so a
    corrupted packet never triggers a Binding Error), BadOption.
    """
    mh = bytes(data)
    if len(mh) < 8:
        raise TruncatedPacket(f"Mobility Header needs at least 8 octets, got {len(mh)}")
    declared = (mh[1] + 1) * 8
    if declared != len(mh):
        raise BadLength(f"Header Len says {declared} octets, buffer has {len(mh)}")
    if verify_checksum:
        initial = pseudo_header_sum(_packed(src), _packed(dst), len(mh), IPPROTO_MH)
        if internet_checksum(mh, initial) != 0:
            raise BadChecksum("Mobility Header checksum mismatch")
    if mh[0] != IPPROTO_NONE:
        raise BadPayloadProto(f"Mobility Header Payload Proto {mh[0]}, must be 59")
    mh_type = mh[2]
    decoder = _DECODERS.get(mh_type)
    if decoder is None:
        raise UnknownMobilityHeaderType(mh_type)
    fixed_end = MH_HEADER_LEN + _FIXED_LEN[MHType(mh_type)]
    if fixed_end > len(mh):
        raise BadLength(f"MH type {mh_type} needs {fixed_end} octets, got {len(mh)}")
    return decoder(mh[MH_HEADER_LEN:fixed_end], _decode_options(mh[fixed_end:]))


# ---------------------------------------------------------------- whole packets


def build_mobility_packet(
    src: IPv6Address | bytes,
    dst: IPv6Address | bytes,
    message: MobilityMessage,
    *,
    home_address: IPv6Address | bytes | None = None,
    routing_type2: IPv6Address | bytes | None = None,
    hop_limit: int = 64,
) -> bytes:
    """A full IPv6 packet carrying `message`, with a HAO and/or type 2 routing header.

    The checksum pseudo-header uses `home_address` (if given) as source and
    `routing_type2` (if given) as destination (RFC 6275 6.1.1).
    """
    mh = encode_mobility_header(
        message,
        home_address if home_address is not None else src,
        routing_type2 if routing_type2 is not None else dst,
    )
    return build_ipv6_packet(
        src,
        dst,
        IPPROTO_MH,
        mh,
        hop_limit=hop_limit,
        home_address=home_address,
        routing_type2=routing_type2,
    )


def decode_mobility_packet(packet: ParsedPacket, *, verify_checksum: bool = True) -> MobilityMessage:
    """Decode the Mobility Header of a parsed packet, checksummed with its effective addresses."""
    if packet.upper_protocol != IPPROTO_MH:
        raise ParseError(
            f"upper protocol {packet.upper_protocol} is not a Mobility Header",
            reason="not_mobility_header",
        )
    return decode_mobility_header(
        packet.payload,
        packet.effective_source,
        packet.effective_destination,
        verify_checksum=verify_checksum,
    )
