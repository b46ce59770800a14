"""The MAP daemon: the home agent daemon with the MAP's registration service.

A MAP does on its link what a home agent does on the home link (RFC 5380 8): it answers local
BUs, defends each bound RCoA with proxy ND, tunnels packets for an RCoA to its LCoA and
forwards what the terminal reverse-tunnels (outer source checked against the binding). So the
daemon is `HomeAgentDaemon` (same runtime, link, ND, proxy DAD, data plane, IPsec, persistence)
with `MobilityAnchorPoint` as its state machine and its own `status`.
"""

from __future__ import annotations

import time
from typing import Any

from netstack.mobility.home_agent import HomeAgent
from netstack.mobility.map import MobilityAnchorPoint, map_policy
from netstack.runtime.daemon import merged_counters
from network.home_agent.daemon import HomeAgentDaemon
from network.map.config import MapConfig


class MapDaemon(HomeAgentDaemon):
    def __init__(self, config: MapConfig) -> None:
        super().__init__(config)  # type: ignore[arg-type]

    def _registration_service(self, config: Any) -> HomeAgent:
        section = config.map
        policy = map_policy(
            max_lifetime=section.max_lifetime,
            require_protection=section.require_protection or config.ipsec.require_protection,
        )
        return MobilityAnchorPoint(section.address, prefix=section.prefix, policy=policy)

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        state = self.home_agent.as_dict(now)
        counters = merged_counters(self.counters, self.nd.counters, self.home_agent.counters)
        return {
            "node": self.config.node.name,
            "role": "map",
            "address": str(self.address),
            "prefix": str(self.home_prefix),
            "binding_cache": state["binding_cache"],
            "neighbor_discovery": self.nd.as_dict(),
            "counters": counters,
            "ipsec": self.security.as_dict(now),
            "uptime": round(now - self.started_at, 3),
        }
