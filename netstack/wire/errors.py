"""Typed parse errors. Every decoder raises a subclass of ParseError, never anything else.

Daemons catch ParseError, drop the packet and count it under `reason` (shown in `status`).
"""

from __future__ import annotations


class ParseError(ValueError):
    """A packet or message could not be decoded. `reason` is a short stable counter key."""

    reason = "malformed"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class TruncatedPacket(ParseError):
    reason = "truncated"


class BadLength(ParseError):
    reason = "bad_length"


class BadChecksum(ParseError):
    reason = "bad_checksum"


class BadVersion(ParseError):
    reason = "bad_version"


class BadPayloadProto(ParseError):
    """Mobility Header whose Payload Proto is not IPPROTO_NONE (59): piggybacking is not
    allowed; the receiver discards it and SHOULD send ICMP Parameter Problem (RFC 6275 9.2)."""

    reason = "bad_payload_proto"


class UnknownMobilityHeaderType(ParseError):
    """MH type not defined; the receiver answers with Binding Error status 2 (RFC 6275 9.2)."""

    reason = "unknown_mh_type"

    def __init__(self, mh_type: int) -> None:
        super().__init__(f"unknown Mobility Header type {mh_type}")
        self.mh_type = mh_type


class BadOption(ParseError):
    reason = "bad_option"
