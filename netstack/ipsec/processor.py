"""SecurityProcessor: one SAD + one SPD + counters, applied to whole packets.

The terminal runs two independent processors (mobility layer MN-HA, end-to-end layer
MN-CN); the pipeline composes them, which gives the patent's double ESP termination.
An SPI not in this processor's SAD is left to the next processor if this SPD bypasses ESP.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from netstack.ipsec._ip6chain import ESP, Chain, walk, walk_any
from netstack.ipsec.errors import PolicyViolation
from netstack.ipsec.modes import (
    esp_spi,
    transport_protect,
    transport_unprotect,
    tunnel_protect,
    tunnel_unprotect,
)
from netstack.ipsec.sa import LIFETIME_OK, TUNNEL
from netstack.ipsec.sad import SecurityAssociationDatabase
from netstack.ipsec.spd import (
    BYPASS,
    DISCARD,
    INBOUND,
    OUTBOUND,
    PROTECT,
    Policy,
    SecurityPolicyDatabase,
    SelectorKey,
)
from netstack.wire.errors import ParseError


def selector_key(chain: Chain) -> SelectorKey:
    """Selector tuple of a packet: effective addresses (HAO / type 2 RH, RFC 3776)."""
    return (
        chain.effective_src,
        chain.effective_dst,
        chain.upper_protocol,
        chain.src_port,
        chain.dst_port,
        chain.mh_type,
    )


class SecurityProcessor:
    def __init__(
        self,
        name: str,
        *,
        sad: SecurityAssociationDatabase | None = None,
        spd: SecurityPolicyDatabase | None = None,
        default_action: str = DISCARD,
    ) -> None:
        self.name = name
        self.sad = sad if sad is not None else SecurityAssociationDatabase()
        self.spd = spd if spd is not None else SecurityPolicyDatabase()
        # RFC 4301 4.4.1: traffic that matches no policy is discarded.
        if default_action not in (BYPASS, DISCARD):
            raise ValueError("default_action must be bypass or discard")
        self.default_action = default_action
        self.counters: Counter[str] = Counter()

    def _policy(self, direction: str, key: SelectorKey) -> Policy | None:
        policy = self.spd.lookup(direction, key)
        if policy is None:
            self.counters[f"{direction}_no_policy"] += 1
        return policy

    def outbound(self, packet: bytes | memoryview, now: float) -> bytes | None:
        """The packet to send (protected or bypassed), or None if it is dropped."""
        counters = self.counters
        try:
            chain = walk_any(packet)
            policy = self._policy(OUTBOUND, selector_key(chain))
            action = policy.action if policy is not None else self.default_action
            if action == BYPASS:
                counters["out_bypassed"] += 1
                return bytes(packet)
            if action == DISCARD:
                counters["out_discarded"] += 1
                return None
            sa = self.sad.get(policy.sa)  # type: ignore[union-attr,arg-type]
            if sa is None:
                counters["out_missing_sa"] += 1
                return None
            if sa.mode == TUNNEL:
                out = tunnel_protect(sa, packet, now)
            else:
                if packet[0] >> 4 != 6:
                    raise PolicyViolation("transport-mode SA for a non-IPv6 packet")
                out = transport_protect(sa, packet, now, chain)
        except ParseError as exc:
            counters[f"out_{exc.reason}"] += 1
            return None
        counters["out_protected"] += 1
        return out

    def inbound(self, packet: bytes | memoryview, now: float) -> bytes | None:
        """The packet after IPsec processing (decrypted or bypassed), or None if dropped."""
        counters = self.counters
        try:
            chain = walk(packet)
            if chain.upper_protocol != ESP:
                return self._inbound_plain(packet, chain)
            sa = self.sad.inbound(esp_spi(packet, chain))
            if sa is None:
                policy = self.spd.lookup(INBOUND, selector_key(chain))
                if policy is not None and policy.action == BYPASS:
                    counters["in_bypassed"] += 1  # for the next processor to terminate
                    return bytes(packet)
                counters["in_unknown_spi"] += 1
                return None
            if sa.mode == TUNNEL:
                result = tunnel_unprotect(sa, packet, now, chain)
            else:
                result = transport_unprotect(sa, packet, now, chain)
            # RFC 4301 5.2 step 4: the decrypted packet must match a policy for this SA.
            policy = self._policy(INBOUND, selector_key(walk_any(result)))
            if policy is None or policy.action != PROTECT or policy.sa != sa.name:
                counters["in_policy_violation"] += 1
                return None
        except ParseError as exc:
            counters[f"in_{exc.reason}"] += 1
            return None
        counters["in_decrypted"] += 1
        return result

    def _inbound_plain(self, packet: bytes | memoryview, chain: Chain) -> bytes | None:
        policy = self._policy(INBOUND, selector_key(chain))
        action = policy.action if policy is not None else self.default_action
        if action == BYPASS:
            self.counters["in_bypassed"] += 1
            return bytes(packet)
        # protect: the policy demands ESP but the packet came in clear (RFC 4301 5.2 step 3a)
        self.counters["in_unprotected" if action == PROTECT else "in_discarded"] += 1
        return None

    def expiring(self, now: float) -> list[str]:
        """Names of SAs past their soft lifetime (time or bytes): the keying side replaces them."""
        return [sa.name for sa in self.sad if sa.lifetime_state(now) != LIFETIME_OK]

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "counters": dict(self.counters),
            "sas": self.sad.as_dict(now),
            "spd": self.spd.as_dict(),
        }
