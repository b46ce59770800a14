"""Duplicate Address Detection on behalf of a mobile node (RFC 6275 10.4.1), sans-IO.

Before the home agent accepts a new home address it probes the home link once: a Neighbor
Solicitation from the unspecified address for the home address. A Neighbor Advertisement for
it (or another node's DAD probe) within RetransTimer means the address is in use: status 134.
"""

from __future__ import annotations

from ipaddress import IPv6Address

from netstack.wire.icmpv6 import build_icmpv6_packet, solicited_node_multicast
from netstack.wire.icmpv6_types import NeighborSolicitation

UNSPECIFIED = IPv6Address("::")


class ProxyDad:
    def __init__(self, retrans_timer: float = 1.0, transmits: int = 1) -> None:
        self.retrans_timer = retrans_timer
        self.transmits = transmits
        self._pending: dict[IPv6Address, tuple[float, int]] = {}  # addr -> (deadline, sent)
        self._outgoing: list[tuple[IPv6Address, bytes]] = []
        self._results: list[tuple[IPv6Address, bool]] = []

    def start(self, address: IPv6Address, now: float) -> None:
        if address not in self._pending:
            self._probe(address, now, 0)

    def _probe(self, address: IPv6Address, now: float, sent: int) -> None:
        group = solicited_node_multicast(address)
        packet = build_icmpv6_packet(UNSPECIFIED, group, NeighborSolicitation(target=address))
        self._outgoing.append((group, packet))
        self._pending[address] = (now + self.retrans_timer, sent + 1)

    def observe(self, target: IPv6Address, *, advertisement: bool, source: IPv6Address) -> None:
        """An NA for `target`, or an NS from :: for it (someone else's DAD): a duplicate."""
        if target in self._pending and (advertisement or source == UNSPECIFIED):
            del self._pending[target]
            self._results.append((target, True))

    def handle_timer(self, now: float) -> None:
        for address, (deadline, sent) in list(self._pending.items()):
            if now >= deadline:
                if sent < self.transmits:
                    self._probe(address, now, sent)
                else:
                    del self._pending[address]
                    self._results.append((address, False))

    def get_timer(self) -> float | None:
        return min((d for d, _ in self._pending.values()), default=None)

    def packets_to_send(self) -> list[tuple[IPv6Address, bytes]]:
        out, self._outgoing = self._outgoing, []
        return out

    def results(self) -> list[tuple[IPv6Address, bool]]:
        """(home address, duplicate) for every finished probe since the last call."""
        out, self._results = self._results, []
        return out
