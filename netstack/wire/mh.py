"""Mobility Header (RFC 6275 section 6.1, RFC 3963 for NEMO): messages and options.

One frozen dataclass per RFC message / option, named after the RFC. The codec
(`encode_mobility_header`, `decode_mobility_header`) lives in `netstack.wire.mh_codec`.
Addresses are `ipaddress.IPv6Address`; lifetimes are in seconds (the wire unit is 4 s,
conversion happens in the codec: a lifetime is rounded down to a multiple of 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv6Address, IPv6Network

IPPROTO_MH = 135


class MHType(IntEnum):
    """Mobility Header MH Type values (RFC 6275 section 6.1.2 and following)."""

    BINDING_REFRESH_REQUEST = 0
    HOME_TEST_INIT = 1
    CARE_OF_TEST_INIT = 2
    HOME_TEST = 3
    CARE_OF_TEST = 4
    BINDING_UPDATE = 5
    BINDING_ACK = 6
    BINDING_ERROR = 7


class MobilityOptionType(IntEnum):
    """Mobility option types (RFC 6275 section 6.2, RFC 3963 section 4.3)."""

    PAD1 = 0
    PADN = 1
    BINDING_REFRESH_ADVICE = 2
    ALTERNATE_CARE_OF_ADDRESS = 3
    NONCE_INDICES = 4
    BINDING_AUTHORIZATION_DATA = 5
    MOBILE_NETWORK_PREFIX = 6


class BindingAckStatus(IntEnum):
    """Binding Acknowledgement status codes (RFC 6275 section 6.1.8, RFC 3963, RFC 4877)."""

    ACCEPTED = 0
    ACCEPTED_PREFIX_DISCOVERY_NECESSARY = 1
    REASON_UNSPECIFIED = 128
    ADMINISTRATIVELY_PROHIBITED = 129
    INSUFFICIENT_RESOURCES = 130
    HOME_REGISTRATION_NOT_SUPPORTED = 131
    NOT_HOME_SUBNET = 132
    NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE = 133
    DUPLICATE_ADDRESS_DETECTION_FAILED = 134
    SEQUENCE_NUMBER_OUT_OF_WINDOW = 135
    EXPIRED_HOME_NONCE_INDEX = 136
    EXPIRED_CARE_OF_NONCE_INDEX = 137
    EXPIRED_NONCES = 138
    REGISTRATION_TYPE_CHANGE_DISALLOWED = 139
    MOBILE_ROUTER_OPERATION_NOT_PERMITTED = 140
    INVALID_PREFIX = 141
    NOT_AUTHORIZED_FOR_PREFIX = 142
    FORWARDING_SETUP_FAILED = 143


class BindingErrorStatus(IntEnum):
    """Binding Error status codes (RFC 6275 section 6.1.9)."""

    UNKNOWN_BINDING_FOR_HOME_ADDRESS_OPTION = 1
    UNRECOGNIZED_MH_TYPE = 2


# ---------------------------------------------------------------- options


@dataclass(frozen=True)
class Pad1:
    """Pad1 option (RFC 6275 6.2.2). Decoders drop padding; encoders insert it for alignment."""


@dataclass(frozen=True)
class PadN:
    """PadN option (RFC 6275 6.2.3): `length` zero octets of option data."""

    length: int = 0


@dataclass(frozen=True)
class BindingRefreshAdvice:
    """Binding Refresh Advice (RFC 6275 6.2.4), alignment 2n. Interval in seconds (wire: 4 s units)."""

    refresh_interval: int


@dataclass(frozen=True)
class AlternateCareOfAddress:
    """Alternate Care-of Address (RFC 6275 6.2.5), alignment 8n+6."""

    address: IPv6Address


@dataclass(frozen=True)
class NonceIndices:
    """Nonce Indices (RFC 6275 6.2.6), alignment 2n."""

    home_nonce_index: int
    care_of_nonce_index: int


@dataclass(frozen=True)
class BindingAuthorizationData:
    """Binding Authorization Data (RFC 6275 6.2.7), alignment 8n+2; must be the last option."""

    authenticator: bytes


@dataclass(frozen=True)
class MobileNetworkPrefix:
    """Mobile Network Prefix option (RFC 3963 4.3), alignment 8n+4."""

    prefix: IPv6Network


@dataclass(frozen=True)
class UnknownMobilityOption:
    """An option type this codec does not know (RFC 6275 6.2.1: skipped, kept for display)."""

    type: int
    data: bytes


MobilityOption = (
    Pad1
    | PadN
    | BindingRefreshAdvice
    | AlternateCareOfAddress
    | NonceIndices
    | BindingAuthorizationData
    | MobileNetworkPrefix
    | UnknownMobilityOption
)


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class BindingRefreshRequest:
    """Binding Refresh Request, MH type 0 (RFC 6275 6.1.2)."""

    options: tuple[MobilityOption, ...] = ()


@dataclass(frozen=True)
class HomeTestInit:
    """Home Test Init, MH type 1 (RFC 6275 6.1.3)."""

    home_init_cookie: bytes  # 8 octets
    options: tuple[MobilityOption, ...] = ()


@dataclass(frozen=True)
class CareOfTestInit:
    """Care-of Test Init, MH type 2 (RFC 6275 6.1.4)."""

    care_of_init_cookie: bytes  # 8 octets
    options: tuple[MobilityOption, ...] = ()


@dataclass(frozen=True)
class HomeTest:
    """Home Test, MH type 3 (RFC 6275 6.1.5)."""

    home_nonce_index: int
    home_init_cookie: bytes  # 8 octets
    home_keygen_token: bytes  # 8 octets
    options: tuple[MobilityOption, ...] = ()


@dataclass(frozen=True)
class CareOfTest:
    """Care-of Test, MH type 4 (RFC 6275 6.1.6)."""

    care_of_nonce_index: int
    care_of_init_cookie: bytes  # 8 octets
    care_of_keygen_token: bytes  # 8 octets
    options: tuple[MobilityOption, ...] = ()


@dataclass(frozen=True)
class BindingUpdate:
    """Binding Update, MH type 5 (RFC 6275 6.1.7; R flag from RFC 3963).

    Flags: A acknowledge, H home registration, L link-local compatibility, K key management
    mobility capability, M MAP registration (RFC 5380), R mobile router (RFC 3963).
    `lifetime` is in seconds (wire: 4-second units, 16 bits).
    """

    sequence: int
    lifetime: int
    ack: bool = True
    home_registration: bool = True
    link_local_compat: bool = False
    key_management: bool = False
    map_registration: bool = False
    mobile_router: bool = False
    options: tuple[MobilityOption, ...] = ()


@dataclass(frozen=True)
class BindingAck:
    """Binding Acknowledgement, MH type 6 (RFC 6275 6.1.8; R flag from RFC 3963).

    `status` is an int (see BindingAckStatus) so unknown codes survive a round trip.
    `lifetime` is in seconds.
    """

    status: int
    sequence: int
    lifetime: int
    key_management: bool = False
    mobile_router: bool = False
    options: tuple[MobilityOption, ...] = ()


@dataclass(frozen=True)
class BindingError:
    """Binding Error, MH type 7 (RFC 6275 6.1.9)."""

    status: int
    home_address: IPv6Address
    options: tuple[MobilityOption, ...] = ()


MobilityMessage = (
    BindingRefreshRequest
    | HomeTestInit
    | CareOfTestInit
    | HomeTest
    | CareOfTest
    | BindingUpdate
    | BindingAck
    | BindingError
)
# An unknown MH type is not a message: decoding raises
# netstack.wire.errors.UnknownMobilityHeaderType (carrying mh_type), and the receiver
# answers with a Binding Error, status 2 (RFC 6275 9.2).
