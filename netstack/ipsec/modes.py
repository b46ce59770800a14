"""ESP transport and tunnel mode on whole packets (bytes in, bytes out).

Transport mode (RFC 4303 3.1.1): ESP goes after Hop-by-Hop, Routing, Fragment and the
Destination Options header carrying the Home Address option; with Mobile IPv6 the HAO and
the type 2 Routing header stay outside ESP (RFC 3776 3, RFC 6275 6.3/6.4). The IPv6 payload
length and the next-header chain are fixed up.

Tunnel mode (RFC 4303 3.1.2): a new outer IPv6 header from the SA's endpoints, next header
41 (inner IPv6) or 4 (inner IPv4) inside ESP.
"""

from __future__ import annotations

import struct

from netstack.ipsec._ip6chain import (
    ESP,
    IPV4_IN,
    IPV6_HEADER_LEN,
    IPV6_IN,
    Chain,
    walk,
)
from netstack.ipsec.errors import BadNextHeader, MalformedEsp, UnknownSpi
from netstack.ipsec.esp import peek_spi, protect, unprotect
from netstack.ipsec.sa import SecurityAssociation

DEFAULT_HOP_LIMIT = 64
_MAX_PAYLOAD = 0xFFFF
_OUTER = struct.Struct("!IHBB16s16s")


def _set_payload_length(out: bytearray) -> None:
    length = len(out) - IPV6_HEADER_LEN
    if length > _MAX_PAYLOAD:
        raise MalformedEsp(f"IPv6 payload of {length} bytes needs a jumbogram")
    out[4:6] = length.to_bytes(2, "big")


def transport_protect(
    sa: SecurityAssociation,
    packet: bytes | memoryview,
    now: float,
    chain: Chain | None = None,
) -> bytes:
    """The IPv6 `packet` with ESP inserted after the headers that must stay outside."""
    if chain is None:
        chain = walk(packet)
    split = chain.split_offset
    esp = protect(sa, packet[split:], packet[chain.split_nh_field], now)
    out = bytearray(packet[:split])
    out[chain.split_nh_field] = ESP
    out += esp
    _set_payload_length(out)
    return bytes(out)


def _open_esp(
    sa: SecurityAssociation, packet: bytes | memoryview, now: float, chain: Chain | None
) -> tuple[Chain, int, bytes]:
    """Find the ESP header behind the extension headers and decrypt: (chain, next header,
    payload). Raises for a packet without ESP and for every unprotect failure."""
    if chain is None:
        chain = walk(packet)
    if chain.upper_protocol != ESP:
        raise BadNextHeader(f"no ESP header (next header {chain.upper_protocol})")
    next_header, payload = unprotect(sa, packet[chain.upper_offset :], now)
    return chain, next_header, payload


def transport_unprotect(
    sa: SecurityAssociation,
    packet: bytes | memoryview,
    now: float,
    chain: Chain | None = None,
) -> bytes:
    """The IPv6 `packet` with its ESP header/trailer removed and the chain restored."""
    chain, next_header, payload = _open_esp(sa, packet, now, chain)
    out = bytearray(packet[: chain.upper_offset])
    out[chain.upper_nh_field] = next_header
    out += payload
    _set_payload_length(out)
    return bytes(out)


def tunnel_protect(
    sa: SecurityAssociation,
    inner: bytes | memoryview,
    now: float,
    *,
    hop_limit: int = DEFAULT_HOP_LIMIT,
) -> bytes:
    """Outer IPv6 (SA src -> SA dst) + ESP carrying the whole inner IPv6 or IPv4 packet."""
    if not len(inner):
        raise MalformedEsp("empty inner packet")
    version = inner[0] >> 4
    if version == 6:
        next_header = IPV6_IN
        traffic_class = ((inner[0] & 0x0F) << 4) | (inner[1] >> 4)
    elif version == 4:
        next_header = IPV4_IN
        traffic_class = inner[1]
    else:
        raise BadNextHeader(f"inner packet has IP version {version}")
    esp = protect(sa, inner, next_header, now)
    if len(esp) > _MAX_PAYLOAD:
        raise MalformedEsp(f"IPv6 payload of {len(esp)} bytes needs a jumbogram")
    # RFC 4301 5.1.2.1 / RFC 6040: DSCP and ECN copied from the inner header.
    header = _OUTER.pack(
        (6 << 28) | (traffic_class << 20),
        len(esp),
        ESP,
        hop_limit,
        sa.src.packed,  # type: ignore[union-attr]  # tunnel SAs always have endpoints
        sa.dst.packed,  # type: ignore[union-attr]
    )
    return header + esp


def tunnel_unprotect(
    sa: SecurityAssociation,
    packet: bytes | memoryview,
    now: float,
    chain: Chain | None = None,
) -> bytes:
    """The inner packet (IPv6 or IPv4) of an ESP tunnel-mode packet."""
    _chain, next_header, inner = _open_esp(sa, packet, now, chain)
    if next_header not in (IPV6_IN, IPV4_IN):
        raise BadNextHeader(f"tunnel-mode SA carried next header {next_header}, not IP")
    if not inner or inner[0] >> 4 != (6 if next_header == IPV6_IN else 4):
        raise BadNextHeader("inner IP version does not match the ESP next header")
    return inner


def esp_spi(packet: bytes | memoryview, chain: Chain) -> int:
    """SPI of the ESP header that `chain` found; UnknownSpi if there is none."""
    if chain.upper_protocol != ESP:
        raise UnknownSpi("packet carries no ESP header")
    return peek_spi(packet[chain.upper_offset :])
