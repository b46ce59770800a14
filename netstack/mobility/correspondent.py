"""Correspondent node with route optimisation (RFC 6275 sections 5.2, 9), sans-IO.

aioquic shape: inputs `receive_mobility(parsed, now)` (any Mobility Header packet for this
node), `home_address_without_binding(src, home_address, now)` (the data path met a Home
Address option it cannot accept), `handle_timer(now)`; outputs `messages_to_send()`,
`get_timer()`, and for the data path `bindings` (home address octets -> entry, whose
`inserter` adds the type 2 Routing Header and whose `care_of` checks the HAO's source).

Choices where RFC 6275 leaves room:
- Kcn is 20 random octets made at start (never saved): a restart forgets every binding, and
  the mobile nodes find out through Binding Errors (9.3.1) and run return routability again.
- 16 nonces, a new one every MAX_NONCE_LIFETIME / 16 s while tests ask for them; an index no
  longer held is expired (BA 136 / 137 / 138, sent without Binding Authorization Data).
- Checks in 9.5.1 order: Nonce Indices present, nonces fresh, authenticator (a wrong one is
  dropped silently), sequence number (BA 135, authenticated), then the binding.
- A BU with H set gets BA 131 (we are no home agent), unless it carries return routability
  options (Nonce Indices / Binding Authorization Data): such a BU is neither a valid home
  registration nor a valid correspondent registration and is dropped silently (TAHI
  mip6-cn-20 BU_A1_H1 / BU_A0_H1). Lifetimes are capped at MAX_RR_BINDING_LIFETIME (5.2.6).
- Sequence numbers use RFC 6275 9.5.1's window (a value 32768 ahead is newer, as at the HA).
- A Mobility Header the codec refuses gets the 9.2 answer (mh_errors): ICMP Parameter
  Problem for piggybacking or a bad Header Len, Binding Error 2 (with the HAO's address) for
  an unknown type, nothing for a bad checksum; rate limited like the Binding Errors.
- A Binding Refresh Request goes once per binding, at `refresh_request_fraction` (90%) of its
  lifetime, when the binding carried traffic in the last `in_use_window` seconds (9.5.5).
- Binding Errors are limited to `binding_error_rate` per second (9.3.3 asks for a limit).
"""

from __future__ import annotations

import random
from collections import Counter, deque
from dataclasses import dataclass, field
from ipaddress import IPv6Address

from netstack.mobility.constants import LIFETIME_UNIT, MAX_RR_BINDING_LIFETIME
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.mobility.mh_errors import (
    ErrorRateLimiter,
    ParameterProblemReply,
    mobility_header_error,
)
from netstack.mobility.return_routability import (
    KCN_LEN,
    NonceTable,
    binding_management_key,
    care_of_keygen_token,
    home_keygen_token,
    sign,
    verify,
)
from netstack.mobility.sequence import bu_sequence_is_newer
from netstack.wire.errors import ParseError, UnknownMobilityHeaderType
from netstack.wire.ipv6 import ParsedPacket
from netstack.wire.mh import (
    BindingAck,
    BindingAckStatus,
    BindingAuthorizationData,
    BindingError,
    BindingErrorStatus,
    BindingRefreshRequest,
    BindingUpdate,
    CareOfTest,
    CareOfTestInit,
    HomeTest,
    HomeTestInit,
    NonceIndices,
)
from netstack.wire.mh_codec import decode_mobility_packet
from netstack.wire.ro_headers import RoutingHeaderInserter

__all__ = ["Correspondent", "CorrespondentBinding"]

_UNSPECIFIED = IPv6Address("::")


@dataclass
class CorrespondentBinding:
    """One binding cache entry of a correspondent (RFC 6275 9.1)."""

    home_address: IPv6Address
    care_of_address: IPv6Address
    lifetime: int
    sequence: int
    registered_at: float
    expires_at: float
    last_used: float = 0.0
    refresh_requested: bool = False
    inserter: RoutingHeaderInserter = field(init=False)
    care_of: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.care_of = self.care_of_address.packed
        self.inserter = RoutingHeaderInserter(self.care_of, self.home_address.packed)

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "home_address": str(self.home_address),
            "care_of_address": str(self.care_of_address),
            "lifetime": max(0, int(self.expires_at - now)),
            "sequence": self.sequence,
            "idle": round(now - self.last_used, 1) if self.last_used else None,
        }


