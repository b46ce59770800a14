"""The home agent's prefix table (RFC 3963 6.1-6.2; patent E7, claims 20-28).

Which mobile network prefixes each mobile router (by home address) may register, like UMIP's
`HaServedPrefix` plus `BindingAclPolicy ... (prefixes)`. The HomeAgent asks `check()` for a
BU with the R flag and gets either a refusal status or the prefixes to route:

- explicit mode (Mobile Network Prefix options present): every prefix must be a valid global
  unicast prefix (141 otherwise: link-local, multicast, loopback, unspecified, longer than
  /64 or shorter than /16, or overlapping the home link's prefix) and listed for this home
  address (142 otherwise);
- implicit mode (R flag, no option): the configured prefixes of this home address are
  registered; none configured -> 143 (RFC 3963 6.6: forwarding set-up failed).

The table itself is configuration; what is registered is in the binding cache, and
`as_dict()` joins both for `status`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from ipaddress import IPv6Address, IPv6Network

from netstack.mobility.binding_cache import BindingCache
from netstack.wire.mh import BindingAckStatus

MIN_PREFIX_LENGTH = 16
MAX_PREFIX_LENGTH = 64  # SLAAC needs a /64; longer prefixes cannot be a mobile network


def invalid_prefix_reason(prefix: IPv6Network, home_prefix: IPv6Network | None = None) -> str | None:
    """Why `prefix` cannot be a mobile network prefix (status 141), or None when it can."""
    address = prefix.network_address
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_loopback or address.is_unspecified:
        return "not unicast"
    if address.is_site_local:
        return "site-local"
    if not MIN_PREFIX_LENGTH <= prefix.prefixlen <= MAX_PREFIX_LENGTH:
        return f"length /{prefix.prefixlen}"
    if home_prefix is not None and prefix.overlaps(home_prefix):
        return "overlaps the home prefix"
    return None


class PrefixTable:
    """Home address -> the mobile network prefixes it may register."""

    def __init__(
        self,
        served: Mapping[IPv6Address, Iterable[IPv6Network]] | None = None,
        *,
        home_prefix: IPv6Network | None = None,
    ) -> None:
        self.home_prefix = home_prefix
        self._served: dict[IPv6Address, tuple[IPv6Network, ...]] = {}
        for home_address, prefixes in (served or {}).items():
            self.add(home_address, prefixes)
        self.counters: dict[str, int] = {}

    def add(self, home_address: IPv6Address, prefixes: Iterable[IPv6Network]) -> None:
        """Allow `home_address` to register `prefixes` (a bad prefix is a config error)."""
        checked = []
        for prefix in prefixes:
            reason = invalid_prefix_reason(prefix, self.home_prefix)
            if reason is not None:
                raise ValueError(f"mobile network prefix {prefix} for {home_address}: {reason}")
            checked.append(prefix)
        self._served[home_address] = tuple(dict.fromkeys(self._served.get(home_address, ()) + tuple(checked)))

    def served(self, home_address: IPv6Address) -> tuple[IPv6Network, ...]:
        return self._served.get(home_address, ())

    def __len__(self) -> int:
        return sum(len(p) for p in self._served.values())

    def check(
        self,
        home_address: IPv6Address,
        requested: tuple[IPv6Network, ...],
        *,
        count: bool = True,
    ) -> tuple[int | None, tuple[IPv6Network, ...]]:
        """(refusal status or None, prefixes to route) for a registering BU with R set."""
        if not count:
            return self._check(home_address, requested, lambda _key: None)
        return self._check(home_address, requested, self._count)

    def _check(
        self,
        home_address: IPv6Address,
        requested: tuple[IPv6Network, ...],
        count: Callable[[str], None],
    ) -> tuple[int | None, tuple[IPv6Network, ...]]:
        allowed = self._served.get(home_address, ())
        if not requested:
            if not allowed:
                count("implicit_without_prefix")
                return BindingAckStatus.FORWARDING_SETUP_FAILED, ()
            count("implicit_registrations")
            return None, allowed
        for prefix in requested:
            if invalid_prefix_reason(prefix, self.home_prefix) is not None:
                count("invalid_prefix")
                return BindingAckStatus.INVALID_PREFIX, ()
        for prefix in requested:
            if prefix not in allowed:
                count("prefix_not_authorised")
                return BindingAckStatus.NOT_AUTHORIZED_FOR_PREFIX, ()
        count("explicit_registrations")
        return None, tuple(dict.fromkeys(requested))

    def as_dict(self, cache: BindingCache) -> list[dict[str, object]]:
        """One row per configured prefix, with its registration state from the binding cache."""
        rows: list[dict[str, object]] = []
        for home_address, prefixes in self._served.items():
            entry = cache.get(home_address)
            registered = entry.prefixes if entry is not None and entry.mobile_router else ()
            for prefix in prefixes:
                bound = prefix in registered
                rows.append({
                    "home_address": str(home_address),
                    "prefix": str(prefix),
                    "registered": bound,
                    "care_of_address": str(entry.care_of_address) if bound and entry else None,
                })
        return rows

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1
