"""Mobile node side of route optimisation (RFC 6275 11.6, 11.7.2, 11.7.3), sans-IO.

One Binding Update List entry (table 210, `CorrespondentEntry`) per correspondent, kept apart
from the home registration's `MobileNode` so each stays small. aioquic shape: inputs
`home_registered`, `home_lost`, `returned_home`, `want(cn)` (the data path has traffic for
a CN that is not on the direct path), `receive(parsed, message, now)`,
`receive_parameter_problem(cn, now)`, `handle_timer(now)`; outputs `messages_to_send()`
(a message whose source is the home address goes through the HA tunnel while away),
`next_event()` (`RouteOptimised` / `RouteTunnelled`, netstack/mobility/ro_events.py), `get_timer()`.
The correspondent's replies (HoT, CoT, BA, BE) are handled in netstack/mobility/ro_replies.py.

Choices where RFC 6275 leaves room:
- Return routability starts on traffic, once the home registration is accepted (11.7.2), for
  every correspondent or the configured ones; never for the HA or the home link.
- HoTI and CoTI leave together; retransmitted after 1, 2, 4 s; a keygen token is reused while
  younger than MAX_TOKEN_LIFETIME (5.2.7), so after a move only the care-of test is redone.
- The BU asks for MAX_RR_BINDING_LIFETIME, never more than the home binding has left, with
  A set: the direct path starts at the authenticated BA, never before.
- Refresh at 85% of the granted lifetime, or on a Binding Refresh Request, but only when the
  direct path carried packets since the last refresh; otherwise the entry lapses.
- Three unanswered transmissions of any exchange, an ICMPv6 Parameter Problem, a Binding
  Error status 2 or a refusal mark the correspondent `unsupported` for `unsupported_hold`
  seconds (UMIP keeps such a mark too): traffic stays in the tunnel and is never held.
- A Binding Error status 1 or an expired binding removes the entry at once (tunnel); the next
  packet starts return routability again.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from ipaddress import IPv6Address, IPv6Network

from netstack.mobility.constants import (
    DEFAULT_REFRESH_FRACTION,
    INITIAL_BINDACK_TIMEOUT,
    LIFETIME_UNIT,
    MAX_RR_BINDING_LIFETIME,
    MAX_TOKEN_LIFETIME,
)
from netstack.mobility.correspondent_entry import CorrespondentEntry, Exchange, RouteState, Token
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.mobility.return_routability import binding_management_key, sign
from netstack.mobility.ro_events import RouteEvent, RouteOptimised, RouteTunnelled
from netstack.mobility.ro_replies import CorrespondentReplies
from netstack.mobility.sequence import random_initial_sequence, seq_next
from netstack.wire.ipv6 import ParsedPacket
from netstack.wire.mh import (
    BindingAck,
    BindingError,
    BindingRefreshRequest,
    BindingUpdate,
    CareOfTest,
    CareOfTestInit,
    HomeTest,
    HomeTestInit,
    MobilityMessage,
    NonceIndices,
)

__all__ = ["CorrespondentRegistrations", "RouteOptimised", "RouteTunnelled"]



class CorrespondentRegistrations(CorrespondentReplies):
    """Return routability and correspondent registration for every CN (table 210 rows)."""

    def __init__(
        self,
        home_address: IPv6Address,
        home_agent: IPv6Address,
        home_prefix: IPv6Network,
        *,
        correspondents: tuple[IPv6Network, ...] | None = None,
        requested_lifetime: int = MAX_RR_BINDING_LIFETIME,
        initial_timeout: float = INITIAL_BINDACK_TIMEOUT,
        max_transmissions: int = 3,
        unsupported_hold: float = 120.0,
        refresh_fraction: float = DEFAULT_REFRESH_FRACTION,
        rng: random.Random | None = None,
    ) -> None:
        self.home_address = home_address
        self.home_agent = home_agent
        self.home_prefix = home_prefix
        self.correspondents = correspondents  # None: every correspondent
        self.requested_lifetime = min(requested_lifetime, MAX_RR_BINDING_LIFETIME)
        self.initial_timeout = initial_timeout
        self.max_transmissions = max_transmissions
        self.unsupported_hold = unsupported_hold
        self.refresh_fraction = refresh_fraction
        self.entries: dict[IPv6Address, CorrespondentEntry] = {}
        self.counters: Counter[str] = Counter()
        self.care_of_address: IPv6Address | None = None  # while the home binding is accepted
        self.home_expires_at: float | None = None
        self._rng = rng if rng is not None else random.Random()
        self._sequence: dict[IPv6Address, int] = {}
        self._outgoing: list[OutgoingMobilityMessage] = []
        self._events: deque[RouteEvent] = deque()

    # ------------------------------------------------------------ outputs

    def messages_to_send(self) -> list[OutgoingMobilityMessage]:
        out, self._outgoing = self._outgoing, []
        return out

    def next_event(self) -> RouteEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        deadlines = [t for e in self.entries.values() for t in e.deadlines()]
        return min(deadlines) if deadlines else None

    def as_list(self, now: float) -> list[dict[str, object]]:
        return [e.as_dict(now) for e in self.entries.values()]

    # ------------------------------------------------------------ inputs: home registration

    def home_registered(self, care_of: IPv6Address, expires_at: float, now: float) -> None:
        """The HA accepted our binding for `care_of` (BA routine): RR may run from this CoA."""
        moved = care_of != self.care_of_address
        self.care_of_address = care_of
        self.home_expires_at = expires_at
        if not moved:
            return
        for entry in list(self.entries.values()):
            if entry.state is RouteState.UNSUPPORTED:
                continue
            self._tunnel(entry, "moved")
            entry.care_of_address = care_of
            entry.care_of_token = None  # 11.7.2: a new CoA needs a new care-of test
            self._begin(entry, now)

    def home_lost(self, now: float) -> None:
        """No home binding any more (refused, expired): everything back to the tunnel."""
        self.care_of_address = None
        for entry in list(self.entries.values()):
            self._remove(entry, "home binding lost")

    def returned_home(self, now: float) -> None:
        """11.5.4: de-register from home with each correspondent that has our binding."""
        self.care_of_address = None
        for entry in list(self.entries.values()):
            if entry.state not in (RouteState.REGISTERED, RouteState.REGISTERING):
                self._remove(entry, "at home")
                continue
            self._tunnel(entry, "at home")
            entry.state = RouteState.DEREGISTERING
            entry.care_of_address = self.home_address
            entry.care_of_token = None
            entry.care_of_test.stop()
            entry.expires_at = entry.refresh_at = None
            self._begin(entry, now)

    # ------------------------------------------------------------ inputs: data path

    def want(self, correspondent: IPv6Address, now: float) -> bool:
        """Traffic to `correspondent` left through the tunnel: start RR if policy allows.
        Returns True when the address is (now) handled here, False when RO never applies."""
        if correspondent in self.entries:
            return True
        if self.care_of_address is None or not self._eligible(correspondent):
            return False
        entry = CorrespondentEntry(correspondent, self.home_address, self.care_of_address)
        self.entries[correspondent] = entry
        self.counters["rr_started"] += 1
        self._begin(entry, now)
        return True

    def _eligible(self, address: IPv6Address) -> bool:
        if (address == self.home_agent or address in self.home_prefix or address.is_multicast
                or address.is_link_local or address.is_loopback or address.is_unspecified):
            return False
        if self.correspondents is None:
            return True
        return any(address in net for net in self.correspondents)

    # ------------------------------------------------------------ inputs: network

    def receive(self, parsed: ParsedPacket, message: MobilityMessage, now: float) -> None:
        """A Mobility Header message from a correspondent (HoT via the tunnel, the rest direct)."""
        entry = self.entries.get(parsed.src)
        if entry is None:
            self.counters["rx_ro_unknown_correspondent"] += 1
            return
        if isinstance(message, HomeTest):
            self._home_test(entry, message, now)
        elif isinstance(message, CareOfTest):
            self._care_of_test(entry, parsed, message, now)
        elif isinstance(message, BindingAck):
            self._binding_ack(entry, parsed, message, now)
        elif isinstance(message, BindingRefreshRequest):
            if entry.state is RouteState.REGISTERED:
                self.counters["brr_received"] += 1
                self._begin(entry, now)
            else:
                self.counters["brr_ignored"] += 1
        elif isinstance(message, BindingError):
            self._binding_error(entry, message, now)
        else:
            self.counters["rx_ro_ignored"] += 1

    def receive_parameter_problem(self, correspondent: IPv6Address, now: float) -> None:
        """ICMPv6 Parameter Problem from a CN for our Mobility Header: it has no Mobile IPv6."""
        entry = self.entries.get(correspondent)
        if entry is None or entry.state is RouteState.UNSUPPORTED:
            return
        self.counters["rr_parameter_problem"] += 1
        self._unsupported(entry, now, "ICMPv6 parameter problem")

    # ------------------------------------------------------------ timers

    def handle_timer(self, now: float) -> None:
        for entry in list(self.entries.values()):
            if entry.retry_at is not None and entry.retry_at <= now:
                self.entries.pop(entry.destination, None)  # forget: the next packet retries
                continue
            if entry.expires_at is not None and entry.expires_at <= now:
                self.counters["ro_binding_expired"] += 1
                self._remove(entry, "binding expired")
                continue
            if entry.refresh_at is not None and entry.refresh_at <= now:
                entry.refresh_at = None
                used = entry.inserter is not None and entry.inserter.packets > entry.packets_at_refresh
                if used:
                    self._begin(entry, now)  # the expiry stays armed until the new BA
            for exchange, send in ((entry.home_test, self._send_hoti),
                                   (entry.care_of_test, self._send_coti),
                                   (entry.update, self._send_bu)):
                if exchange.next_at is not None and exchange.next_at <= now:
                    if exchange.transmissions >= self.max_transmissions:
                        self.counters["rr_no_answer"] += 1
                        if entry.state is RouteState.DEREGISTERING:
                            self.entries.pop(entry.destination, None)
                        else:
                            self._unsupported(entry, now, "no answer")
                        break
                    send(entry, now)

    # ------------------------------------------------------------ internals: exchanges

    def _begin(self, entry: CorrespondentEntry, now: float) -> None:
        """(Re)start: the tests whose tokens are missing or stale, else the BU right away."""
        if entry.state is not RouteState.DEREGISTERING:
            entry.state = (RouteState.REGISTERED if entry.direct
                           else RouteState.RETURN_ROUTABILITY)
        need_home = not self._fresh(entry.home_token, now)
        need_care_of = entry.state is not RouteState.DEREGISTERING and not (
            self._fresh(entry.care_of_token, now)
            and entry.care_of_token is not None
            and entry.care_of_token.address == entry.care_of_address
        )
        if need_home:
            entry.home_token = None
            self._start_exchange(entry.home_test, entry, now, self._send_hoti)
        if need_care_of:
            entry.care_of_token = None
            self._start_exchange(entry.care_of_test, entry, now, self._send_coti)
        if not need_home and not need_care_of:
            self._start_exchange(entry.update, entry, now, self._send_bu)

    def _fresh(self, token: Token | None, now: float) -> bool:
        return token is not None and now - token.received_at < MAX_TOKEN_LIFETIME

    def _start_exchange(self, exchange: Exchange, entry: CorrespondentEntry, now: float,
                        send: object) -> None:
        exchange.transmissions = 0
        exchange.timeout = self.initial_timeout
        send(entry, now)  # type: ignore[operator]

    def _schedule(self, exchange: Exchange, now: float) -> None:
        exchange.transmissions += 1
        exchange.next_at = now + exchange.timeout
        exchange.timeout *= 2

    def _cookie(self) -> bytes:
        return self._rng.getrandbits(64).to_bytes(8, "big")

    def _send_hoti(self, entry: CorrespondentEntry, now: float) -> None:
        entry.home_test.cookie = self._cookie()
        self._outgoing.append(OutgoingMobilityMessage(
            self.home_address, entry.destination, HomeTestInit(entry.home_test.cookie)))
        self.counters["hoti_sent"] += 1
        self._schedule(entry.home_test, now)

    def _send_coti(self, entry: CorrespondentEntry, now: float) -> None:
        entry.care_of_test.cookie = self._cookie()
        self._outgoing.append(OutgoingMobilityMessage(
            entry.care_of_address, entry.destination, CareOfTestInit(entry.care_of_test.cookie)))
        self.counters["coti_sent"] += 1
        self._schedule(entry.care_of_test, now)

    def _send_bu(self, entry: CorrespondentEntry, now: float) -> None:
        home = entry.home_token
        assert home is not None
        deregistering = entry.state is RouteState.DEREGISTERING
        care_of = entry.care_of_token
        if deregistering:
            lifetime, care_of_index, care_of_value = 0, 0, None
        else:
            assert care_of is not None
            lifetime = self.requested_lifetime
            if self.home_expires_at is not None:
                lifetime = min(lifetime, max(0, int(self.home_expires_at - now)))
            lifetime -= lifetime % LIFETIME_UNIT
            care_of_index, care_of_value = care_of.nonce_index, care_of.value
            if entry.state is RouteState.RETURN_ROUTABILITY:
                entry.state = RouteState.REGISTERING
        last = self._sequence.get(entry.destination)
        sequence = random_initial_sequence(self._rng) if last is None else seq_next(last)
        self._sequence[entry.destination] = sequence
        entry.kbm = binding_management_key(home.value, care_of_value)
        update = BindingUpdate(sequence=sequence, lifetime=lifetime, ack=True,
                               home_registration=False,
                               options=(NonceIndices(home.nonce_index, care_of_index),))
        signed = sign(update, entry.kbm, entry.care_of_address, entry.destination)
        home_option = None if deregistering else self.home_address
        self._outgoing.append(OutgoingMobilityMessage(
            entry.care_of_address, entry.destination, signed, home_address=home_option))
        self.counters["ro_bu_sent"] += 1
        entry.sequence = sequence
        entry.requested_lifetime = lifetime
        entry.sent_at = now
        self._schedule(entry.update, now)

    # ------------------------------------------------------------ internals: outcomes

    def _tunnel(self, entry: CorrespondentEntry, reason: str) -> None:
        if entry.inserter is not None:
            entry.inserter = None
            self._events.append(RouteTunnelled(entry.destination, reason))

    def _remove(self, entry: CorrespondentEntry, reason: str) -> None:
        self._tunnel(entry, reason)
        self.entries.pop(entry.destination, None)

    def _unsupported(self, entry: CorrespondentEntry, now: float, reason: str) -> None:
        self._tunnel(entry, reason)
        entry.state = RouteState.UNSUPPORTED
        entry.reason = reason
        entry.retry_at = now + self.unsupported_hold
        entry.expires_at = entry.refresh_at = None
        for exchange in (entry.home_test, entry.care_of_test, entry.update):
            exchange.stop()
        self.counters["rr_unsupported"] += 1
