"""Translation table 230: IPv6 address <-> virtual IPv4 address, with a lifetime.

Rows come from three places:
  * home addresses, bound when a Binding Ack is accepted (`bind_home_address`), so the host
    OS sees its own HoA as a stable virtual IPv4 address;
  * dynamic rows: an IPv6 peer we have not seen gets a pool address (step 511), and a host
    packet to a pool address maps back to that peer (step 514);
  * static rows (RFC 7757 Explicit Address Mappings), which never expire.
IPv4 destinations outside the pool are not stored: they map to IPv6 through the RFC 6052
prefix (default 64:ff9b::/96), and sources inside that prefix map back the same way.

Rows expire after `lifetime` seconds without traffic (a packet refreshes the row). An expired
row is not deleted at once: it keeps its address until the pool runs dry, and then the least
recently used expired row is reused. With no expired row left, allocation returns None and
the caller answers with ICMP "administratively prohibited".

Persistence stores each row's *remaining* lifetime and idle time relative to the `now` given
to `to_json`, and `from_json` rebases them on its own `now`. The daemon's clock is monotonic
and restarts with the process, so wall-clock timestamps would be meaningless after a reboot;
the cost is that downtime does not age the rows (a row saved with 100 s left has 100 s left
after reload), which is what we want for the host's open sessions.

Hot path: `lookup_v4`, `lookup_or_allocate_v6` are dict lookups keyed by packed bytes.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

from netstack.translate.pool import DEFAULT_POOL_EXCLUDE, DEFAULT_POOL_NETWORK, IPv4Pool
from netstack.translate.rfc6052 import WELL_KNOWN_PREFIX, Rfc6052Prefix
from netstack.wire.errors import ParseError

DEFAULT_IDLE_TIMEOUT = 300.0
STATE_FORMAT_VERSION = 1


class BadStateFile(ParseError):
    reason = "bad_state_file"


def _packed6(address: bytes | IPv6Address | str) -> bytes:
    if isinstance(address, bytes) and len(address) == 16:
        return address
    return IPv6Address(address).packed


def _packed4(address: bytes | IPv4Address | str) -> bytes:
    if isinstance(address, bytes) and len(address) == 4:
        return address
    return IPv4Address(address).packed


@dataclass(slots=True)
class TranslationEntry:
    """One row of table 230."""

    ipv6: bytes
    ipv4: bytes
    lifetime: float
    expires_at: float
    last_used: float
    static: bool = False
    home: bool = False
    packets: int = 0
    bytes: int = 0

    def expired(self, now: float) -> bool:
        return not self.static and now >= self.expires_at

    def as_dict(self, now: float) -> dict:
        return {
            "ipv6": str(IPv6Address(self.ipv6)),
            "ipv4": str(IPv4Address(self.ipv4)),
            "lifetime": self.lifetime,
            "remaining": None if self.static else max(0.0, self.expires_at - now),
            "idle": max(0.0, now - self.last_used),
            "static": self.static,
            "home": self.home,
            "packets": self.packets,
            "bytes": self.bytes,
        }


class TranslationTable:
    """Table 230 (IPv6 address, IPv4 address, lifetime) with its virtual IPv4 pool."""

    def __init__(
        self,
        pool: IPv4Pool | None = None,
        *,
        prefix: Rfc6052Prefix | IPv6Network | str = WELL_KNOWN_PREFIX,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.pool = pool if pool is not None else IPv4Pool()
        self.prefix = prefix if isinstance(prefix, Rfc6052Prefix) else Rfc6052Prefix(prefix)
        self.idle_timeout = idle_timeout
        self._by_v6: dict[bytes, TranslationEntry] = {}
        self._by_v4: dict[bytes, TranslationEntry] = {}
        # Non-static rows, least recently used first: exhaustion reuses from the front.
        self._lru: OrderedDict[bytes, TranslationEntry] = OrderedDict()
        self.counters: dict[str, int] = {
            "allocated": 0,
            "reused_expired": 0,
            "pool_exhausted": 0,
            "home_bound": 0,
        }
        # Told of every row added (True) or removed (False): the kernel fast path's maps.
        self.on_change: Callable[[TranslationEntry, bool], None] | None = None

    # -- hot path -------------------------------------------------------------------------

    def lookup_v4(self, ipv4: bytes, now: float, size: int = 0) -> bytes | None:
        """IPv6 address for a virtual IPv4 address in the table (refreshes the row)."""
        entry = self._by_v4.get(ipv4)
        if entry is None:
            return None
        self._touch(entry, now, size)
        return entry.ipv6

    def lookup_or_allocate_v6(self, ipv6: bytes, now: float, size: int = 0) -> bytes | None:
        """Virtual IPv4 for an IPv6 address, allocating a pool address for a new one (511)."""
        entry = self._by_v6.get(ipv6)
        if entry is not None:
            self._touch(entry, now, size)
            return entry.ipv4
        entry = self._allocate(ipv6, now, self.idle_timeout)
        if entry is None:
            return None
        self._touch(entry, now, size)
        return entry.ipv4

    def v4_to_v6(self, ipv4: bytes, now: float, size: int = 0) -> bytes | None:
        """Destination mapping for a host packet: table row, else RFC 6052 outside the pool.

        A pool address with no row is unknown (None): it must not leak into the prefix.
        """
        entry = self._by_v4.get(ipv4)
        if entry is not None:
            self._touch(entry, now, size)
            return entry.ipv6
        if ipv4 in self.pool:
            return None
        return self.prefix.embed(ipv4)

    def v6_to_v4(self, ipv6: bytes, now: float, size: int = 0) -> bytes | None:
        """Source mapping for a packet to the host: table row, RFC 6052 prefix, else allocate."""
        entry = self._by_v6.get(ipv6)
        if entry is not None:
            self._touch(entry, now, size)
            return entry.ipv4
        embedded = self.prefix.extract(ipv6)
        if embedded is not None:
            return embedded
        return self.lookup_or_allocate_v6(ipv6, now, size)

    def touch(self, entry: TranslationEntry, now: float, packets: int, size: int) -> None:
        """Traffic carried elsewhere (the kernel fast path's counters): refresh the row."""
        entry.packets += packets - 1
        self._touch(entry, now, size)

    def _touch(self, entry: TranslationEntry, now: float, size: int) -> None:
        entry.packets += 1
        entry.bytes += size
        entry.last_used = now
        if not entry.static:
            refreshed = now + entry.lifetime
            if refreshed > entry.expires_at:
                entry.expires_at = refreshed
            self._lru.move_to_end(entry.ipv6)

    # -- control path ---------------------------------------------------------------------

    def bind_home_address(
        self,
        hoa: bytes | IPv6Address,
        now: float,
        lifetime: float,
        preferred_ipv4: bytes | None = None,
    ) -> bytes | None:
        """Map a home address on BA accept; a later BA refreshes the row and keeps its IPv4.

        `preferred_ipv4` (the host interface's configured address, interface 19) is taken when
        it is free, so the host keeps one address across restarts of the table.
        """
        hoa = _packed6(hoa)
        entry = self._by_v6.get(hoa)
        if entry is None and preferred_ipv4 is not None and preferred_ipv4 not in self._by_v4:
            self.pool.reserve(preferred_ipv4)
            self.counters["allocated"] += 1
            entry = TranslationEntry(hoa, preferred_ipv4, lifetime, now + lifetime, now)
            self._insert(entry)
        if entry is None:
            entry = self._allocate(hoa, now, lifetime)
            if entry is None:
                return None
        entry.home = True
        self.counters["home_bound"] += 1
        if not entry.static:
            entry.lifetime = lifetime
            entry.expires_at = now + lifetime
            entry.last_used = now
            self._lru.move_to_end(hoa)
        return entry.ipv4

    def add_static(self, ipv6: bytes | IPv6Address | str, ipv4: bytes | IPv4Address | str, now: float) -> TranslationEntry:
        """An RFC 7757 EAM row (one address pair); replaces rows that used either address."""
        ipv6 = _packed6(ipv6)
        ipv4 = _packed4(ipv4)
        for old in (self._by_v6.get(ipv6), self._by_v4.get(ipv4)):
            if old is not None:
                self._remove(old)
        self.pool.reserve(ipv4)  # no-op outside the pool
        entry = TranslationEntry(ipv6, ipv4, 0.0, float("inf"), now, static=True)
        self._by_v6[ipv6] = entry
        self._by_v4[ipv4] = entry
        if self.on_change is not None:
            self.on_change(entry, True)
        return entry

    def remove(self, ipv6: bytes | IPv6Address) -> bool:
        entry = self._by_v6.get(_packed6(ipv6))
        if entry is None:
            return False
        self._remove(entry)
        return True

    def purge_expired(self, now: float) -> list[TranslationEntry]:
        """Delete every expired row and return its address to the pool."""
        gone = [e for e in self._lru.values() if e.expired(now)]
        for entry in gone:
            self._remove(entry)
        return gone

    def adopt(self, entries: Iterable[TranslationEntry]) -> int:
        """Take rows loaded from a state file into this table (its pool and prefix stay).

        A row whose IPv6 or IPv4 address is already used here is skipped. Returns the count.
        """
        taken = 0
        for entry in entries:
            if entry.ipv6 in self._by_v6 or entry.ipv4 in self._by_v4:
                continue
            self.pool.reserve(entry.ipv4)
            self._insert(entry)
            taken += 1
        return taken

    def get(self, ipv6: bytes) -> TranslationEntry | None:
        return self._by_v6.get(ipv6)

    def get_by_v4(self, ipv4: bytes) -> TranslationEntry | None:
        return self._by_v4.get(ipv4)

    def __len__(self) -> int:
        return len(self._by_v6)

    def __iter__(self) -> Iterator[TranslationEntry]:
        return iter(list(self._by_v6.values()))

    def as_dict(self, now: float) -> dict:
        return {
            "pool": str(self.pool.network),
            "pool_in_use": self.pool.in_use,
            "prefix": str(self.prefix.network),
            "entries": [e.as_dict(now) for e in self._by_v6.values()],
            "counters": dict(self.counters),
        }

    # -- allocation -----------------------------------------------------------------------

    def _allocate(self, ipv6: bytes, now: float, lifetime: float) -> TranslationEntry | None:
        ipv4 = self.pool.allocate()
        if ipv4 is None:
            victim = self._oldest_expired(now)
            if victim is None:
                self.counters["pool_exhausted"] += 1
                return None
            self._remove(victim)
            ipv4 = victim.ipv4
            self.pool.reserve(ipv4)
            self.counters["reused_expired"] += 1
        self.counters["allocated"] += 1
        entry = TranslationEntry(ipv6, ipv4, lifetime, now + lifetime, now)
        self._insert(entry)
        return entry

    def _oldest_expired(self, now: float) -> TranslationEntry | None:
        # _lru is ordered by last use, so the first expired row found is the LRU one.
        for entry in self._lru.values():
            if entry.expired(now):
                return entry
        return None

    def _insert(self, entry: TranslationEntry) -> None:
        self._by_v6[entry.ipv6] = entry
        self._by_v4[entry.ipv4] = entry
        if not entry.static:
            self._lru[entry.ipv6] = entry
        if self.on_change is not None:
            self.on_change(entry, True)

    def _remove(self, entry: TranslationEntry) -> None:
        self._by_v6.pop(entry.ipv6, None)
        self._by_v4.pop(entry.ipv4, None)
        self._lru.pop(entry.ipv6, None)
        self.pool.release(entry.ipv4)
        if self.on_change is not None:
            self.on_change(entry, False)

    # -- persistence ----------------------------------------------------------------------

    def to_json(self, now: float) -> str:
        """Serialise rows with lifetimes relative to `now` (see the module docstring)."""
        statics = [e for e in self._by_v6.values() if e.static]
        rows = statics + list(self._lru.values())  # dynamic rows oldest first: LRU survives
        state = {
            "version": STATE_FORMAT_VERSION,
            "pool": {
                "network": str(self.pool.network),
                "exclude": sorted(str(IPv4Address(a)) for a in self.pool.exclude),
            },
            "prefix": str(self.prefix.network),
            "idle_timeout": self.idle_timeout,
            "entries": [e.as_dict(now) for e in rows],
        }
        return json.dumps(state, indent=1)

    @classmethod
    def from_json(cls, text: str | bytes, now: float) -> TranslationTable:
        try:
            state = json.loads(text)
            if state.get("version") != STATE_FORMAT_VERSION:
                raise BadStateFile(f"unsupported state version {state.get('version')!r}")
            pool = IPv4Pool(IPv4Network(state["pool"]["network"]), state["pool"]["exclude"])
            table = cls(pool, prefix=state["prefix"], idle_timeout=float(state["idle_timeout"]))
            for row in state["entries"]:
                ipv6 = IPv6Address(row["ipv6"]).packed
                ipv4 = IPv4Address(row["ipv4"]).packed
                if row["static"]:
                    entry = table.add_static(ipv6, ipv4, now - float(row["idle"]))
                else:
                    entry = TranslationEntry(
                        ipv6,
                        ipv4,
                        float(row["lifetime"]),
                        now + float(row["remaining"]),
                        now - float(row["idle"]),
                        home=bool(row["home"]),
                    )
                    if ipv6 in table._by_v6 or ipv4 in table._by_v4:
                        raise BadStateFile("duplicate address in state file")
                    pool.reserve(ipv4)
                    table._insert(entry)
                entry.packets = int(row["packets"])
                entry.bytes = int(row["bytes"])
        except BadStateFile:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadStateFile(f"bad translation table state: {exc}") from exc
        return table

    def save(self, path: str | os.PathLike[str], now: float) -> None:
        """Write atomically: temp file in the same directory, fsync, rename, fsync the dir."""
        target = Path(path)
        data = self.to_json(now).encode()
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @classmethod
    def load(cls, path: str | os.PathLike[str], now: float) -> TranslationTable:
        return cls.from_json(Path(path).read_bytes(), now)


__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_POOL_EXCLUDE",
    "DEFAULT_POOL_NETWORK",
    "BadStateFile",
    "IPv4Pool",
    "TranslationEntry",
    "TranslationTable",
]
