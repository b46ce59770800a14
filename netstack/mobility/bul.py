"""The Binding Update List, the patent's table 210 (RFC 6275 11.1).

Table 210 columns: BU destination, home address, care-of address, lifetime. Each entry
also carries the state of its binding, h11 style: an explicit state and a transition table;
an event a state does not allow is a programming error (`ProtocolError`), never a reaction
to network input (the mobile node filters network input before it reaches the table).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv6Address

from netstack.wire.mh import BindingAckStatus


class ProtocolError(RuntimeError):
    """The caller asked for something the protocol state does not allow (a bug, not input)."""


class BindingState(StrEnum):
    IDLE = "idle"  # no binding, nothing outstanding
    REGISTERING = "registering"  # BU sent, no live binding yet
    REGISTERED = "registered"  # binding accepted and alive
    REFRESHING = "refreshing"  # binding alive, re-registration BU outstanding
    DEREGISTERING = "deregistering"  # lifetime 0 BU outstanding (returning home)
    REFUSED = "refused"  # last BA refused the binding (status >= 128)


class BindingTrigger(StrEnum):
    REGISTER = "register"  # start (or restart, after a move) a registration
    ACCEPTED = "accepted"  # BA status < 128
    REFUSED = "refused"  # BA status >= 128 (not 135)
    REFRESH = "refresh"  # refresh timer, Binding Refresh Advice or Refresh Request
    LIFETIME_EXPIRED = "lifetime_expired"  # binding lapsed while the refresh was outstanding
    DEREGISTER = "deregister"  # returned home
    DEREGISTERED = "deregistered"  # BA for the de-registration, or retries exhausted


S = BindingState
T = BindingTrigger

TRANSITIONS: dict[BindingState, dict[BindingTrigger, BindingState]] = {
    S.IDLE: {T.REGISTER: S.REGISTERING, T.DEREGISTER: S.DEREGISTERING},
    S.REGISTERING: {
        T.REGISTER: S.REGISTERING,
        T.ACCEPTED: S.REGISTERED,
        T.REFUSED: S.REFUSED,
        T.DEREGISTER: S.DEREGISTERING,
    },
    S.REGISTERED: {
        T.REGISTER: S.REGISTERING,
        T.REFRESH: S.REFRESHING,
        T.DEREGISTER: S.DEREGISTERING,
    },
    S.REFRESHING: {
        T.REGISTER: S.REGISTERING,
        T.REFRESH: S.REFRESHING,
        T.ACCEPTED: S.REGISTERED,
        T.REFUSED: S.REFUSED,
        T.LIFETIME_EXPIRED: S.REGISTERING,
        T.DEREGISTER: S.DEREGISTERING,
    },
    S.DEREGISTERING: {
        T.REGISTER: S.REGISTERING,
        T.DEREGISTER: S.DEREGISTERING,
        T.DEREGISTERED: S.IDLE,
    },
    S.REFUSED: {T.REGISTER: S.REGISTERING, T.DEREGISTER: S.DEREGISTERING},
}

# States in which a BU is outstanding (a BA is expected).
AWAITING_ACK = frozenset({S.REGISTERING, S.REFRESHING, S.DEREGISTERING})
# States in which the binding at the destination is accepted and alive.
BOUND = frozenset({S.REGISTERED, S.REFRESHING})


def status_reason(status: int) -> str:
    """Human readable text for a BA status: 'administratively prohibited', 'status 200'."""
    try:
        return BindingAckStatus(status).name.lower().replace("_", " ")
    except ValueError:
        return f"status {status}"


@dataclass
class BindingUpdateListEntry:
    """One row of table 210: BU destination, home address, care-of address, lifetime.

    `lifetime` is the lifetime granted by the destination (0 while none is granted),
    `requested_lifetime` the one asked for in the outstanding BU. `expires_at` is when the
    accepted binding lapses (counted from the time the BU was sent, RFC 6275 11.7.3).
    The remaining fields schedule retransmissions (RFC 6275 11.8) and refreshes.
    """

    destination: IPv6Address
    home_address: IPv6Address
    care_of_address: IPv6Address
    lifetime: int = 0
    sequence: int = 0
    state: BindingState = BindingState.IDLE
    expires_at: float | None = None
    last_status: int | None = None
    reason: str = ""
    retransmissions: int = 0
    requested_lifetime: int = 0
    sent_at: float | None = None  # when the outstanding BU was sent
    next_send_at: float | None = None  # next (re)transmission, None when nothing is due
    refresh_at: float | None = None
    current_timeout: float = 0.0  # wait after the next transmission before retrying
    transmissions: int = 0  # BUs sent in the current attempt

    def transition(self, trigger: BindingTrigger) -> BindingState:
        """Move to the state the table gives for `trigger`; ProtocolError if not allowed."""
        allowed = TRANSITIONS[self.state]
        if trigger not in allowed:
            raise ProtocolError(
                f"binding to {self.destination}: {trigger.value!r} not allowed in state "
                f"{self.state.value!r}"
            )
        self.state = allowed[trigger]
        return self.state

    @property
    def awaiting_ack(self) -> bool:
        return self.state in AWAITING_ACK

    @property
    def bound(self) -> bool:
        return self.state in BOUND

    def remaining_lifetime(self, now: float) -> int:
        if self.expires_at is None or not self.bound:
            return 0
        return max(0, int(self.expires_at - now))

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "destination": str(self.destination),
            "home_address": str(self.home_address),
            "care_of_address": str(self.care_of_address),
            "lifetime": self.remaining_lifetime(now),
            "sequence": self.sequence,
            "state": self.state.value,
            "last_status": self.last_status,
            "reason": self.reason,
            "retransmissions": self.retransmissions,
        }


class BindingUpdateList:
    """Table 210: BUL entries keyed by BU destination."""

    def __init__(self) -> None:
        self._entries: dict[IPv6Address, BindingUpdateListEntry] = {}

    def get(self, destination: IPv6Address) -> BindingUpdateListEntry | None:
        return self._entries.get(destination)

    def add(self, entry: BindingUpdateListEntry) -> BindingUpdateListEntry:
        if entry.destination in self._entries:
            raise ProtocolError(f"BUL already has an entry for {entry.destination}")
        self._entries[entry.destination] = entry
        return entry

    def remove(self, destination: IPv6Address) -> BindingUpdateListEntry | None:
        return self._entries.pop(destination, None)

    def __iter__(self) -> Iterator[BindingUpdateListEntry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, destination: object) -> bool:
        return destination in self._entries

    def as_dict(self, now: float) -> list[dict[str, object]]:
        return [entry.as_dict(now) for entry in self._entries.values()]
