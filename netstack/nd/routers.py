"""Default Router List and Prefix List (RFC 4861 5.1, 6.3.4, 6.3.5)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network


@dataclass
class RouterEntry:
    address: IPv6Address
    expires_at: float  # math.inf for a static gateway
    static: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "address": str(self.address),
            "expires_at": None if math.isinf(self.expires_at) else self.expires_at,
            "static": self.static,
        }


@dataclass
class PrefixEntry:
    """An on-link prefix (RFC 4861 6.3.4)."""

    prefix: IPv6Network
    expires_at: float
    router: IPv6Address | None = None  # who advertised it (None: static)

    def as_dict(self) -> dict[str, object]:
        return {
            "prefix": str(self.prefix),
            "expires_at": None if math.isinf(self.expires_at) else self.expires_at,
            "router": None if self.router is None else str(self.router),
        }


class DefaultRouterList:
    """Routers in the order first heard from; RFC 4861 6.3.6 selection is done by NdHost,
    which knows the neighbour cache."""

    def __init__(self) -> None:
        self.entries: dict[IPv6Address, RouterEntry] = {}

    def update(self, router: IPv6Address, lifetime: int, now: float) -> None:
        """An RA's Router Lifetime: 0 removes the router, anything else (re)sets its timeout."""
        entry = self.entries.get(router)
        if entry is not None and entry.static:
            return
        if lifetime == 0:
            self.entries.pop(router, None)
        elif entry is None:
            self.entries[router] = RouterEntry(router, now + lifetime)
        else:
            entry.expires_at = now + lifetime

    def add_static(self, router: IPv6Address) -> None:
        self.entries[router] = RouterEntry(router, math.inf, static=True)

    def remove(self, router: IPv6Address) -> None:
        self.entries.pop(router, None)

    def expire(self, now: float) -> list[IPv6Address]:
        gone = [a for a, e in self.entries.items() if e.expires_at <= now]
        for address in gone:
            del self.entries[address]
        return gone

    def flush_learned(self) -> None:
        self.entries = {a: e for a, e in self.entries.items() if e.static}

    def next_expiry(self) -> float | None:
        finite = [e.expires_at for e in self.entries.values() if not math.isinf(e.expires_at)]
        return min(finite, default=None)

    def __contains__(self, router: object) -> bool:
        return router in self.entries

    def __iter__(self) -> Iterator[IPv6Address]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


class PrefixList:
    def __init__(self) -> None:
        self.entries: dict[IPv6Network, PrefixEntry] = {}

    def update(
        self, prefix: IPv6Network, until: float, router: IPv6Address | None, now: float
    ) -> None:
        """A PIO with the L flag (RFC 4861 6.3.4): valid lifetime 0 removes the prefix."""
        entry = self.entries.get(prefix)
        if entry is not None and entry.router is None:
            return  # static prefixes are not touched by RAs
        if until <= now:
            self.entries.pop(prefix, None)
        elif entry is None:
            self.entries[prefix] = PrefixEntry(prefix, until, router)
        else:
            entry.expires_at = until
            entry.router = router

    def add_static(self, prefix: IPv6Network) -> None:
        self.entries[prefix] = PrefixEntry(prefix, math.inf, None)

    def remove(self, prefix: IPv6Network) -> None:
        self.entries.pop(prefix, None)

    def is_on_link(self, address: IPv6Address) -> bool:
        return any(address in prefix for prefix in self.entries)

    def expire(self, now: float) -> list[IPv6Network]:
        gone = [p for p, e in self.entries.items() if e.expires_at <= now]
        for prefix in gone:
            del self.entries[prefix]
        return gone

    def flush_learned(self) -> None:
        self.entries = {p: e for p, e in self.entries.items() if e.router is None}

    def next_expiry(self) -> float | None:
        finite = [e.expires_at for e in self.entries.values() if not math.isinf(e.expires_at)]
        return min(finite, default=None)

    def __contains__(self, prefix: object) -> bool:
        return prefix in self.entries

    def __len__(self) -> int:
        return len(self.entries)
