"""Mobile router (RFC 3963 section 5; patent E7, MR 10 heading mobile network 9), sans-IO.

A MobileNode whose home registration carries the R flag and, in explicit mode, one Mobile
Network Prefix option per prefix (implicit mode: R flag only, the home agent knows the
prefixes). Same inputs and outputs as MobileNode (aioquic shape); `prefix_rows(now)` gives
the prefixes with their registration state for `status`.

Choices where RFC 3963 leaves room:
- A successful BA without the R flag means the home agent serves us as a plain mobile node
  and will not route our prefixes (5.3): the binding is de-registered at once (one lifetime-0
  BU, no retransmission) and reported as refused (status 140, reason below); the node tries
  again on its next attach (movement), like any refusal.
- Prefix registration is all-or-nothing: the HA's BA covers the whole BU.
- Status 139 (the HA holds a plain mobile node binding for our home address, e.g. made
  before `[nemo]` was configured): the old binding is de-registered (one lifetime-0 BU) and
  the registration started afresh; after MAX_REPLACEMENTS such attempts without an accepted
  binding (something keeps re-creating the plain binding) the refusal is final.
"""

from __future__ import annotations

import random
from dataclasses import replace
from ipaddress import IPv6Address, IPv6Network

from netstack.mobility.bul import BindingState, BindingTrigger, BindingUpdateListEntry
from netstack.mobility.constants import DEFAULT_TIMERS, MobilityTimers
from netstack.mobility.messages import OutgoingMobilityMessage, home_registration
from netstack.mobility.mobile_node import MobileNode
from netstack.wire.mh import BindingAck, BindingAckStatus, BindingUpdate

BA_WITHOUT_R = "home agent accepted us without the R flag (no mobile router support)"
MAX_REPLACEMENTS = 3


class MobileRouter(MobileNode):
    def __init__(
        self,
        home_address: IPv6Address,
        home_agent: IPv6Address,
        *,
        home_prefix: IPv6Network,
        mobile_network_prefixes: tuple[IPv6Network, ...],
        implicit: bool = False,
        requested_lifetime: int = 420,
        timers: MobilityTimers = DEFAULT_TIMERS,
        require_protection: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        if not mobile_network_prefixes:
            raise ValueError("a mobile router needs at least one mobile network prefix")
        super().__init__(
            home_address,
            home_agent,
            home_prefix=home_prefix,
            requested_lifetime=requested_lifetime,
            timers=timers,
            # implicit mode: no option in the BU, the R flag is set in messages_to_send
            mobile_network_prefixes=() if implicit else tuple(mobile_network_prefixes),
            require_protection=require_protection,
            rng=rng,
        )
        self.prefixes = tuple(mobile_network_prefixes)
        self.implicit = implicit
        self._replacements = 0  # 139s answered by de-registering the old binding, since accepted

    def messages_to_send(self) -> list[OutgoingMobilityMessage]:
        out = super().messages_to_send()
        if not self.implicit:
            return out
        return [
            replace(m, message=replace(m.message, mobile_router=True))
            if isinstance(m.message, BindingUpdate) and m.message.lifetime > 0
            else m
            for m in out
        ]

    def receive_binding_ack(
        self, src: IPv6Address, message: BindingAck, now: float, *, protected: bool = False
    ) -> None:
        super().receive_binding_ack(src, message, now, protected=protected)
        entry = self.binding_update_list.get(src)
        if (
            message.status == BindingAckStatus.REGISTRATION_TYPE_CHANGE_DISALLOWED
            and entry is not None
            and entry.state is BindingState.REFUSED
            and self._replacements < MAX_REPLACEMENTS
            and self.care_of_address is not None
        ):
            self._replacements += 1
            self._count("binding_type_replaced")
            self._deregister_once(entry)
            self._start(entry, BindingTrigger.REGISTER, now)

    def _deregister_once(self, entry: BindingUpdateListEntry) -> None:
        """One lifetime-0 BU for the HA's current binding (no retransmission)."""
        assert self.care_of_address is not None
        sequence = self._next_sequence(entry.destination)
        self._outgoing.append(
            home_registration(sequence, 0, self.home_address, self.care_of_address,
                              entry.destination)
        )
        self._count("bu_sent")

    def _accept(self, entry: BindingUpdateListEntry, message: BindingAck, now: float) -> None:
        if message.mobile_router:
            self._replacements = 0
            super()._accept(entry, message, now)
            return
        self._count("ba_without_r")
        if self.care_of_address is not None:
            self._deregister_once(entry)
        self._refuse(entry, BindingAckStatus.MOBILE_ROUTER_OPERATION_NOT_PERMITTED, BA_WITHOUT_R)

    def prefix_state(self) -> str:
        entry = self.binding_update_list.get(self.home_agent)
        if entry is None:
            return BindingState.IDLE.value
        return entry.state.value

    def prefix_rows(self) -> list[dict[str, object]]:
        state = self.prefix_state()
        return [
            {"prefix": str(p), "state": state, "mode": "implicit" if self.implicit else "explicit"}
            for p in self.prefixes
        ]