class Correspondent:
    """A correspondent node's side of route optimisation: HoT/CoT, BU checks, binding cache."""

    def __init__(
        self,
        address: IPv6Address,
        *,
        rng: random.Random | None = None,
        kcn: bytes | None = None,
        nonces: NonceTable | None = None,
        max_binding_lifetime: int = MAX_RR_BINDING_LIFETIME,
        refresh_request_fraction: float = 0.9,
        in_use_window: float = 60.0,
        binding_error_rate: int = 10,
    ) -> None:
        self.address = address
        self._rng = rng if rng is not None else random.SystemRandom()
        self.kcn = kcn if kcn is not None else self._rng.getrandbits(KCN_LEN * 8).to_bytes(KCN_LEN, "big")
        self.nonces = nonces if nonces is not None else NonceTable(self._rng)
        self.max_binding_lifetime = max_binding_lifetime
        self.refresh_request_fraction = refresh_request_fraction
        self.in_use_window = in_use_window
        self.binding_error_rate = binding_error_rate
        # The data path's view: home address octets -> binding.
        self.bindings: dict[bytes, CorrespondentBinding] = {}
        self.counters: Counter[str] = Counter()
        self._outgoing: list[OutgoingMobilityMessage] = []
        self._errors_sent: deque[float] = deque()
        self._problems: list[ParameterProblemReply] = []
        self._problem_limiter = ErrorRateLimiter(rate=binding_error_rate, burst=binding_error_rate)

    # ------------------------------------------------------------ outputs

    def messages_to_send(self) -> list[OutgoingMobilityMessage]:
        out, self._outgoing = self._outgoing, []
        return out

    def parameter_problems_to_send(self) -> list[ParameterProblemReply]:
        """ICMPv6 Parameter Problems for refused Mobility Headers (RFC 6275 9.2)."""
        out, self._problems = self._problems, []
        return out

    def get_timer(self) -> float | None:
        deadlines = [b.expires_at for b in self.bindings.values()]
        deadlines += [self._refresh_request_at(b) for b in self.bindings.values()
                      if not b.refresh_requested]
        return min(deadlines) if deadlines else None

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "route_optimisation": True,
            "binding_cache": [b.as_dict(now) for b in self.bindings.values()],
            "nonces": len(self.nonces),
            "max_binding_lifetime": self.max_binding_lifetime,
        }

    # ------------------------------------------------------------ inputs

    def receive_mobility(self, parsed: ParsedPacket, now: float) -> None:
        """A Mobility Header packet addressed to this node (HAO and RH2 already parsed)."""
        try:
            message = decode_mobility_packet(parsed)
        except UnknownMobilityHeaderType:
            self._count("rx_mh_unknown_type")
            home = parsed.home_address if parsed.home_address is not None else _UNSPECIFIED
            self._binding_error(parsed.src, home, BindingErrorStatus.UNRECOGNIZED_MH_TYPE, now)
            return
        except ParseError as exc:
            self._count(f"rx_mh_dropped_{exc.reason}")
            reply = mobility_header_error(parsed, exc)
            if isinstance(reply, ParameterProblemReply):
                if self._problem_limiter.allow(now):
                    self._count("parameter_problem_sent")
                    self._problems.append(reply)
                else:
                    self._count("parameter_problem_rate_limited")
            return
        if isinstance(message, HomeTestInit | CareOfTestInit):
            if parsed.home_address is not None:
                self._count("rx_test_init_with_hao_ignored")  # RFC 6275 9.4.1 / 9.4.2
                return
            if isinstance(message, HomeTestInit):
                self._home_test(parsed.src, message, now)
            else:
                self._care_of_test(parsed.src, message, now)
        elif isinstance(message, BindingUpdate):
            self._binding_update(parsed, message, now)
        else:
            self._count("rx_mh_ignored")

    def home_address_without_binding(self, src: bytes, home_address: bytes, now: float) -> None:
        """RFC 6275 9.3.1: a HAO whose (home address, source) pair has no binding: BE 1."""
        self._count("rx_hao_without_binding")
        self._binding_error(
            IPv6Address(src), IPv6Address(home_address),
            BindingErrorStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS_OPTION, now,
        )

    def handle_timer(self, now: float) -> None:
        for key, binding in list(self.bindings.items()):
            if binding.expires_at <= now:
                del self.bindings[key]
                self._count("binding_expired")
                continue
            if not binding.refresh_requested and self._refresh_request_at(binding) <= now:
                binding.refresh_requested = True
                if now - binding.last_used <= self.in_use_window:
                    self._count("brr_sent")
                    self._outgoing.append(OutgoingMobilityMessage(
                        self.address, binding.care_of_address, BindingRefreshRequest(),
                        routing_type2=binding.home_address))

    # ------------------------------------------------------------ internals

    def _count(self, key: str) -> None:
        self.counters[key] += 1

    def _refresh_request_at(self, binding: CorrespondentBinding) -> float:
        return binding.registered_at + binding.lifetime * self.refresh_request_fraction

    def _home_test(self, home_address: IPv6Address, message: HomeTestInit, now: float) -> None:
        index, nonce = self.nonces.current(now)
        token = home_keygen_token(self.kcn, home_address, nonce)
        self._count("hot_sent")
        self._outgoing.append(OutgoingMobilityMessage(
            self.address, home_address, HomeTest(index, message.home_init_cookie, token)))

    def _care_of_test(self, care_of: IPv6Address, message: CareOfTestInit, now: float) -> None:
        index, nonce = self.nonces.current(now)
        token = care_of_keygen_token(self.kcn, care_of, nonce)
        self._count("cot_sent")
        self._outgoing.append(OutgoingMobilityMessage(
            self.address, care_of, CareOfTest(index, message.care_of_init_cookie, token)))

    def _binding_update(self, parsed: ParsedPacket, message: BindingUpdate, now: float) -> None:
        """RFC 6275 9.5.1 checks in order, then the binding cache (9.5.2, 9.5.3)."""
        home_address = parsed.effective_source
        care_of = parsed.src
        if message.home_registration and any(
                isinstance(o, NonceIndices | BindingAuthorizationData) for o in message.options):
            self._count("bu_home_registration_with_rr_options_dropped")
            return
        if message.home_registration:
            self._count("bu_home_registration_refused")
            self._ack(home_address, care_of, BindingAckStatus.HOME_REGISTRATION_NOT_SUPPORTED,
                      message.sequence, None)
            return
        indices = next((o for o in message.options if isinstance(o, NonceIndices)), None)
        if indices is None:
            self._count("bu_without_nonce_indices")
            return
        from_home = care_of == home_address
        home_nonce = self.nonces.lookup(indices.home_nonce_index, now)
        care_of_nonce = None if from_home else self.nonces.lookup(indices.care_of_nonce_index, now)
        home_expired = home_nonce is None
        care_of_expired = not from_home and care_of_nonce is None
        if home_expired or care_of_expired:
            if home_expired and care_of_expired:
                status = BindingAckStatus.EXPIRED_NONCES
            elif home_expired:
                status = BindingAckStatus.EXPIRED_HOME_NONCE_INDEX
            else:
                status = BindingAckStatus.EXPIRED_CARE_OF_NONCE_INDEX
            self._count(f"bu_refused_{int(status)}")
            self._ack(home_address, care_of, status, message.sequence, None)
            return
        assert home_nonce is not None
        home_token = home_keygen_token(self.kcn, home_address, home_nonce)
        care_of_token = None
        if care_of_nonce is not None:
            care_of_token = care_of_keygen_token(self.kcn, care_of, care_of_nonce)
        kbm = binding_management_key(home_token, care_of_token)
        if not verify(parsed.payload, kbm, care_of, self.address):
            self._count("bu_bad_authenticator")  # silently discarded (RFC 6275 9.5.1)
            return
        key = home_address.packed
        existing = self.bindings.get(key)
        if existing is not None and not bu_sequence_is_newer(message.sequence, existing.sequence):
            self._count("bu_refused_135")
            self._ack(home_address, care_of, BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW,
                      existing.sequence, kbm)
            return
        granted = min(message.lifetime, self.max_binding_lifetime)
        granted -= granted % LIFETIME_UNIT
        if from_home or granted <= 0:
            if self.bindings.pop(key, None) is not None:
                self._count("binding_deleted")
            else:
                self._count("bu_deregistration_without_binding")
            if message.ack:
                self._ack(home_address, care_of, BindingAckStatus.ACCEPTED, message.sequence,
                          kbm, lifetime=0)
            return
        self.bindings[key] = CorrespondentBinding(
            home_address, care_of, granted, message.sequence, now, now + granted, last_used=now)
        self._count("binding_updated" if existing is not None else "binding_created")
        if message.ack:
            self._ack(home_address, care_of, BindingAckStatus.ACCEPTED, message.sequence, kbm,
                      lifetime=granted)

    def _ack(
        self,
        home_address: IPv6Address,
        care_of: IPv6Address,
        status: int,
        sequence: int,
        kbm: bytes | None,
        *,
        lifetime: int = 0,
    ) -> None:
        ack: BindingAck = BindingAck(status=int(status), sequence=sequence, lifetime=lifetime)
        if kbm is not None:
            signed = sign(ack, kbm, care_of, self.address)
            assert isinstance(signed, BindingAck)
            ack = signed
        self._count("ba_sent")
        rh2 = home_address if care_of != home_address else None
        self._outgoing.append(OutgoingMobilityMessage(self.address, care_of, ack, routing_type2=rh2))

    def _binding_error(self, dst: IPv6Address, home_address: IPv6Address, status: int,
                       now: float) -> None:
        sent = self._errors_sent
        while sent and now - sent[0] >= 1.0:
            sent.popleft()
        if len(sent) >= self.binding_error_rate:
            self._count("be_rate_limited")
            return
        sent.append(now)
        self._count(f"be_sent_{int(status)}")
        self._outgoing.append(OutgoingMobilityMessage(
            self.address, dst, BindingError(status=int(status), home_address=home_address)))
