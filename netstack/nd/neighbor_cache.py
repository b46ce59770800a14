"""Neighbour cache with the RFC 4861 7.3.2 reachability states.

A simplified but faithful machine: INCOMPLETE (multicast NS every RetransTimer, up to
MAX_MULTICAST_SOLICIT, packets held meanwhile), REACHABLE (for ReachableTime after a
confirmation), STALE (unconfirmed), DELAY (a packet was sent while STALE: wait
DELAY_FIRST_PROBE_TIME for upper-layer confirmation), PROBE (unicast NS every RetransTimer,
up to MAX_UNICAST_SOLICIT, then the entry is deleted). The cache does not build packets: it
returns actions (`Transmit`, `Solicit`) that the NdHost turns into frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv6Address

from netstack.nd.config import NdConfig
from netstack.wire.ethernet import mac_to_str


class NeighborState(StrEnum):
    INCOMPLETE = "INCOMPLETE"
    REACHABLE = "REACHABLE"
    STALE = "STALE"
    DELAY = "DELAY"
    PROBE = "PROBE"


@dataclass(frozen=True)
class Transmit:
    """Send this IPv6 packet in a frame to dst_mac."""

    dst_mac: bytes
    packet: bytes


@dataclass(frozen=True)
class Solicit:
    """Send an NS for target: multicast to its solicited-node group when dst_mac is None
    (address resolution), unicast to dst_mac otherwise (NUD probe)."""

    target: IPv6Address
    dst_mac: bytes | None


NeighborAction = Transmit | Solicit


@dataclass
class NeighborEntry:
    address: IPv6Address
    state: NeighborState
    mac: bytes | None = None
    is_router: bool = False
    probes_sent: int = 0
    timer_at: float | None = None
    queue: deque[bytes] = field(default_factory=deque)

    def as_dict(self) -> dict[str, object]:
        return {
            "address": str(self.address),
            "state": str(self.state),
            "mac": None if self.mac is None else mac_to_str(self.mac),
            "router": self.is_router,
            "queued": len(self.queue),
        }


class NeighborCache:
    """`reachable_time` and `retrans_timer` are set by the owner (they change with RAs)."""

    def __init__(self, config: NdConfig, counters: dict[str, int]) -> None:
        self.config = config
        self.counters = counters
        self.reachable_time = config.reachable_time
        self.retrans_timer = config.retrans_timer
        self.entries: dict[IPv6Address, NeighborEntry] = {}

    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def get(self, address: IPv6Address) -> NeighborEntry | None:
        return self.entries.get(address)

    # ------------------------------------------------------------ outgoing packets

    def send(self, next_hop: IPv6Address, packet: bytes, now: float) -> list[NeighborAction]:
        """RFC 4861 7.2.2 / 7.3.3: send to next_hop, resolving it first when needed."""
        entry = self.entries.get(next_hop)
        if entry is None:
            entry = NeighborEntry(next_hop, NeighborState.INCOMPLETE, probes_sent=1)
            entry.timer_at = now + self.retrans_timer
            entry.queue.append(packet)
            self.entries[next_hop] = entry
            return [Solicit(next_hop, None)]
        if entry.state is NeighborState.INCOMPLETE:
            if len(entry.queue) >= self.config.max_queued_packets:
                # RFC 4861 7.2.2: the new arrival replaces the oldest queued packet.
                entry.queue.popleft()
                self._count("nd_queue_overflow")
            entry.queue.append(packet)
            return []
        assert entry.mac is not None
        if entry.state is NeighborState.STALE:
            self._enter_delay(entry, now)
        return [Transmit(entry.mac, packet)]

    def _enter_delay(self, entry: NeighborEntry, now: float) -> None:
        entry.state = NeighborState.DELAY
        entry.timer_at = now + self.config.delay_first_probe_time

    def _enter_reachable(self, entry: NeighborEntry, now: float) -> None:
        entry.state = NeighborState.REACHABLE
        entry.probes_sent = 0
        entry.timer_at = now + self.reachable_time

    def _enter_stale(self, entry: NeighborEntry) -> None:
        entry.state = NeighborState.STALE
        entry.probes_sent = 0
        entry.timer_at = None

    def _flush_queue(self, entry: NeighborEntry, now: float) -> list[NeighborAction]:
        assert entry.mac is not None
        actions: list[NeighborAction] = [Transmit(entry.mac, p) for p in entry.queue]
        entry.queue.clear()
        if actions and entry.state is NeighborState.STALE:
            self._enter_delay(entry, now)
        return actions

    # ------------------------------------------------------------ incoming information

    def learn(
        self, address: IPv6Address, mac: bytes, now: float, *, is_router: bool | None = None
    ) -> list[NeighborAction]:
        """A source link-layer address option in an NS, RS or RA (RFC 4861 7.2.3, 6.3.4):
        create a STALE entry, or mark an entry STALE when the address changed."""
        entry = self.entries.get(address)
        actions: list[NeighborAction] = []
        if entry is None:
            entry = NeighborEntry(address, NeighborState.STALE, mac)
            self.entries[address] = entry
        elif entry.state is NeighborState.INCOMPLETE:
            entry.mac = mac
            self._enter_stale(entry)
            actions = self._flush_queue(entry, now)
        elif entry.mac != mac:
            entry.mac = mac
            self._enter_stale(entry)
        if is_router is not None:
            entry.is_router = is_router
        return actions

    def advertisement(
        self,
        target: IPv6Address,
        tlla: bytes | None,
        *,
        solicited: bool,
        override: bool,
        router: bool,
        now: float,
    ) -> tuple[list[NeighborAction], bool]:
        """RFC 4861 7.2.5. Returns (actions, router_flag_cleared)."""
        entry = self.entries.get(target)
        if entry is None:
            return [], False  # unsolicited information about a stranger: ignore
        if entry.state is NeighborState.INCOMPLETE:
            if tlla is None:
                return [], False
            entry.mac = tlla
            entry.is_router = router
            if solicited:
                self._enter_reachable(entry, now)
            else:
                self._enter_stale(entry)
            return self._flush_queue(entry, now), False
        changed = tlla is not None and tlla != entry.mac
        if not override and changed:
            if entry.state is NeighborState.REACHABLE:
                self._enter_stale(entry)
            return [], False
        if tlla is not None:
            entry.mac = tlla
        if solicited:
            self._enter_reachable(entry, now)
        elif changed:
            self._enter_stale(entry)
        router_cleared = entry.is_router and not router
        entry.is_router = router
        return [], router_cleared

    def confirm(self, address: IPv6Address, now: float) -> None:
        """Upper-layer reachability confirmation (RFC 4861 7.3.1), e.g. TCP progress."""
        entry = self.entries.get(address)
        if entry is not None and entry.mac is not None:
            self._enter_reachable(entry, now)

    # ------------------------------------------------------------ timers

    def next_timer(self) -> float | None:
        return min((e.timer_at for e in self.entries.values() if e.timer_at is not None), default=None)

    def handle_timer(self, now: float) -> list[NeighborAction]:
        actions: list[NeighborAction] = []
        for entry in list(self.entries.values()):
            if entry.timer_at is None or entry.timer_at > now:
                continue
            if entry.state is NeighborState.INCOMPLETE:
                if entry.probes_sent < self.config.max_multicast_solicit:
                    entry.probes_sent += 1
                    entry.timer_at = now + self.retrans_timer
                    actions.append(Solicit(entry.address, None))
                else:
                    self._count("nd_resolution_failed")
                    self._count("nd_dropped_packets", len(entry.queue))
                    del self.entries[entry.address]
            elif entry.state is NeighborState.REACHABLE:
                self._enter_stale(entry)
            elif entry.state is NeighborState.DELAY:
                entry.state = NeighborState.PROBE
                entry.probes_sent = 1
                entry.timer_at = now + self.retrans_timer
                actions.append(Solicit(entry.address, entry.mac))
            elif entry.state is NeighborState.PROBE:
                if entry.probes_sent < self.config.max_unicast_solicit:
                    entry.probes_sent += 1
                    entry.timer_at = now + self.retrans_timer
                    actions.append(Solicit(entry.address, entry.mac))
                else:
                    self._count("nd_unreachable")
                    del self.entries[entry.address]
        return actions

    # ------------------------------------------------------------ link changes

    def remove(self, address: IPv6Address) -> None:
        entry = self.entries.pop(address, None)
        if entry is not None and entry.queue:
            self._count("nd_dropped_packets", len(entry.queue))

    def flush(self) -> None:
        for address in list(self.entries):
            self.remove(address)

    def mark_all_stale(self) -> None:
        """After a link change nothing is known to be reachable; unresolved entries go."""
        for entry in list(self.entries.values()):
            if entry.state is NeighborState.INCOMPLETE:
                self.remove(entry.address)
            else:
                self._enter_stale(entry)

    def as_list(self) -> list[dict[str, object]]:
        return [e.as_dict() for e in self.entries.values()]
