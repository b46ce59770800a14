"""The binding cache survives a home agent restart (bindings are learned state, never lost).

Saved atomically as JSON with each binding's remaining lifetime: the monotonic clock restarts
with the process, so absolute times are meaningless across restarts. Downtime is not
subtracted (the mobile node refreshes long before expiry anyway).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from socket import AF_INET6, inet_ntop, inet_pton

from netstack.mobility.binding_cache import BindingCache, BindingCacheEntry


def _text(address: IPv6Address) -> str:
    return inet_ntop(AF_INET6, address.packed)  # ~20x faster than str() at 100k bindings


def _address(text: str) -> IPv6Address:
    try:
        return IPv6Address(inet_pton(AF_INET6, text))
    except (OSError, TypeError):
        return IPv6Address(text)  # raises ValueError with a clear message


def save_bindings(cache: BindingCache, path: Path, now: float) -> None:
    rows = [
        {
            "home_address": _text(e.home_address),
            "care_of_address": _text(e.care_of_address),
            "lifetime": e.lifetime,
            "remaining": max(0.0, e.expires_at - now),
            "sequence": e.sequence,
            "mobile_router": e.mobile_router,
            "prefixes": [str(p) for p in e.prefixes],
        }
        for e in cache
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".bindings-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            # dumps, not dump: json.dump streams through the pure-Python encoder
            f.write(json.dumps({"version": 1, "bindings": rows}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_bindings(path: Path, now: float) -> list[BindingCacheEntry]:
    """Entries from `path`; a missing file is empty, a corrupt one raises ValueError."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    entries = []
    try:
        for row in data["bindings"]:
            entries.append(
                BindingCacheEntry(
                    home_address=_address(row["home_address"]),
                    care_of_address=_address(row["care_of_address"]),
                    lifetime=int(row["lifetime"]),
                    sequence=int(row["sequence"]) & 0xFFFF,
                    expires_at=now + float(row["remaining"]),
                    mobile_router=bool(row.get("mobile_router", False)),
                    prefixes=tuple(IPv6Network(p) for p in row.get("prefixes", ())),
                )
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: bad binding row: {exc}") from None
    return entries


class CoalescedWriter:
    """When to write the binding cache: at once for an isolated change, else at most once per
    interval (issue 15: a BU flood or a restore of 100k bindings wrote the whole cache per
    binding). The interval grows to 10x the last write's duration, so writing a big cache
    stays under ~10% of the time. `due` is the deadline the daemon arms its timer for.
    """

    def __init__(self, write: Callable[[float], None], min_interval: float = 1.0) -> None:
        self._write = write
        self.min_interval = min_interval
        self.interval = min_interval
        self.last = float("-inf")
        self.due: float | None = None

    def changed(self, now: float) -> None:
        if now - self.last >= self.interval:
            self.write_now(now)
        elif self.due is None:
            self.due = self.last + self.interval

    def write_now(self, now: float) -> None:
        self.last = now
        self.due = None
        started = time.perf_counter()
        self._write(now)
        self.interval = max(self.min_interval, 10 * (time.perf_counter() - started))

    def on_timer(self, now: float) -> None:
        if self.due is not None and now >= self.due:
            self.write_now(now)
