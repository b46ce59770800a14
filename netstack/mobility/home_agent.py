"""Home agent (RFC 6275 section 10; RFC 3963 mobile routers), sans-IO.

Input `receive_binding_update(src, home_address, message, now, *, protected)`, the daemon's
answer to a DadRequested event `dad_result(home_address, duplicate, now)`, and
`handle_timer(now)` for binding expiry. Outputs: `messages_to_send()` (Binding
Acknowledgements), `next_event()`, `get_timer()`. `lookup(dst16)` serves the hot path.

Order of checks on a BU (first match answers): unprotected when protection is required
(silently dropped, counted), R without H (140), H flag missing (131), home address outside the home prefix
(132), policy (129), mobile router not permitted (140), the prefix table's answer (141 invalid prefix, 142 not
authorised, 143 implicit mode without prefixes; netstack.mobility.prefix_table), R flag
different from the existing binding's (139), sequence not greater than the cached one (135
with the cached sequence), de-registration
without a binding (133). A successful registration is acknowledged only when the A flag is
set; refusals are always acknowledged (RFC 6275 10.3.1).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from netstack.mobility.binding_cache import BindingCache, BindingCacheEntry
from netstack.mobility.constants import (
    DEFAULT_TIMERS,
    LIFETIME_UNIT,
    MAX_WIRE_LIFETIME,
    MobilityTimers,
)
from netstack.mobility.events import (
    BindingCreated,
    BindingDeleted,
    BindingUpdated,
    DadRequested,
    HomeAgentEvent,
)
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.mobility.prefix_table import PrefixTable
from netstack.mobility.sequence import bu_sequence_is_newer
from netstack.wire.mh import (
    BindingAck,
    BindingAckStatus,
    BindingRefreshAdvice,
    BindingUpdate,
    MobileNetworkPrefix,
    MobilityOption,
)


@dataclass(frozen=True)
class HomeAgentPolicy:
    """Who may register and for how long.

    `allowed_home_addresses`: None = any address in the home prefix.
    `max_lifetime`: granted lifetimes are capped to this (seconds).
    `require_protection`: BUs not protected by IPsec are dropped without an answer.
    `refresh_interval`: when set, BAs carry a Binding Refresh Advice with this interval.
    `allow_mobile_routers`: accept the R flag (RFC 3963), else status 140.
    `authorized_prefixes`: None = a mobile router may register any prefix; else
    home address → prefixes it may register (status 142 otherwise).
    """

    allowed_home_addresses: frozenset[IPv6Address] | None = None
    refused_home_addresses: frozenset[IPv6Address] = frozenset()
    max_lifetime: int = 3600
    require_protection: bool = False
    refresh_interval: int | None = None
    allow_mobile_routers: bool = True
    authorized_prefixes: dict[IPv6Address, frozenset[IPv6Network]] | None = None


DEFAULT_POLICY = HomeAgentPolicy()


@dataclass
class _PendingRegistration:
    """A first BU for a home address, parked while the daemon runs DAD on the home link."""

    care_of_address: IPv6Address
    message: BindingUpdate
    received_at: float


class HomeAgent:
    """A home agent's registration service and Binding Cache."""

    def __init__(
        self,
        address: IPv6Address,
        *,
        home_prefix: IPv6Network,
        policy: HomeAgentPolicy = DEFAULT_POLICY,
        timers: MobilityTimers = DEFAULT_TIMERS,
        prefix_table: PrefixTable | None = None,
    ) -> None:
        self.address = address
        # RFC 3963: prefixes each mobile router may register (None: policy.authorized_prefixes)
        self.prefix_table = prefix_table
        self.home_prefix = home_prefix
        self.policy = policy
        self.timers = timers
        self.binding_cache = BindingCache()
        self.counters: dict[str, int] = {}
        self._pending_dad: dict[IPv6Address, _PendingRegistration] = {}
        self._outgoing: list[OutgoingMobilityMessage] = []
        self._events: deque[HomeAgentEvent] = deque()

    # ------------------------------------------------------------ outputs

    def messages_to_send(self) -> list[OutgoingMobilityMessage]:
        out, self._outgoing = self._outgoing, []
        return out

    def next_event(self) -> HomeAgentEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        return self.binding_cache.next_expiry()

    def lookup(self, destination: bytes) -> bytes | None:
        """Hot path: 16-byte destination (HoA or mobile network address) → 16-byte CoA."""
        return self.binding_cache.lookup(destination)

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "address": str(self.address),
            "home_prefix": str(self.home_prefix),
            "binding_cache": self.binding_cache.as_dict(now),
            "pending_dad": [str(a) for a in self._pending_dad],
            "prefix_table": (
                self.prefix_table.as_dict(self.binding_cache) if self.prefix_table else []
            ),
            "counters": dict(self.counters),
        }

    # ------------------------------------------------------------ inputs

    def receive_binding_update(
        self,
        src: IPv6Address,
        home_address: IPv6Address | None,
        message: BindingUpdate,
        now: float,
        *,
        protected: bool = False,
    ) -> None:
        """RFC 6275 10.3.1 / 10.3.2. `src` is the care-of address; `home_address` from the HAO
        (None when the mobile node sends from its home address, i.e. it is at home)."""
        hoa = home_address if home_address is not None else src
        if self.policy.require_protection and not protected:
            self._count("bu_unprotected_dropped")
            return
        self._count("bu_received")
        entry = self.binding_cache.get(hoa)
        if (
            entry is not None
            and message.lifetime > 0
            and message.home_registration
            and src != hoa
            and entry.mobile_router != message.mobile_router
        ):
            # RFC 3963 6.2: a node may not turn a mobile router binding into a host one, or back.
            self._acknowledge(
                src, hoa, message.sequence, BindingAckStatus.REGISTRATION_TYPE_CHANGE_DISALLOWED, 0
            )
            return
        status = self._policy_status(hoa, message)
        if status is not None:
            self._acknowledge(src, hoa, message.sequence, status, 0)
            return
        if entry is not None and not bu_sequence_is_newer(message.sequence, entry.sequence):
            self._count("bu_stale_sequence")
            self._acknowledge(
                src, hoa, entry.sequence, BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW, 0
            )
            return
        if message.lifetime == 0 or src == hoa:
            self._deregister(src, hoa, message, entry)
        elif entry is None:
            self._park_for_dad(src, hoa, message, now)
        else:
            self._register(src, hoa, message, now, created=False)

    def dad_result(self, home_address: IPv6Address, duplicate: bool, now: float) -> None:
        """The daemon's DAD answer for a DadRequested home address."""
        pending = self._pending_dad.pop(home_address, None)
        if pending is None:
            self._count("dad_result_unexpected")
            return
        if duplicate:
            self._count("dad_duplicate")
            self._acknowledge(
                pending.care_of_address,
                home_address,
                pending.message.sequence,
                BindingAckStatus.DUPLICATE_ADDRESS_DETECTION_FAILED,
                0,
            )
            return
        # DAD may have taken a while: count the lifetime from the BU's arrival.
        self._register(
            pending.care_of_address,
            home_address,
            pending.message,
            pending.received_at,
            created=True,
        )

    def restore(self, entries: list[BindingCacheEntry], now: float) -> int:
        """Re-install bindings saved before a restart (expired ones are skipped).

        Each restored binding is reported as BindingCreated, so the daemon resumes proxy ND
        and tunnelling for it. Returns how many were restored.
        """
        restored = 0
        for entry in entries:
            if entry.expires_at <= now or entry.home_address in self.binding_cache:
                continue
            self.binding_cache.put(entry)
            self._count("binding_restored")
            self._events.append(BindingCreated(entry.home_address, entry.care_of_address))
            restored += 1
        return restored

    def handle_timer(self, now: float) -> None:
        for entry in self.binding_cache.pop_expired(now):
            self._count("binding_expired")
            self._events.append(BindingDeleted(entry.home_address))

    # ------------------------------------------------------------ internals

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _policy_status(self, hoa: IPv6Address, message: BindingUpdate) -> int | None:
        policy = self.policy
        if message.mobile_router and not message.home_registration:
            return BindingAckStatus.MOBILE_ROUTER_OPERATION_NOT_PERMITTED  # RFC 3963 6.2
        if not message.home_registration:
            return BindingAckStatus.HOME_REGISTRATION_NOT_SUPPORTED
        if hoa not in self.home_prefix:
            return BindingAckStatus.NOT_HOME_SUBNET
        if (
            hoa == self.address
            or hoa in policy.refused_home_addresses
            or (
                policy.allowed_home_addresses is not None
                and hoa not in policy.allowed_home_addresses
            )
        ):
            return BindingAckStatus.ADMINISTRATIVELY_PROHIBITED
        if message.mobile_router and message.lifetime > 0:
            if not policy.allow_mobile_routers:
                return BindingAckStatus.MOBILE_ROUTER_OPERATION_NOT_PERMITTED
            if self.prefix_table is not None:
                return self.prefix_table.check(hoa, _prefixes_of(message))[0]
            if policy.authorized_prefixes is not None:
                allowed = policy.authorized_prefixes.get(hoa, frozenset())
                if any(p not in allowed for p in _prefixes_of(message)):
                    return BindingAckStatus.NOT_AUTHORIZED_FOR_PREFIX
        return None

    def _routed_prefixes(self, hoa: IPv6Address, message: BindingUpdate) -> tuple[IPv6Network, ...]:
        if self.prefix_table is not None:
            return self.prefix_table.check(hoa, _prefixes_of(message), count=False)[1]
        return _prefixes_of(message)

    def _granted_lifetime(self, requested: int) -> int:
        granted = min(requested, self.policy.max_lifetime, MAX_WIRE_LIFETIME)
        return granted - granted % LIFETIME_UNIT

    def _park_for_dad(
        self, coa: IPv6Address, hoa: IPv6Address, message: BindingUpdate, now: float
    ) -> None:
        pending = self._pending_dad.get(hoa)
        if pending is not None:
            # DAD already running: keep the newest BU, answer it when DAD ends.
            if bu_sequence_is_newer(message.sequence, pending.message.sequence):
                self._pending_dad[hoa] = _PendingRegistration(coa, message, now)
            self._count("bu_while_dad_pending")
            return
        self._pending_dad[hoa] = _PendingRegistration(coa, message, now)
        self._count("dad_requested")
        self._events.append(DadRequested(hoa))

    def _register(
        self,
        coa: IPv6Address,
        hoa: IPv6Address,
        message: BindingUpdate,
        start: float,
        *,
        created: bool,
    ) -> None:
        granted = self._granted_lifetime(message.lifetime)
        if granted <= 0:
            # Requested lifetime under one wire unit: nothing to keep, treat as deletion.
            self._deregister(coa, hoa, message, self.binding_cache.get(hoa))
            return
        mobile_router = message.mobile_router and self.policy.allow_mobile_routers
        entry = BindingCacheEntry(
            home_address=hoa,
            care_of_address=coa,
            lifetime=granted,
            sequence=message.sequence,
            expires_at=start + granted,
            mobile_router=mobile_router,
            prefixes=self._routed_prefixes(hoa, message) if mobile_router else (),
        )
        self.binding_cache.put(entry)
        self._count("binding_created" if created else "binding_updated")
        self._events.append(
            BindingCreated(hoa, coa) if created else BindingUpdated(hoa, coa)
        )
        if message.ack:
            options: tuple[MobilityOption, ...] = ()
            if self.policy.refresh_interval is not None:
                options = (BindingRefreshAdvice(min(self.policy.refresh_interval, granted)),)
            self._acknowledge(
                coa,
                hoa,
                message.sequence,
                BindingAckStatus.ACCEPTED,
                granted,
                mobile_router=mobile_router,
                options=options,
            )

    def _deregister(
        self,
        coa: IPv6Address,
        hoa: IPv6Address,
        message: BindingUpdate,
        entry: BindingCacheEntry | None,
    ) -> None:
        self._pending_dad.pop(hoa, None)
        if entry is None:
            # RFC 6275 10.3.2: no home registration for this node.
            self._count("deregistration_unknown")
            self._acknowledge(
                coa,
                hoa,
                message.sequence,
                BindingAckStatus.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE,
                0,
            )
            return
        self.binding_cache.remove(hoa)
        self._count("binding_deleted")
        self._events.append(BindingDeleted(hoa))
        if message.ack:
            self._acknowledge(coa, hoa, message.sequence, BindingAckStatus.ACCEPTED, 0)

    def _acknowledge(
        self,
        coa: IPv6Address,
        hoa: IPv6Address,
        sequence: int,
        status: int,
        lifetime: int,
        *,
        mobile_router: bool = False,
        options: tuple[MobilityOption, ...] = (),
    ) -> None:
        """BA from the HA to the CoA, with the HoA in a type 2 routing header (RFC 6275 6.4,
        9.5.4); no routing header when the node is at home (CoA == HoA)."""
        if status >= 128:
            self._count(f"ba_status_{int(status)}")
        ack = BindingAck(
            status=int(status),
            sequence=sequence,
            lifetime=lifetime,
            mobile_router=mobile_router,
            options=options,
        )
        self._outgoing.append(
            OutgoingMobilityMessage(
                self.address, coa, ack, routing_type2=hoa if hoa != coa else None
            )
        )


def _prefixes_of(message: BindingUpdate) -> tuple[IPv6Network, ...]:
    return tuple(o.prefix for o in message.options if isinstance(o, MobileNetworkPrefix))
