"""Mobility options (RFC 6275 6.2, RFC 3963 4.3): alignment padding, encode and decode,
and the field checks the message codec shares."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address, IPv6Network

from netstack.wire.errors import (
    BadOption,
)
from netstack.wire.mh import (
    AlternateCareOfAddress,
    BindingAuthorizationData,
    BindingRefreshAdvice,
    MobileNetworkPrefix,
    MobilityOption,
    MobilityOptionType,
    NonceIndices,
    Pad1,
    PadN,
    UnknownMobilityOption,
)

LIFETIME_UNIT = 4  # seconds per wire unit (RFC 6275 6.1.7)


# RFC 6275 6.2: xn+y alignment of each option, from the start of the Mobility Header.
_ALIGNMENT: dict[type, tuple[int, int]] = {
    BindingRefreshAdvice: (2, 0),
    AlternateCareOfAddress: (8, 6),
    NonceIndices: (2, 0),
    BindingAuthorizationData: (8, 2),
    MobileNetworkPrefix: (8, 4),
}

_OPTION_LEN = {
    MobilityOptionType.BINDING_REFRESH_ADVICE: 2,
    MobilityOptionType.ALTERNATE_CARE_OF_ADDRESS: 16,
    MobilityOptionType.NONCE_INDICES: 4,
    MobilityOptionType.MOBILE_NETWORK_PREFIX: 18,
}


# ---------------------------------------------------------------- helpers


def _packed(addr: IPv6Address | bytes) -> bytes:
    if isinstance(addr, IPv6Address):
        return addr.packed
    packed = bytes(addr)
    if len(packed) != 16:
        raise ValueError(f"an IPv6 address is 16 octets, got {len(packed)}")
    return packed


def _u16(value: int, what: str) -> int:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what} {value} does not fit 16 bits")
    return value


def _u8(value: int, what: str) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{what} {value} does not fit 8 bits")
    return value


def _to_units(seconds: int, what: str) -> int:
    """Seconds -> 4-second wire units, rounded down (RFC 6275 6.1.7)."""
    if seconds < 0:
        raise ValueError(f"{what} {seconds} is negative")
    return min(seconds // LIFETIME_UNIT, 0xFFFF)


def _cookie(value: bytes, what: str) -> bytes:
    if len(value) != 8:
        raise ValueError(f"{what} must be 8 octets, got {len(value)}")
    return bytes(value)


def _padding(n: int) -> bytes:
    """Pad1 for one octet, PadN for more (RFC 6275 6.2.2/6.2.3)."""
    if n == 0:
        return b""
    if n == 1:
        return b"\x00"
    return bytes((MobilityOptionType.PADN, n - 2)) + bytes(n - 2)


# ---------------------------------------------------------------- options


def _encode_option(option: MobilityOption) -> bytes:
    """Type, length and data of one option (no alignment padding)."""
    if isinstance(option, Pad1):
        return b"\x00"
    if isinstance(option, PadN):
        return bytes((MobilityOptionType.PADN, _u8(option.length, "PadN length"))) + bytes(
            option.length
        )
    if isinstance(option, BindingRefreshAdvice):
        units = _to_units(option.refresh_interval, "refresh interval")
        return struct.pack("!BBH", MobilityOptionType.BINDING_REFRESH_ADVICE, 2, units)
    if isinstance(option, AlternateCareOfAddress):
        return bytes((MobilityOptionType.ALTERNATE_CARE_OF_ADDRESS, 16)) + _packed(option.address)
    if isinstance(option, NonceIndices):
        return struct.pack(
            "!BBHH",
            MobilityOptionType.NONCE_INDICES,
            4,
            _u16(option.home_nonce_index, "home nonce index"),
            _u16(option.care_of_nonce_index, "care-of nonce index"),
        )
    if isinstance(option, BindingAuthorizationData):
        auth = bytes(option.authenticator)
        return bytes((MobilityOptionType.BINDING_AUTHORIZATION_DATA, _u8(len(auth), "authenticator length"))) + auth
    if isinstance(option, MobileNetworkPrefix):
        prefix = option.prefix
        return struct.pack(
            "!BBBB16s",
            MobilityOptionType.MOBILE_NETWORK_PREFIX,
            18,
            0,
            prefix.prefixlen,
            prefix.network_address.packed,
        )
    if isinstance(option, UnknownMobilityOption):
        data = bytes(option.data)
        return bytes((_u8(option.type, "option type"), _u8(len(data), "option length"))) + data
    raise TypeError(f"not a mobility option: {option!r}")


def _encode_options(options: tuple[MobilityOption, ...], start: int) -> bytes:
    """Options area starting at MH offset `start`, aligned and padded to a multiple of 8."""
    meaningful = [o for o in options if not isinstance(o, Pad1 | PadN)]
    if any(isinstance(o, BindingAuthorizationData) for o in meaningful[:-1]):
        raise ValueError("Binding Authorization Data must be the last option (RFC 6275 6.2.7)")
    out = bytearray()
    for option in options:
        align = _ALIGNMENT.get(type(option))
        if align is not None:
            x, y = align
            out += _padding((y - (start + len(out))) % x)
        out += _encode_option(option)
    out += _padding(-(start + len(out)) % 8)
    return bytes(out)


def _decode_option(opt_type: int, data: bytes) -> MobilityOption:
    expected = _OPTION_LEN.get(opt_type)
    if expected is not None and len(data) != expected:
        raise BadOption(f"mobility option {opt_type} has length {len(data)}, expected {expected}")
    if opt_type == MobilityOptionType.BINDING_REFRESH_ADVICE:
        return BindingRefreshAdvice(int.from_bytes(data, "big") * LIFETIME_UNIT)
    if opt_type == MobilityOptionType.ALTERNATE_CARE_OF_ADDRESS:
        return AlternateCareOfAddress(IPv6Address(data))
    if opt_type == MobilityOptionType.NONCE_INDICES:
        home, care_of = struct.unpack("!HH", data)
        return NonceIndices(home, care_of)
    if opt_type == MobilityOptionType.BINDING_AUTHORIZATION_DATA:
        return BindingAuthorizationData(data)
    if opt_type == MobilityOptionType.MOBILE_NETWORK_PREFIX:
        prefixlen = data[1]
        if prefixlen > 128:
            raise BadOption(f"mobile network prefix length {prefixlen}")
        # strict=False: bits past the prefix length are not ours to reject (RFC 3963 4.3).
        return MobileNetworkPrefix(IPv6Network((IPv6Address(data[2:18]), prefixlen), strict=False))
    return UnknownMobilityOption(opt_type, data)


def _decode_options(area: bytes) -> tuple[MobilityOption, ...]:
    options: list[MobilityOption] = []
    pos = 0
    while pos < len(area):
        opt_type = area[pos]
        if opt_type == MobilityOptionType.PAD1:
            pos += 1
            continue
        if pos + 2 > len(area):
            raise BadOption(f"mobility option {opt_type} without a length octet")
        end = pos + 2 + area[pos + 1]
        if end > len(area):
            raise BadOption(f"mobility option {opt_type} overruns the Mobility Header")
        if opt_type != MobilityOptionType.PADN:
            options.append(_decode_option(opt_type, area[pos + 2 : end]))
        pos = end
    return tuple(options)


# ---------------------------------------------------------------- messages
