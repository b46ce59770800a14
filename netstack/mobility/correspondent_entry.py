"""A Binding Update List row (table 210) for a correspondent, with its return routability state.

Table 210's columns (BU destination = the CN, home address, care-of address, lifetime) plus
what RFC 6275 11.1 lists for route optimisation: the keygen tokens with their nonce indices
and ages, the cookies of the outstanding tests, and the retransmission schedule of each of
the three exchanges (home test, care-of test, BU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv6Address

from netstack.wire.ro_headers import HomeAddressInserter


class RouteState(StrEnum):
    RETURN_ROUTABILITY = "return-routability"  # HoTI and/or CoTI outstanding
    REGISTERING = "registering"  # BU with Nonce Indices + authenticator sent, BA expected
    REGISTERED = "registered"  # the CN accepted the binding
    DEREGISTERING = "deregistering"  # lifetime 0 BU from home outstanding
    UNSUPPORTED = "unsupported"  # no Mobile IPv6 at the CN (or it refused): tunnel only


@dataclass
class Exchange:
    """One request/answer exchange (HoTI/HoT, CoTI/CoT or BU/BA) and its retransmissions."""

    next_at: float | None = None
    timeout: float = 0.0
    transmissions: int = 0
    cookie: bytes = b""

    def stop(self) -> None:
        self.next_at = None
        self.transmissions = 0


@dataclass
class Token:
    """A keygen token with its nonce index, when it arrived and (care-of) for which address."""

    value: bytes
    nonce_index: int
    received_at: float
    address: IPv6Address


@dataclass
class CorrespondentEntry:
    destination: IPv6Address
    home_address: IPv6Address
    care_of_address: IPv6Address
    state: RouteState = RouteState.RETURN_ROUTABILITY
    lifetime: int = 0
    expires_at: float | None = None
    refresh_at: float | None = None
    sequence: int = 0
    requested_lifetime: int = 0
    sent_at: float | None = None
    kbm: bytes = b""
    home_token: Token | None = None
    care_of_token: Token | None = None
    home_test: Exchange = field(default_factory=Exchange)
    care_of_test: Exchange = field(default_factory=Exchange)
    update: Exchange = field(default_factory=Exchange)
    # The direct path (None = tunnelled): the data path counts its packets on it.
    inserter: HomeAddressInserter | None = None
    packets_at_refresh: int = 0
    retry_at: float | None = None  # UNSUPPORTED until then
    last_status: int | None = None
    reason: str = ""

    @property
    def direct(self) -> bool:
        return self.inserter is not None

    def deadlines(self) -> list[float]:
        out = [e.next_at for e in (self.home_test, self.care_of_test, self.update)
               if e.next_at is not None]
        for t in (self.expires_at, self.refresh_at, self.retry_at):
            if t is not None:
                out.append(t)
        return out

    def as_dict(self, now: float) -> dict[str, object]:
        def age(token: Token | None) -> float | None:
            return None if token is None else round(now - token.received_at, 1)

        remaining = 0
        if self.expires_at is not None and self.state is RouteState.REGISTERED:
            remaining = max(0, int(self.expires_at - now))
        return {
            "destination": str(self.destination),
            "kind": "correspondent",
            "home_address": str(self.home_address),
            "care_of_address": str(self.care_of_address),
            "lifetime": remaining,
            "sequence": self.sequence,
            "state": self.state.value,
            "path": "direct" if self.direct else "tunnel",
            "home_token_age": age(self.home_token),
            "care_of_token_age": age(self.care_of_token),
            "home_nonce_index": None if self.home_token is None else self.home_token.nonce_index,
            "care_of_nonce_index": (None if self.care_of_token is None
                                    else self.care_of_token.nonce_index),
            "retransmissions": max(0, self.update.transmissions - 1),
            "last_status": self.last_status,
            "reason": self.reason,
        }
