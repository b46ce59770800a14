"""Typed IPsec errors.

Every error raised while protecting or unprotecting a packet is an `IpsecError`. It derives
from `ParseError` so that the daemons' single "drop and count under `.reason`" handler
covers IPsec too (house rule: bad input raises only ParseError subclasses).
"""

from __future__ import annotations

from netstack.wire.errors import ParseError


class IpsecError(ParseError):
    reason = "ipsec_error"


class MalformedEsp(IpsecError):
    """Too short, ciphertext not a whole number of blocks, bad lengths."""

    reason = "malformed_esp"


class UnknownSpi(IpsecError):
    reason = "unknown_spi"


class IcvFailure(IpsecError):
    """Integrity check (HMAC or AEAD tag) failed; the packet is not authentic."""

    reason = "icv_failure"


class ReplayedPacket(IpsecError):
    """Sequence number already received or left of the anti-replay window."""

    reason = "replayed"


class BadPadding(IpsecError):
    """Pad Length larger than the payload, or pad bytes not 1, 2, 3, ... (RFC 4303 2.4)."""

    reason = "bad_padding"


class BadNextHeader(IpsecError):
    """Next Header not allowed here (e.g. a tunnel-mode SA decrypting something not IP)."""

    reason = "bad_next_header"


class DummyPacket(IpsecError):
    """Next Header 59: traffic-flow-confidentiality dummy packet, discarded silently."""

    reason = "dummy_packet"


class SaExpired(IpsecError):
    """The SA passed its hard lifetime (time or bytes) and must not be used."""

    reason = "sa_expired"


class SequenceOverflow(IpsecError):
    """The sender would wrap the sequence counter (RFC 4303 3.3.3): a new SA is needed."""

    reason = "sequence_overflow"


class PolicyViolation(IpsecError):
    """The packet does not match the policy that the SA it arrived on belongs to."""

    reason = "policy_violation"


class KeyFileError(ValueError):
    """A manual-keying file is unsafe (permissions) or invalid. Configuration, not packets."""
