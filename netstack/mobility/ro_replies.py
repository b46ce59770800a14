"""Mobile node side of route optimisation: the replies a correspondent sends (RFC 6275 11.6.2,
11.7.3), sans-IO.

Home Test and Care-of Test fill the keygen tokens of the Binding Update List entry (table 210,
`CorrespondentEntry`); the Binding Acknowledgement (authenticated with Kbm) opens the direct
path; a Binding Error removes the binding or marks the correspondent unsupported. A mixin of
`CorrespondentRegistrations` (netstack/mobility/route_optimisation.py), which owns the state,
the exchanges and the outcomes these handlers call.
"""

from __future__ import annotations

from collections import Counter, deque
from ipaddress import IPv6Address
from typing import TYPE_CHECKING

from netstack.mobility.bul import status_reason
from netstack.mobility.correspondent_entry import CorrespondentEntry, RouteState, Token
from netstack.mobility.return_routability import verify
from netstack.mobility.ro_events import RouteEvent, RouteOptimised
from netstack.wire.ipv6 import ParsedPacket
from netstack.wire.mh import (
    BindingAck,
    BindingAckStatus,
    BindingError,
    BindingErrorStatus,
    CareOfTest,
    HomeTest,
)
from netstack.wire.ro_headers import HomeAddressInserter

if TYPE_CHECKING:
    from netstack.mobility.correspondent_entry import Exchange

# 11.7.3: which keygen token(s) to drop when the correspondent says a nonce index expired.
_NONCE_ERRORS = {
    BindingAckStatus.EXPIRED_HOME_NONCE_INDEX: (True, False),
    BindingAckStatus.EXPIRED_CARE_OF_NONCE_INDEX: (False, True),
    BindingAckStatus.EXPIRED_NONCES: (True, True),
}


class CorrespondentReplies:
    """HoT, CoT, BA and BE handling for `CorrespondentRegistrations` (table 210 rows)."""

    home_address: IPv6Address
    refresh_fraction: float
    entries: dict[IPv6Address, CorrespondentEntry]
    counters: Counter[str]
    _sequence: dict[IPv6Address, int]
    _events: deque[RouteEvent]

    if TYPE_CHECKING:  # provided by CorrespondentRegistrations
        def _begin(self, entry: CorrespondentEntry, now: float) -> None: ...
        def _start_exchange(self, exchange: Exchange, entry: CorrespondentEntry, now: float,
                            send: object) -> None: ...
        def _send_bu(self, entry: CorrespondentEntry, now: float) -> None: ...
        def _remove(self, entry: CorrespondentEntry, reason: str) -> None: ...
        def _unsupported(self, entry: CorrespondentEntry, now: float, reason: str) -> None: ...

    def _home_test(self, entry: CorrespondentEntry, message: HomeTest, now: float) -> None:
        if entry.home_test.next_at is None or message.home_init_cookie != entry.home_test.cookie:
            self.counters["hot_unexpected"] += 1
            return
        entry.home_test.stop()
        entry.home_token = Token(message.home_keygen_token, message.home_nonce_index, now,
                                 self.home_address)
        self.counters["hot_received"] += 1
        self._tests_done(entry, now)

    def _care_of_test(self, entry: CorrespondentEntry, parsed: ParsedPacket,
                      message: CareOfTest, now: float) -> None:
        if (entry.care_of_test.next_at is None
                or message.care_of_init_cookie != entry.care_of_test.cookie
                or parsed.dst != entry.care_of_address):
            self.counters["cot_unexpected"] += 1
            return
        entry.care_of_test.stop()
        entry.care_of_token = Token(message.care_of_keygen_token, message.care_of_nonce_index,
                                    now, entry.care_of_address)
        self.counters["cot_received"] += 1
        self._tests_done(entry, now)

    def _tests_done(self, entry: CorrespondentEntry, now: float) -> None:
        if entry.home_test.next_at is None and entry.care_of_test.next_at is None:
            self._start_exchange(entry.update, entry, now, self._send_bu)

    def _binding_ack(self, entry: CorrespondentEntry, parsed: ParsedPacket,
                     message: BindingAck, now: float) -> None:
        if entry.update.next_at is None:
            self.counters["ro_ba_unexpected"] += 1
            return
        status = message.status
        if status in _NONCE_ERRORS:
            if message.sequence != entry.sequence:
                self.counters["ro_ba_sequence_mismatch"] += 1
                return
            # 11.7.3: unauthenticated by necessity; redo the test(s) whose nonce expired.
            home, care_of = _NONCE_ERRORS[BindingAckStatus(status)]
            self.counters[f"ro_ba_{status}"] += 1
            entry.update.stop()
            if home:
                entry.home_token = None
            if care_of:
                entry.care_of_token = None
            self._begin(entry, now)
            return
        if not verify(parsed.payload, entry.kbm, entry.care_of_address, entry.destination):
            self.counters["ro_ba_bad_authenticator"] += 1
            return
        entry.last_status = status
        entry.reason = status_reason(status)
        if status == BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW:
            self.counters["ro_ba_resynchronised"] += 1
            self._sequence[entry.destination] = message.sequence
            self._send_bu(entry, now)
            return
        if message.sequence != entry.sequence:
            self.counters["ro_ba_sequence_mismatch"] += 1
            return
        entry.update.stop()
        if entry.state is RouteState.DEREGISTERING:
            self.counters["ro_deregistered"] += 1
            self.entries.pop(entry.destination, None)
            return
        if status >= 128:
            self.counters["ro_ba_refused"] += 1
            self._unsupported(entry, now, entry.reason)
            return
        granted = min(message.lifetime, entry.requested_lifetime)
        if granted <= 0:
            self._unsupported(entry, now, "zero lifetime granted")
            return
        start = entry.sent_at if entry.sent_at is not None else now
        entry.state = RouteState.REGISTERED
        entry.lifetime = granted
        entry.expires_at = start + granted
        entry.refresh_at = start + granted * self.refresh_fraction
        self.counters["ro_ba_accepted"] += 1
        if entry.inserter is None or entry.inserter.care_of_address != entry.care_of_address.packed:
            entry.inserter = HomeAddressInserter(entry.care_of_address.packed,
                                                 self.home_address.packed)
            self._events.append(RouteOptimised(entry.destination, entry.inserter))
        entry.packets_at_refresh = entry.inserter.packets

    def _binding_error(self, entry: CorrespondentEntry, message: BindingError, now: float) -> None:
        if message.home_address not in (self.home_address, IPv6Address("::")):
            self.counters["ro_be_other_home_address"] += 1
            return
        if message.status == BindingErrorStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS_OPTION:
            self.counters["ro_be_binding_removed"] += 1
            self._remove(entry, "binding error")
        elif message.status == BindingErrorStatus.UNRECOGNIZED_MH_TYPE:
            self.counters["ro_be_unrecognised_mh"] += 1
            self._unsupported(entry, now, "binding error 2")
        else:
            self.counters[f"ro_be_status_{message.status}"] += 1
