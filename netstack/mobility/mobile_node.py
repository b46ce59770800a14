"""Mobile node (RFC 6275 section 11): home registration with one home agent, sans-IO.

aioquic shape: inputs `attach`, `detach`, `receive_binding_ack`, `receive_binding_error`,
`receive_binding_refresh_request`, `handle_timer(now)`; outputs `messages_to_send()`,
`next_event()`, `get_timer()`. The Binding Update List is the patent's table 210.

Choices where RFC 6275 leaves room:
- Every (re)transmission carries a fresh sequence number; a BA must match the latest one
  (older BAs are ignored and counted), except status 135 which carries the HA's number.
- Retransmissions back off 1.5 s (first registration) or 1 s, doubling up to 32 s, and
  continue at 32 s for ever while away from home.
- Re-registration at `refresh_fraction` (85%) of the granted lifetime, or earlier when the BA
  carries a Binding Refresh Advice; at most MAX_UPDATE_RATE BUs per second per destination
  (extra ones are deferred, never dropped).
- De-registration (returning home) gives up after `deregistration_retries` retransmissions:
  the entry is removed and ReturnedHome is emitted anyway (no BindingDeregistered then).
- Attaching at home with no BUL entry emits ReturnedHome at once (nothing to de-register).
- A Binding Error status 1 removes the BUL entry (patent E3) and emits BindingExpired; the
  daemon calls `attach()` again to re-register.
"""

from __future__ import annotations

import math
import random
from collections import deque
from ipaddress import IPv6Address, IPv6Network

from netstack.mobility.bul import (
    BindingState,
    BindingTrigger,
    BindingUpdateList,
    BindingUpdateListEntry,
    ProtocolError,
    status_reason,
)
from netstack.mobility.constants import (
    DEFAULT_TIMERS,
    LIFETIME_UNIT,
    MAX_WIRE_LIFETIME,
    MobilityTimers,
)
from netstack.mobility.events import (
    BindingAccepted,
    BindingDeregistered,
    BindingExpired,
    BindingRefused,
    MobileNodeEvent,
    ReturnedHome,
)
from netstack.mobility.messages import OutgoingMobilityMessage, home_registration
from netstack.mobility.rate_limit import UpdateRateLimiter
from netstack.mobility.sequence import random_initial_sequence, seq_next
from netstack.wire.mh import (
    BindingAck,
    BindingAckStatus,
    BindingError,
    BindingErrorStatus,
    BindingRefreshAdvice,
    BindingRefreshRequest,
)

__all__ = ["MobileNode", "ProtocolError"]

_FIRST_REFUSED = 128


