"""The home agent's Binding Cache (RFC 6275 9.1, 10.1; RFC 3963 prefixes for NEMO).

Entries are keyed by home address. The hot path asks `lookup(dst16)` with the 16 packed bytes
of a packet's destination and gets the 16 packed bytes of the care-of address to tunnel to
(or None); mobile network prefixes registered by a mobile router match too (longest first).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network


@dataclass
class BindingCacheEntry:
    home_address: IPv6Address
    care_of_address: IPv6Address
    lifetime: int
    sequence: int
    expires_at: float
    mobile_router: bool = False
    prefixes: tuple[IPv6Network, ...] = ()

    def remaining_lifetime(self, now: float) -> int:
        return max(0, int(self.expires_at - now))

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "home_address": str(self.home_address),
            "care_of_address": str(self.care_of_address),
            "lifetime": self.remaining_lifetime(now),
            "granted_lifetime": self.lifetime,
            "sequence": self.sequence,
            "mobile_router": self.mobile_router,
            "prefixes": [str(p) for p in self.prefixes],
        }


class BindingCache:
    """Home address → binding, with a packed-bytes route index and an expiry heap."""

    def __init__(self) -> None:
        self._entries: dict[IPv6Address, BindingCacheEntry] = {}
        self._routes: dict[bytes, bytes] = {}  # HoA packed → CoA packed
        # prefix length → {destination >> (128 - length): CoA packed}, longest length first
        self._prefix_routes: dict[int, dict[int, bytes]] = {}
        self._prefix_lengths: list[int] = []
        self._expiry: list[tuple[float, bytes]] = []  # lazy heap, checked against entries

    def get(self, home_address: IPv6Address) -> BindingCacheEntry | None:
        return self._entries.get(home_address)

    def put(self, entry: BindingCacheEntry) -> None:
        """Add or replace the binding for entry.home_address."""
        old = self._entries.get(entry.home_address)
        if old is not None:
            self._unroute_prefixes(old)
        self._entries[entry.home_address] = entry
        coa = entry.care_of_address.packed
        self._routes[entry.home_address.packed] = coa
        for prefix in entry.prefixes:
            table = self._prefix_routes.setdefault(prefix.prefixlen, {})
            table[int(prefix.network_address) >> (128 - prefix.prefixlen)] = coa
        self._refresh_prefix_lengths()
        heapq.heappush(self._expiry, (entry.expires_at, entry.home_address.packed))

    def remove(self, home_address: IPv6Address) -> BindingCacheEntry | None:
        entry = self._entries.pop(home_address, None)
        if entry is not None:
            self._routes.pop(home_address.packed, None)
            self._unroute_prefixes(entry)
            self._refresh_prefix_lengths()
        return entry

    def next_expiry(self) -> float | None:
        self._drop_stale_heap_heads()
        return self._expiry[0][0] if self._expiry else None

    def pop_expired(self, now: float) -> list[BindingCacheEntry]:
        """Remove and return the bindings whose lifetime ended at or before now."""
        expired: list[BindingCacheEntry] = []
        while True:
            self._drop_stale_heap_heads()
            if not self._expiry or self._expiry[0][0] > now:
                return expired
            _, packed = heapq.heappop(self._expiry)
            entry = self.remove(IPv6Address(packed))
            if entry is not None:
                expired.append(entry)

    def lookup(self, destination: bytes) -> bytes | None:
        """Hot path: 16-byte destination → 16-byte care-of address, or None."""
        coa = self._routes.get(destination)
        if coa is not None or not self._prefix_lengths:
            return coa
        value = int.from_bytes(destination, "big")
        for length in self._prefix_lengths:
            coa = self._prefix_routes[length].get(value >> (128 - length))
            if coa is not None:
                return coa
        return None

    def __iter__(self) -> Iterator[BindingCacheEntry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, home_address: object) -> bool:
        return home_address in self._entries

    def as_dict(self, now: float) -> list[dict[str, object]]:
        return [entry.as_dict(now) for entry in self._entries.values()]

    # ------------------------------------------------------------ internals

    def _drop_stale_heap_heads(self) -> None:
        # A heap item is stale when its binding was removed or re-registered since.
        while self._expiry:
            expires_at, packed = self._expiry[0]
            entry = self._entries.get(IPv6Address(packed))
            if entry is not None and entry.expires_at == expires_at:
                return
            heapq.heappop(self._expiry)

    def _unroute_prefixes(self, entry: BindingCacheEntry) -> None:
        for prefix in entry.prefixes:
            table = self._prefix_routes.get(prefix.prefixlen)
            if table is None:
                continue
            table.pop(int(prefix.network_address) >> (128 - prefix.prefixlen), None)
            if not table:
                del self._prefix_routes[prefix.prefixlen]

    def _refresh_prefix_lengths(self) -> None:
        self._prefix_lengths = sorted(self._prefix_routes, reverse=True)
