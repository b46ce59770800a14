"""What a node answers to a Mobility Header it cannot accept (RFC 6275 9.2), sans-IO.

Input: the parsed packet and the ParseError the MH codec raised. Output: nothing (a bad
checksum or a truncated header is discarded silently), a Binding Error with status 2 for an
unknown MH type (sent to the packet's source; Home Address field = the HAO's address, else
the unspecified address, 6.1.9), or an ICMPv6 Parameter Problem, code 0, whose pointer is the
offending field's offset in the invoking packet: Payload Proto for piggybacking, Header Len
for a length that is wrong for the type.

Both answers are rate limited (RFC 4443 2.4 (f) for ICMP; a Binding Error storm is as easy to
provoke): a token bucket, so a flood of bad MHs costs counters, not bandwidth.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address

from netstack.wire.errors import (
    BadLength,
    BadPayloadProto,
    ParseError,
    UnknownMobilityHeaderType,
)
from netstack.wire.icmpv6 import build_icmpv6_packet
from netstack.wire.icmpv6_types import ICMPv6Error, ICMPv6Type
from netstack.wire.ipv6 import ParsedPacket
from netstack.wire.mh import BindingError, BindingErrorStatus
from netstack.wire.mh_codec import build_mobility_packet

UNSPECIFIED = IPv6Address("::")
_MAX_INVOKING = 1280 - 40 - 8  # RFC 4443: as much of the packet as fits in the minimum MTU


@dataclass(frozen=True)
class BindingErrorReply:
    destination: IPv6Address
    message: BindingError
    counter = "tx_binding_errors"

    def packet(self, source: IPv6Address) -> bytes:
        return build_mobility_packet(source, self.destination, self.message)


@dataclass(frozen=True)
class ParameterProblemReply:
    destination: IPv6Address
    message: ICMPv6Error
    counter = "tx_parameter_problems"

    def packet(self, source: IPv6Address) -> bytes:
        return build_icmpv6_packet(source, self.destination, self.message, hop_limit=64)


class ErrorRateLimiter:
    """Token bucket: `rate` answers per second, bursts of `burst`."""

    def __init__(self, rate: float = 10.0, burst: int = 10) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def mobility_header_error(
    packet: ParsedPacket, error: ParseError
) -> BindingErrorReply | ParameterProblemReply | None:
    """The RFC 6275 9.2 answer to `error` raised while decoding `packet`'s Mobility Header."""
    if packet.src.is_multicast or packet.src.is_unspecified:
        return None  # never answer these (RFC 4443 2.4 (e))
    if isinstance(error, UnknownMobilityHeaderType):
        home = packet.home_address if packet.home_address is not None else UNSPECIFIED
        return BindingErrorReply(
            packet.src, BindingError(BindingErrorStatus.UNRECOGNIZED_MH_TYPE, home)
        )
    if isinstance(error, BadPayloadProto | BadLength) and len(packet.payload) >= 8:
        field_offset = 0 if isinstance(error, BadPayloadProto) else 1
        pointer = packet.upper_offset + field_offset
        return ParameterProblemReply(
            packet.src,
            ICMPv6Error(
                ICMPv6Type.PARAMETER_PROBLEM, 0, pointer, bytes(packet.raw[:_MAX_INVOKING])
            ),
        )
    return None
