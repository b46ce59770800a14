"""Scenario policy (table 220) and BA routine 60: the registration's answer picks the method.

The patent (Fig. 6, 9) numbers each way the terminal can carry the host's traffic; a Binding
Acknowledgement (from the HA or, with route optimisation, a CN; with or without IPsec) selects
which scenarios apply, and each selected scenario that is switched on in table 220 runs.
The patent prints 11000 twice; the route-optimised IPv6 variant is 11001 here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Scenario(IntEnum):
    TRANSLATION_ON = 10000
    TRANSLATION_OFF = 10001
    TRANSLATION_ON_IPSEC = 10010
    TRANSLATION_ON_ROUTE_OPTIMISATION = 10011
    TRANSLATION_OFF_IPSEC = 11000
    TRANSLATION_OFF_ROUTE_OPTIMISATION = 11001
    MAP_TYPE_1 = 10100
    MAP_TYPE_2 = 10200
    MAP_TYPE_3 = 10300


CONTENTS: dict[Scenario, str] = {
    Scenario.TRANSLATION_ON: "IPv4 applications: translate to the home address, no IPsec",
    Scenario.TRANSLATION_OFF: "IPv6 applications: offer the home address to the host, no IPsec",
    Scenario.TRANSLATION_ON_IPSEC: "IPv4 applications: translate, BU/BA protected by IPsec",
    Scenario.TRANSLATION_ON_ROUTE_OPTIMISATION: "IPv4 applications: translate, route optimisation with the CN",
    Scenario.TRANSLATION_OFF_IPSEC: "IPv6 applications: home address, BU/BA protected by IPsec",
    Scenario.TRANSLATION_OFF_ROUTE_OPTIMISATION: "IPv6 applications: home address, route optimisation",
    Scenario.MAP_TYPE_1: "HMIPv6 MAP registration type 1 (MN-HA signalling tunnelled via the MAP)",
    Scenario.MAP_TYPE_2: "HMIPv6 MAP registration type 2 (BU direct, BA via the MAP tunnel)",
    Scenario.MAP_TYPE_3: "HMIPv6 MAP registration type 3 (signalling direct to the HA)",
}

TRANSLATING = frozenset(
    (Scenario.TRANSLATION_ON, Scenario.TRANSLATION_ON_IPSEC, Scenario.TRANSLATION_ON_ROUTE_OPTIMISATION)
)
ROUTE_OPTIMISED = frozenset(
    (Scenario.TRANSLATION_ON_ROUTE_OPTIMISATION, Scenario.TRANSLATION_OFF_ROUTE_OPTIMISATION)
)
PASSTHROUGH = frozenset(
    (
        Scenario.TRANSLATION_OFF,
        Scenario.TRANSLATION_OFF_IPSEC,
        Scenario.TRANSLATION_OFF_ROUTE_OPTIMISATION,
    )
)


@dataclass
class ScenarioEntry:
    """One row of table 220: scenario number, content, on/off state."""

    number: Scenario
    content: str
    state: bool

    def as_dict(self) -> dict[str, object]:
        return {"number": int(self.number), "content": self.content, "state": "on" if self.state else "off"}


class ScenarioPolicy:
    """Table 220. Scenarios not yet implemented (route optimisation, MAP) start off."""

    def __init__(self, *, translation: bool = True, ipv6_passthrough: bool = True) -> None:
        self.entries: dict[Scenario, ScenarioEntry] = {
            number: ScenarioEntry(number, CONTENTS[number], False) for number in Scenario
        }
        for number in (Scenario.TRANSLATION_ON, Scenario.TRANSLATION_ON_IPSEC):
            self.entries[number].state = translation
        for number in (Scenario.TRANSLATION_OFF, Scenario.TRANSLATION_OFF_IPSEC):
            self.entries[number].state = ipv6_passthrough
        self.active: tuple[Scenario, ...] = ()

    def is_on(self, number: Scenario) -> bool:
        return self.entries[number].state

    def set(self, number: Scenario, state: bool) -> None:
        self.entries[number].state = state

    def select(self, *, from_home_agent: bool, protected: bool) -> tuple[Scenario, ...]:
        """BA routine 60: the scenarios this acknowledgement selects, filtered by table 220."""
        if from_home_agent:
            candidates = (
                (Scenario.TRANSLATION_ON_IPSEC, Scenario.TRANSLATION_OFF_IPSEC)
                if protected
                else (Scenario.TRANSLATION_ON, Scenario.TRANSLATION_OFF)
            )
        else:
            candidates = (
                Scenario.TRANSLATION_ON_ROUTE_OPTIMISATION,
                Scenario.TRANSLATION_OFF_ROUTE_OPTIMISATION,
            )
        # a home BA keeps the route-optimised scenarios a correspondent's BA selected
        kept = tuple(n for n in self.active if n in ROUTE_OPTIMISED) if from_home_agent else ()
        self.active = tuple(n for n in candidates if self.is_on(n)) + kept
        return self.active

    def route_optimised(self, direct: bool) -> None:
        """BA routine 60 for a correspondent's BA: 10011 / 11001 join the active scenarios
        (those switched on) while a direct path exists, and leave when none is left."""
        kept = tuple(n for n in self.active if n not in ROUTE_OPTIMISED)
        if direct:
            kept += tuple(n for n in sorted(ROUTE_OPTIMISED) if self.is_on(n))
        self.active = kept

    @property
    def translating(self) -> bool:
        return any(n in TRANSLATING for n in self.active)

    @property
    def passing_through(self) -> bool:
        return any(n in PASSTHROUGH for n in self.active)

    def as_list(self) -> list[dict[str, object]]:
        rows = []
        for entry in self.entries.values():
            row = entry.as_dict()
            row["active"] = entry.number in self.active
            rows.append(row)
        return rows
