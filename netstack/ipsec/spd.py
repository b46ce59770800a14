"""Security Policy Database (RFC 4301 4.4.1): ordered policies with traffic selectors.

Selectors: source/destination prefixes (IPv6 or IPv4), next protocol, Mobility Header type
(RFC 3776 uses it to protect BU/BA only), source/destination port ranges. Actions: protect
(with the name of an SA in the SAD), bypass, discard.

Lookups do not scan every policy per packet: policies sit in buckets by (direction,
protocol) (a policy for "any protocol" in its own bucket), and results are cached by the
packet's selector tuple; any change to the SPD clears the cache.
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

PROTECT = "protect"
BYPASS = "bypass"
DISCARD = "discard"
ACTIONS = (PROTECT, BYPASS, DISCARD)
OUTBOUND = "out"
INBOUND = "in"
DIRECTIONS = (OUTBOUND, INBOUND)
IPPROTO_MH = 135
CACHE_LIMIT = 8192  # distinct flows; when full the cache is simply cleared (cheap, rare)

Network = IPv6Network | IPv4Network
# (src address bytes, dst address bytes, protocol, src port, dst port, MH type)
SelectorKey = tuple[bytes, bytes, int, int | None, int | None, int | None]

_ANY6 = IPv6Network("::/0")


@dataclass(frozen=True)
class Selector:
    src: Network = _ANY6
    dst: Network = _ANY6
    protocol: int | None = None  # None = any
    mh_type: int | None = None  # only with protocol 135
    src_ports: tuple[int, int] | None = None  # inclusive range, None = any
    dst_ports: tuple[int, int] | None = None
    # derived for fast matching
    _src: tuple[int, int, int] = field(init=False, repr=False, compare=False)
    _dst: tuple[int, int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mh_type is not None:
            if self.protocol is None:
                object.__setattr__(self, "protocol", IPPROTO_MH)
            elif self.protocol != IPPROTO_MH:
                raise ValueError("an MH type selector needs protocol 135 (Mobility Header)")
        object.__setattr__(self, "_src", _prefix(self.src))
        object.__setattr__(self, "_dst", _prefix(self.dst))

    def matches(self, key: SelectorKey) -> bool:
        src, dst, protocol, src_port, dst_port, mh_type = key
        if self.protocol is not None and protocol != self.protocol:
            return False
        if not (_in_prefix(src, self._src) and _in_prefix(dst, self._dst)):
            return False
        if self.mh_type is not None and mh_type != self.mh_type:
            return False
        if self.src_ports is not None and (
            src_port is None or not self.src_ports[0] <= src_port <= self.src_ports[1]
        ):
            return False
        return not (
            self.dst_ports is not None
            and (dst_port is None or not self.dst_ports[0] <= dst_port <= self.dst_ports[1])
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "src": str(self.src),
            "dst": str(self.dst),
            "protocol": self.protocol,
            "mh_type": self.mh_type,
            "src_ports": list(self.src_ports) if self.src_ports else None,
            "dst_ports": list(self.dst_ports) if self.dst_ports else None,
        }


def _prefix(network: Network) -> tuple[int, int, int]:
    net = ip_network(network) if isinstance(network, str) else network
    bits = net.max_prefixlen
    mask = ((1 << net.prefixlen) - 1) << (bits - net.prefixlen)
    return bits // 8, int(net.network_address), mask


def _in_prefix(address: bytes, prefix: tuple[int, int, int]) -> bool:
    length, network, mask = prefix
    if not mask:  # ::/0 or 0.0.0.0/0 still requires the same address family
        return len(address) == length
    return len(address) == length and int.from_bytes(address, "big") & mask == network


@dataclass(frozen=True)
class Policy:
    name: str
    direction: str
    action: str
    selector: Selector = field(default_factory=Selector)
    sa: str | None = None  # SA name in the SAD, for action "protect"
    priority: int = 100  # lower first; equal priorities keep insertion order

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"policy {self.name}: direction must be one of {DIRECTIONS}")
        if self.action not in ACTIONS:
            raise ValueError(f"policy {self.name}: action must be one of {ACTIONS}")
        if self.action == PROTECT and not self.sa:
            raise ValueError(f"policy {self.name}: action protect needs an SA")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "direction": self.direction,
            "action": self.action,
            "sa": self.sa,
            "priority": self.priority,
            "selector": self.selector.as_dict(),
        }


def _order_key(entry: tuple[int, int, Policy]) -> tuple[int, int]:
    return entry[0], entry[1]


class SecurityPolicyDatabase:
    def __init__(self) -> None:
        self._policies: dict[str, tuple[int, int, Policy]] = {}
        self._buckets: dict[tuple[str, int | None], list[tuple[int, int, Policy]]] = {}
        self._cache: dict[tuple[str, SelectorKey], Policy | None] = {}
        self._order = 0
        self.cache_hits = 0
        self.cache_misses = 0

    def add(self, policy: Policy) -> None:
        if policy.name in self._policies:
            raise ValueError(f"policy {policy.name!r} already exists")
        self._order += 1
        entry = (policy.priority, self._order, policy)
        self._policies[policy.name] = entry
        bucket = self._buckets.setdefault((policy.direction, policy.selector.protocol), [])
        bisect.insort(bucket, entry, key=_order_key)
        self._cache.clear()

    def remove(self, name: str) -> None:
        entry = self._policies.pop(name)
        self._buckets[(entry[2].direction, entry[2].selector.protocol)].remove(entry)
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._policies)

    def __iter__(self):  # noqa: ANN204 - iterator of Policy in priority order
        return (e[2] for e in sorted(self._policies.values(), key=_order_key))

    def lookup(self, direction: str, key: SelectorKey) -> Policy | None:
        """First matching policy for the packet's selector tuple, or None."""
        cache_key = (direction, key)
        try:
            policy = self._cache[cache_key]
        except KeyError:
            pass
        else:
            self.cache_hits += 1
            return policy
        self.cache_misses += 1
        policy = None
        specific = self._buckets.get((direction, key[2]), ())
        wildcard = self._buckets.get((direction, None), ())
        for _priority, _order, candidate in heapq.merge(specific, wildcard):
            if candidate.selector.matches(key):
                policy = candidate
                break
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[cache_key] = policy
        return policy

    def as_dict(self) -> dict[str, Any]:
        return {
            "policies": [p.as_dict() for p in self],
            "cache": {"entries": len(self._cache), "hits": self.cache_hits, "misses": self.cache_misses},
        }