class MobileNode:
    """A mobile node's home registration: BUL (table 210), BU retransmission, BA routine."""

    def __init__(
        self,
        home_address: IPv6Address,
        home_agent: IPv6Address,
        *,
        home_prefix: IPv6Network,
        requested_lifetime: int = 420,
        timers: MobilityTimers = DEFAULT_TIMERS,
        mobile_network_prefixes: tuple[IPv6Network, ...] = (),
        require_protection: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        if home_address not in home_prefix:
            raise ProtocolError(f"home address {home_address} is not in {home_prefix}")
        if requested_lifetime <= 0:
            raise ProtocolError("requested_lifetime must be positive")
        self.home_address = home_address
        self.home_agent = home_agent
        self.home_prefix = home_prefix
        self.requested_lifetime = min(int(requested_lifetime), MAX_WIRE_LIFETIME)
        self.timers = timers
        # RFC 3963: a mobile router registers its prefixes with the R flag.
        self.mobile_network_prefixes = tuple(mobile_network_prefixes)
        self.require_protection = require_protection
        self.binding_update_list = BindingUpdateList()
        self.counters: dict[str, int] = {}
        self.care_of_address: IPv6Address | None = None
        self.coa_valid_until: float = 0.0
        self.attached = False
        self._rng = rng if rng is not None else random.Random()
        self._last_sequence: dict[IPv6Address, int] = {}
        self._rate_limit = UpdateRateLimiter(self.timers.max_update_rate,
                                             self.timers.update_rate_window)
        self._outgoing: list[OutgoingMobilityMessage] = []
        self._events: deque[MobileNodeEvent] = deque()

    # ------------------------------------------------------------ outputs

    def messages_to_send(self) -> list[OutgoingMobilityMessage]:
        out, self._outgoing = self._outgoing, []
        return out

    def next_event(self) -> MobileNodeEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        deadlines: list[float] = []
        for entry in self.binding_update_list:
            if entry.next_send_at is not None:
                deadlines.append(entry.next_send_at)
            if entry.state is BindingState.REGISTERED and entry.refresh_at is not None:
                deadlines.append(entry.refresh_at)
            if entry.bound and entry.expires_at is not None:
                deadlines.append(entry.expires_at)
        return min(deadlines) if deadlines else None

    @property
    def at_home(self) -> bool:
        return self.care_of_address is not None and self.care_of_address in self.home_prefix

    def tunnel_endpoint(self) -> tuple[IPv6Address, IPv6Address] | None:
        """(CoA, HA) while the home registration is accepted and alive, else None."""
        entry = self.binding_update_list.get(self.home_agent)
        if entry is None or not entry.bound:
            return None
        return entry.care_of_address, entry.destination

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "home_address": str(self.home_address),
            "home_agent": str(self.home_agent),
            "home_prefix": str(self.home_prefix),
            "care_of_address": str(self.care_of_address) if self.care_of_address else None,
            "attached": self.attached,
            "at_home": self.at_home,
            "binding_update_list": self.binding_update_list.as_dict(now),
            "counters": dict(self.counters),
        }

    # ------------------------------------------------------------ link inputs

    def attach(self, care_of_address: IPv6Address, coa_valid_until: float, now: float) -> None:
        """The link gives us `care_of_address`, valid until `coa_valid_until` (absolute time)."""
        moved = care_of_address != self.care_of_address
        was_attached = self.attached
        self.care_of_address = care_of_address
        self.coa_valid_until = coa_valid_until
        self.attached = True
        entry = self.binding_update_list.get(self.home_agent)

        if care_of_address in self.home_prefix:
            self._return_home(entry, now, restart=moved or not was_attached)
            return
        if entry is None:
            entry = self.binding_update_list.add(
                BindingUpdateListEntry(self.home_agent, self.home_address, care_of_address)
            )
            self._start(entry, BindingTrigger.REGISTER, now)
            return
        entry.care_of_address = care_of_address
        if moved or entry.state in (BindingState.IDLE, BindingState.DEREGISTERING):
            # RFC 6275 11.5.1: a new CoA means a new BU now, new sequence, backoff restarted.
            self._start(entry, BindingTrigger.REGISTER, now)
        elif not was_attached and entry.awaiting_ack:
            # Same CoA after a link outage: resume the outstanding BU at once, fresh backoff.
            if entry.state is BindingState.REGISTERING:
                entry.current_timeout = self.timers.initial_bindack_timeout_first_reg
            else:
                entry.current_timeout = self.timers.initial_bindack_timeout
            self._restart_transmission(entry, now)
        elif (
            entry.state is BindingState.REGISTERED
            and entry.expires_at is not None
            and coa_valid_until < entry.expires_at
        ):
            # The CoA now dies before the binding: re-register with a shorter lifetime.
            self._start(entry, BindingTrigger.REFRESH, now)
        elif (
            entry.state is BindingState.REGISTERED
            and not was_attached
            and entry.refresh_at is not None
            and entry.refresh_at <= now
        ):
            self._start(entry, BindingTrigger.REFRESH, now)

    def detach(self, now: float) -> None:
        """The link is lost: keep the BUL, stop transmitting until the next attach()."""
        self.attached = False
        for entry in self.binding_update_list:
            entry.next_send_at = None

    # ------------------------------------------------------------ network inputs

    def receive_binding_ack(
        self, src: IPv6Address, message: BindingAck, now: float, *, protected: bool = False
    ) -> None:
        """The BA routine (patent 70; RFC 6275 11.7.3)."""
        entry = self.binding_update_list.get(src)
        if entry is None:
            self._count("ba_unknown_source")
            return
        if self.require_protection and not protected:
            self._count("ba_unprotected")
            return
        if not entry.awaiting_ack:
            self._count("ba_unexpected")
            return
        if message.status == BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW:
            self._resynchronise(entry, message, now)
            return
        if message.sequence != entry.sequence:
            # A BA may answer an earlier transmission of the same attempt (same CoA, same
            # lifetime) when two left together, e.g. one held by neighbour resolution.
            behind = (entry.sequence - message.sequence) % 0x10000
            if not 0 < behind < entry.transmissions:
                self._count("ba_sequence_mismatch")
                return
            self._count("ba_for_earlier_transmission")
        entry.last_status = message.status
        entry.reason = status_reason(message.status)
        if entry.state is BindingState.DEREGISTERING:
            # Whatever the status (133 when the HA had no binding), we are home now.
            self._count("ba_deregistration")
            self._finish_deregistration(entry, acknowledged=True)
        elif message.status < _FIRST_REFUSED:
            self._accept(entry, message, now)
        else:
            self._refuse(entry, message.status, entry.reason)

    def receive_binding_error(self, src: IPv6Address, message: BindingError, now: float) -> None:
        """RFC 6275 11.3.6; patent E3: a Binding Error status 1 removes the BUL entry."""
        entry = self.binding_update_list.get(src)
        if entry is None or message.home_address != entry.home_address:
            self._count("be_unknown_binding")
            return
        if message.status != BindingErrorStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS_OPTION:
            self._count(f"be_status_{message.status}")
            return
        self._count("be_binding_removed")
        self.binding_update_list.remove(src)
        self._events.append(BindingExpired(src))

    def receive_binding_refresh_request(
        self, src: IPv6Address, message: BindingRefreshRequest, now: float
    ) -> None:
        """RFC 6275 11.7.4: answer a Binding Refresh Request with a BU now."""
        entry = self.binding_update_list.get(src)
        if entry is None or not entry.bound:
            self._count("brr_ignored")
            return
        self._count("brr_received")
        self._start(entry, BindingTrigger.REFRESH, now)

    # ------------------------------------------------------------ timers

    def handle_timer(self, now: float) -> None:
        for entry in self.binding_update_list:
            if entry.bound and entry.expires_at is not None and entry.expires_at <= now:
                self._expire(entry, now)
            if (
                entry.state is BindingState.REGISTERED
                and entry.refresh_at is not None
                and entry.refresh_at <= now
            ):
                self._start(entry, BindingTrigger.REFRESH, now)
            if entry.next_send_at is not None and entry.next_send_at <= now:
                if (
                    entry.state is BindingState.DEREGISTERING
                    and entry.transmissions > self.timers.deregistration_retries
                ):
                    self._count("deregistration_gave_up")
                    self._finish_deregistration(entry, acknowledged=False)
                else:
                    self._transmit(entry, now)

    # ------------------------------------------------------------ internals

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _start(self, entry: BindingUpdateListEntry, trigger: BindingTrigger, now: float) -> None:
        """A new attempt: state transition, fresh backoff, first BU now."""
        had_binding = entry.bound
        entry.transition(trigger)
        entry.refresh_at = None
        if trigger is BindingTrigger.REGISTER and not had_binding:
            # RFC 6275 11.8: InitialBindackTimeoutFirstReg when the HA has no binding for us.
            entry.current_timeout = self.timers.initial_bindack_timeout_first_reg
        else:
            entry.current_timeout = self.timers.initial_bindack_timeout
        if trigger is BindingTrigger.REGISTER:
            # The binding being replaced (old CoA) is no longer usable for the tunnel.
            entry.expires_at = None
            entry.lifetime = 0
        self._restart_transmission(entry, now)

    def _restart_transmission(self, entry: BindingUpdateListEntry, now: float) -> None:
        entry.transmissions = 0
        entry.retransmissions = 0
        entry.next_send_at = now
        self._transmit(entry, now)

    def _transmit(self, entry: BindingUpdateListEntry, now: float) -> None:
        """Send the BU for the entry's state, or defer it (rate limit / detached)."""
        if not self.attached or self.care_of_address is None:
            entry.next_send_at = None
            return
        deferred_to = self._rate_limit.defer_until(entry.destination, now)
        if deferred_to is not None:
            self._count("bu_rate_limited")
            entry.next_send_at = deferred_to
            return
        deregistering = entry.state is BindingState.DEREGISTERING
        if deregistering:
            lifetime = 0
        else:
            lifetime = self._registration_lifetime(now)
            if lifetime <= 0:
                self._count("coa_lifetime_exhausted")
                entry.next_send_at = None
                return
        sequence = self._next_sequence(entry.destination)
        self._outgoing.append(home_registration(
            sequence, lifetime, self.home_address, self.care_of_address, entry.destination,
            mobile_network_prefixes=self.mobile_network_prefixes, deregistering=deregistering))
        self._rate_limit.record(entry.destination, now)
        self._count("bu_sent")
        entry.sequence = sequence
        entry.requested_lifetime = lifetime
        entry.sent_at = now
        entry.transmissions += 1
        entry.retransmissions = entry.transmissions - 1
        entry.next_send_at = now + entry.current_timeout
        entry.current_timeout = min(entry.current_timeout * 2, self.timers.max_bindack_timeout)

    def _registration_lifetime(self, now: float) -> int:
        """Requested lifetime, never above the CoA's remaining valid lifetime (RFC 6275 11.7.1),
        rounded down to the 4-second wire unit so the granted minimum is exact."""
        remaining = self.coa_valid_until - now
        lifetime = self.requested_lifetime
        if not math.isinf(remaining):
            lifetime = min(lifetime, int(remaining))
        return lifetime - lifetime % LIFETIME_UNIT

    def _next_sequence(self, destination: IPv6Address) -> int:
        last = self._last_sequence.get(destination)
        sequence = random_initial_sequence(self._rng) if last is None else seq_next(last)
        self._last_sequence[destination] = sequence
        return sequence

    def _accept(self, entry: BindingUpdateListEntry, message: BindingAck, now: float) -> None:
        granted = min(message.lifetime, entry.requested_lifetime)
        if granted <= 0:
            self._refuse(entry, message.status, "zero lifetime granted")
            return
        entry.transition(BindingTrigger.ACCEPTED)
        start = entry.sent_at if entry.sent_at is not None else now
        entry.lifetime = granted
        entry.expires_at = start + granted
        interval = granted * self.timers.refresh_fraction
        for option in message.options:
            if isinstance(option, BindingRefreshAdvice) and option.refresh_interval > 0:
                interval = min(interval, option.refresh_interval)
        entry.refresh_at = start + interval
        entry.next_send_at = None
        entry.transmissions = 0
        self._count("ba_accepted")
        self._events.append(
            BindingAccepted(
                entry.destination,
                entry.home_address,
                entry.care_of_address,
                granted,
                entry.sequence,
                message.status,
            )
        )

    def _refuse(self, entry: BindingUpdateListEntry, status: int, reason: str) -> None:
        entry.transition(BindingTrigger.REFUSED)
        entry.last_status = status
        entry.reason = reason
        entry.lifetime = 0
        entry.expires_at = None
        entry.refresh_at = None
        entry.next_send_at = None
        self._count("ba_refused")
        self._events.append(BindingRefused(entry.destination, status, reason))

    def _resynchronise(
        self, entry: BindingUpdateListEntry, message: BindingAck, now: float
    ) -> None:
        """Status 135: the BA carries the last sequence the HA accepted; go on from there."""
        self._count("ba_resynchronised")
        entry.last_status = message.status
        entry.reason = status_reason(message.status)
        self._last_sequence[entry.destination] = message.sequence
        # Keep the current backoff (a forged 135 flood is bounded by the rate limit).
        entry.next_send_at = now
        self._transmit(entry, now)

    def _expire(self, entry: BindingUpdateListEntry, now: float) -> None:
        self._count("binding_expired")
        entry.lifetime = 0
        entry.expires_at = None
        if entry.state is BindingState.REGISTERED:
            # Only reachable when the refresh could not be sent in time: register afresh.
            entry.transition(BindingTrigger.REFRESH)
            entry.transition(BindingTrigger.LIFETIME_EXPIRED)
            entry.current_timeout = self.timers.initial_bindack_timeout_first_reg
            self._events.append(BindingExpired(entry.destination))
            self._restart_transmission(entry, now)
            return
        # Refreshing: the retransmissions already running go on with their backoff.
        entry.transition(BindingTrigger.LIFETIME_EXPIRED)
        self._events.append(BindingExpired(entry.destination))

    def _return_home(
        self, entry: BindingUpdateListEntry | None, now: float, *, restart: bool
    ) -> None:
        if entry is None or entry.state in (BindingState.IDLE, BindingState.REFUSED):
            if entry is not None:
                self.binding_update_list.remove(entry.destination)
            if restart:
                self._events.append(ReturnedHome(self.home_address))
            return
        entry.care_of_address = self.home_address
        if entry.state is BindingState.DEREGISTERING and not restart:
            return
        self._start(entry, BindingTrigger.DEREGISTER, now)

    def _finish_deregistration(self, entry: BindingUpdateListEntry, *, acknowledged: bool) -> None:
        entry.transition(BindingTrigger.DEREGISTERED)
        entry.next_send_at = None
        self.binding_update_list.remove(entry.destination)
        if acknowledged:
            self._events.append(BindingDeregistered(entry.destination))
        self._events.append(ReturnedHome(self.home_address))
