"""Per-link Neighbor Discovery configuration: RFC constants, overridable per node."""

from __future__ import annotations

from dataclasses import dataclass

from netstack.nd import constants as c


@dataclass(frozen=True)
class NdConfig:
    """Defaults are the RFC values; tests and special nodes override them."""

    max_rtr_solicitations: int = c.MAX_RTR_SOLICITATIONS
    rtr_solicitation_interval: float = c.RTR_SOLICITATION_INTERVAL
    # upper bound of the random delay before the first RS (RFC 4861 6.3.7); 0 disables it
    max_rtr_solicitation_delay: float = c.MAX_RTR_SOLICITATION_DELAY
    max_multicast_solicit: int = c.MAX_MULTICAST_SOLICIT
    max_unicast_solicit: int = c.MAX_UNICAST_SOLICIT
    reachable_time: float = c.REACHABLE_TIME
    retrans_timer: float = c.RETRANS_TIMER
    delay_first_probe_time: float = c.DELAY_FIRST_PROBE_TIME
    # ReachableTime is BaseReachableTime times a random factor (RFC 4861 6.3.2); False keeps
    # it exactly `reachable_time`.
    randomize_reachable_time: bool = True
    dup_addr_detect_transmits: int = c.DUP_ADDR_DETECT_TRANSMITS
    optimistic_dad: bool = True
    max_queued_packets: int = c.MAX_QUEUED_PACKETS
    slaac: bool = True
    # whether our NAs carry the Router flag (home agents and MAPs are routers)
    is_router: bool = False
    link_mtu: int = 1500
