"""Security Association Database: inbound SAs by SPI, every SA by name (outbound SAs are
reached from the SPD policy that names them)."""

from __future__ import annotations

from typing import Any

from netstack.ipsec.sa import SecurityAssociation
from netstack.ipsec.spd import DIRECTIONS, INBOUND


class SecurityAssociationDatabase:
    def __init__(self) -> None:
        self._by_name: dict[str, SecurityAssociation] = {}
        self._direction: dict[str, str] = {}
        self._inbound: dict[int, SecurityAssociation] = {}

    def add(self, sa: SecurityAssociation, direction: str) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"SA direction must be one of {DIRECTIONS}")
        name = sa.name or f"spi-{sa.spi:08x}"
        sa.name = name
        if name in self._by_name:
            raise ValueError(f"SA {name!r} already exists")
        if direction == INBOUND:
            if sa.spi in self._inbound:
                raise ValueError(f"inbound SPI {sa.spi:#010x} already in use")
            self._inbound[sa.spi] = sa
        self._by_name[name] = sa
        self._direction[name] = direction

    def remove(self, name: str) -> None:
        sa = self._by_name.pop(name)
        if self._direction.pop(name) == INBOUND:
            del self._inbound[sa.spi]

    def inbound(self, spi: int) -> SecurityAssociation | None:
        return self._inbound.get(spi)

    def get(self, name: str) -> SecurityAssociation | None:
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self):  # noqa: ANN204 - iterator of SecurityAssociation
        return iter(self._by_name.values())

    def direction(self, name: str) -> str:
        return self._direction[name]

    def as_dict(self, now: float) -> list[dict[str, Any]]:
        return [
            {**sa.as_dict(now), "direction": self._direction[name]}
            for name, sa in self._by_name.items()
        ]
