"""RFC 6275 section 11.8: at most MAX_UPDATE_RATE Binding Updates a second per destination.

A sliding window of send times per destination, sans-IO: the caller asks when it may send
and records what it sent. A BU over the rate is deferred, never dropped.
"""

from __future__ import annotations

from collections import deque
from ipaddress import IPv6Address


class UpdateRateLimiter:
    def __init__(self, max_rate: int, window: float) -> None:
        self.max_rate = max_rate
        self.window = window
        self._sent: dict[IPv6Address, deque[float]] = {}

    def defer_until(self, destination: IPv6Address, now: float) -> float | None:
        """None if a BU may go to `destination` now, else the earliest time it may."""
        sent = self._sent.setdefault(destination, deque())
        while sent and sent[0] <= now - self.window:
            sent.popleft()
        if len(sent) >= self.max_rate:
            return sent[0] + self.window
        return None

    def record(self, destination: IPv6Address, now: float) -> None:
        self._sent.setdefault(destination, deque()).append(now)
