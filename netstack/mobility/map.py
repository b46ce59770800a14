"""Mobility Anchor Point (HMIPv6, RFC 5380 section 8; patent E6, Fig. 27-33), sans-IO.

A MAP is a home agent for regional care-of addresses: it binds RCoA -> LCoA from local Binding
Updates, defends each RCoA on its link with proxy ND and tunnels packets for it to the LCoA.
So it is the `HomeAgent` state machine (binding cache, sequence and lifetime rules, DAD
parking, Binding Acknowledgements with a type 2 routing header) with the MAP's own admission
rules. Same inputs and outputs as `HomeAgent`; in its binding cache `home_address` is the RCoA
and `care_of_address` the LCoA.

Order of checks on a local BU (first match answers; statuses from RFC 6275 6.1.8):
unprotected when protection is required (dropped, counted), H flag set (131: this is no home
agent), M flag missing (129), RCoA outside the MAP's prefix (132: the RCoA must be formed from
the MAP's prefix, RFC 5380 6.1/8), R flag (140: no NEMO at the MAP), then `HomeAgent`'s
sequence rule (135 with the cached sequence) and de-registration without a binding (133).
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

from netstack.mobility.constants import DEFAULT_TIMERS, MobilityTimers
from netstack.mobility.home_agent import HomeAgent, HomeAgentPolicy
from netstack.wire.mh import BindingAckStatus, BindingUpdate

__all__ = ["MobilityAnchorPoint", "map_policy"]


def map_policy(*, max_lifetime: int = 600, require_protection: bool = False) -> HomeAgentPolicy:
    return HomeAgentPolicy(
        max_lifetime=max_lifetime,
        require_protection=require_protection,
        allow_mobile_routers=False,
    )


class MobilityAnchorPoint(HomeAgent):
    """The MAP's registration service: binding cache RCoA -> LCoA (RFC 5380 8)."""

    def __init__(
        self,
        address: IPv6Address,
        *,
        prefix: IPv6Network,
        policy: HomeAgentPolicy | None = None,
        timers: MobilityTimers = DEFAULT_TIMERS,
    ) -> None:
        super().__init__(address, home_prefix=prefix, policy=policy or map_policy(), timers=timers)

    @property
    def prefix(self) -> IPv6Network:
        return self.home_prefix

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "address": str(self.address),
            "prefix": str(self.home_prefix),
            "binding_cache": [
                {"rcoa": str(e.home_address), "lcoa": str(e.care_of_address),
                 "lifetime": e.remaining_lifetime(now), "granted_lifetime": e.lifetime,
                 "sequence": e.sequence}
                for e in self.binding_cache
            ],
            "counters": dict(self.counters),
        }

    def _policy_status(self, hoa: IPv6Address, message: BindingUpdate) -> int | None:
        if message.home_registration:
            self._count("bu_refused_home_registration")
            return BindingAckStatus.HOME_REGISTRATION_NOT_SUPPORTED
        if not message.map_registration:
            self._count("bu_refused_not_map_registration")
            return BindingAckStatus.ADMINISTRATIVELY_PROHIBITED
        if hoa not in self.home_prefix or hoa == self.address:
            self._count("bu_refused_rcoa_outside_prefix")
            return BindingAckStatus.NOT_HOME_SUBNET
        if message.mobile_router and message.lifetime > 0:
            return BindingAckStatus.MOBILE_ROUTER_OPERATION_NOT_PERMITTED
        return None
