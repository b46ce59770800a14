"""RFC 6052 IPv4-embedded IPv6 addresses (section 2.2), on packed bytes.

The IPv4 address is written right after the prefix, skipping octet 8 (bits 64-71, the
"u" octet, which must be zero); the suffix is zero. Prefix lengths 32, 40, 48, 56, 64 and 96
are the only ones the RFC allows.
"""

from __future__ import annotations

from ipaddress import IPv6Network

WELL_KNOWN_PREFIX = IPv6Network("64:ff9b::/96")
ALLOWED_PREFIX_LENGTHS = (32, 40, 48, 56, 64, 96)
_U_OCTET = 8


def _v4_positions(prefix_len: int) -> tuple[int, int, int, int]:
    """Indices in the 16-octet address that carry the 4 IPv4 octets, skipping the u octet."""
    start = prefix_len // 8
    positions = []
    index = start
    while len(positions) < 4:
        if index != _U_OCTET:
            positions.append(index)
        index += 1
    return tuple(positions)  # type: ignore[return-value]


class Rfc6052Prefix:
    """One IPv4-converted prefix; `embed`/`extract` work on packed 4/16-byte addresses."""

    __slots__ = ("network", "_prefix", "_positions", "_mask")

    def __init__(self, network: IPv6Network | str = WELL_KNOWN_PREFIX) -> None:
        network = IPv6Network(network)
        if network.prefixlen not in ALLOWED_PREFIX_LENGTHS:
            raise ValueError(
                f"RFC 6052 prefix length must be one of {ALLOWED_PREFIX_LENGTHS}, "
                f"not {network.prefixlen}"
            )
        if network.prefixlen < 96 and network.network_address.packed[_U_OCTET] != 0:
            raise ValueError("RFC 6052 2.2: bits 64-71 of the prefix must be zero")
        self.network = network
        self._prefix = network.network_address.packed[: network.prefixlen // 8]
        self._positions = _v4_positions(network.prefixlen)
        self._mask = network.prefixlen // 8

    @property
    def prefix_len(self) -> int:
        return self.network.prefixlen

    def embed(self, ipv4: bytes) -> bytes:
        """The IPv4-embedded IPv6 address (16 bytes) for a 4-byte IPv4 address."""
        out = bytearray(16)
        out[: self._mask] = self._prefix
        for octet, index in zip(ipv4, self._positions, strict=True):
            out[index] = octet
        return bytes(out)

    def contains(self, ipv6: bytes) -> bool:
        return ipv6[: self._mask] == self._prefix

    def extract(self, ipv6: bytes) -> bytes | None:
        """The embedded IPv4 address, or None when `ipv6` is outside the prefix."""
        if ipv6[: self._mask] != self._prefix:
            return None
        return bytes(ipv6[index] for index in self._positions)

    def __repr__(self) -> str:
        return f"Rfc6052Prefix({str(self.network)!r})"
