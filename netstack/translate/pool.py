"""The virtual IPv4 address pool handed out to IPv6 peers and home addresses (table 230)."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network

# RFC 2544 benchmarking space: never routed on the Internet, so it cannot collide with a
# real IPv4 destination the host application might want to reach.
DEFAULT_POOL_NETWORK = IPv4Network("198.18.0.0/15")
# The first host address is the translator's own address on the host-facing link.
DEFAULT_POOL_EXCLUDE = (IPv4Address("198.18.0.1"),)


class IPv4Pool:
    """Free-list allocator over one IPv4 network (network/broadcast and `exclude` never given).

    Allocation walks the network in order with a cursor and then reuses released addresses,
    so a fresh pool hands out predictable addresses and never scans the whole range.
    """

    def __init__(
        self,
        network: IPv4Network | str = DEFAULT_POOL_NETWORK,
        exclude: Iterable[IPv4Address | str] = DEFAULT_POOL_EXCLUDE,
    ) -> None:
        self.network = IPv4Network(network)
        self.exclude = frozenset(IPv4Address(a).packed for a in exclude)
        first = int(self.network.network_address)
        last = int(self.network.broadcast_address)
        if self.network.prefixlen < 31:  # /31 and /32 have no network/broadcast address
            first += 1
            last -= 1
        self._first = first
        self._last = last
        self._cursor = first
        self._released: list[bytes] = []
        self._in_use: set[bytes] = set()

    def __contains__(self, ipv4: bytes) -> bool:
        value = int.from_bytes(ipv4, "big")
        return self._first <= value <= self._last and ipv4 not in self.exclude

    @property
    def size(self) -> int:
        """How many addresses the pool can hand out."""
        excluded = sum(1 for a in self.exclude if self._first <= int.from_bytes(a, "big") <= self._last)
        return self._last - self._first + 1 - excluded

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def allocate(self) -> bytes | None:
        """A free address (4 bytes), or None when the pool is exhausted."""
        while self._released:
            candidate = self._released.pop()
            if candidate not in self._in_use:
                self._in_use.add(candidate)
                return candidate
        while self._cursor <= self._last:
            candidate = self._cursor.to_bytes(4, "big")
            self._cursor += 1
            if candidate in self.exclude or candidate in self._in_use:
                continue
            self._in_use.add(candidate)
            return candidate
        return None

    def reserve(self, ipv4: bytes) -> bool:
        """Mark a specific address used (static entries, reload). False if not in the pool."""
        if ipv4 not in self:
            return False
        self._in_use.add(ipv4)
        return True

    def release(self, ipv4: bytes) -> None:
        if ipv4 in self._in_use:
            self._in_use.discard(ipv4)
            if int.from_bytes(ipv4, "big") < self._cursor:
                self._released.append(ipv4)

