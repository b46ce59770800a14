"""IPsec ESP (RFC 4303) for the userspace stack: SAs, SAD, SPD, transport and tunnel mode,
anti-replay, manual keying. Pure code: no sockets, no clock (`now` is passed in)."""

from __future__ import annotations

from netstack.ipsec.errors import (
    BadNextHeader,
    BadPadding,
    DummyPacket,
    IcvFailure,
    IpsecError,
    KeyFileError,
    MalformedEsp,
    PolicyViolation,
    ReplayedPacket,
    SaExpired,
    SequenceOverflow,
    UnknownSpi,
)
from netstack.ipsec.esp import protect, unprotect
from netstack.ipsec.modes import (
    transport_protect,
    transport_unprotect,
    tunnel_protect,
    tunnel_unprotect,
)
from netstack.ipsec.processor import SecurityProcessor
from netstack.ipsec.replay import ReplayWindow
from netstack.ipsec.sa import Lifetime, SecurityAssociation
from netstack.ipsec.sad import SecurityAssociationDatabase
from netstack.ipsec.spd import Policy, SecurityPolicyDatabase, Selector

__all__ = [
    "BadNextHeader",
    "BadPadding",
    "DummyPacket",
    "IcvFailure",
    "IpsecError",
    "KeyFileError",
    "Lifetime",
    "MalformedEsp",
    "Policy",
    "PolicyViolation",
    "ReplayWindow",
    "ReplayedPacket",
    "SaExpired",
    "SecurityAssociation",
    "SecurityAssociationDatabase",
    "SecurityPolicyDatabase",
    "SecurityProcessor",
    "Selector",
    "SequenceOverflow",
    "UnknownSpi",
    "protect",
    "transport_protect",
    "transport_unprotect",
    "tunnel_protect",
    "tunnel_unprotect",
    "unprotect",
]
