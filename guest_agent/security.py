"""IPsec in the guest agent: two independent security processors (patent embodiments 3 and 5).

- mobility layer (MN-HA), keyed by `[ipsec] key_file`:
  * signalling (RFC 3776 / RFC 4877, BA routine 70 of Fig. 13): BUs leave in ESP transport
    mode with the Home Address option outside ESP; a BA arriving in ESP (type 2 RH outside)
    is decrypted, checked against the SPD, and then handled as a protected BA;
  * tunnel: the reverse/forward tunnel in ESP tunnel mode, either around the IPv6-in-IPv6
    tunnel (Fig. 21, `tunnel = "esp-tunnel"`) or with the mobile tunnel header omitted
    (Fig. 22, `tunnel = "esp-tunnel-only"`: ESP tunnel CoA <-> HA carries the home address's
    packets directly).
- end-to-end layer (MN-CN), keyed by `[ipsec] end_to_end_key_file`: ESP transport mode on
  the home address's own packets, applied to what `hoa0` sends before the mobility layer
  and to what it receives after the mobility layer. A packet that is end-to-end ESP inside
  the ESP tunnel is decrypted by both processors in turn (double termination).

Handover: the tunnel SAs are bound to the home address; their care-of end (the outbound SA's
source, the inbound SA's destination) is set to the new care-of address when a binding is
accepted (`binding_accepted`), the way the HA moves its end when the binding is updated.

A mismatch between this node's config and what arrives (plain IPv6-in-IPv6 while ESP is
required, ESP for which this node has no SA) is dropped and counted under `mismatch`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guest_agent.terminations import TerminationLedger
from netstack.ipsec._ip6chain import walk
from netstack.ipsec.keys import build_processor, load_key_file
from netstack.ipsec.mobility_config import (
    IPPROTO_ESP,
    IPPROTO_IPV6,
    IPPROTO_MH,
    TUNNEL_ESP,
    TUNNEL_ESP_ONLY,
    TUNNEL_OFF,
    MobilityIpsecSection,
    MobilityLayerSecurity,
    upper_protocol,
)
from netstack.ipsec.modes import esp_spi
from netstack.ipsec.processor import SecurityProcessor
from netstack.ipsec.sa import TUNNEL
from netstack.ipsec.spd import INBOUND, OUTBOUND
from netstack.wire.errors import ParseError
from netstack.wire.ip6ip6 import Encapsulator

if TYPE_CHECKING:
    from guest_agent.mobile_network import MobileNetwork

# what `receive_esp` found inside the mobility layer's ESP
MOBILITY = "mobility"  # a Mobility Header message (BA) in transport mode
TUNNELLED = "tunnel"  # an IPv6-in-IPv6 packet HA -> CoA (Fig. 21)
HOME = "home"  # a packet for the home address (Fig. 22, or end-to-end ESP at home)


@dataclass
class IpsecSection(MobilityIpsecSection):
    """`[ipsec]` of guest.toml: MN-HA protection plus the end-to-end processor (MN-CN)."""

    end_to_end_key_file: Path | None = None  # MN-CN SAs and policies
    end_to_end: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.end_to_end and self.end_to_end_key_file is None:
            raise ValueError("ipsec.end_to_end needs ipsec.end_to_end_key_file")


def carries_esp(packet: bytes | memoryview) -> bool:
    return upper_protocol(packet) == IPPROTO_ESP


class GuestSecurity(MobilityLayerSecurity):
    """The guest's two security processors and the hooks the agent and data plane call."""

    def __init__(
        self,
        section: IpsecSection,
        *,
        home_address: IPv6Address,
        home_agent: IPv6Address,
        now: float | None = None,
        mobility: SecurityProcessor | None = None,
        end_to_end: SecurityProcessor | None = None,
    ) -> None:
        """Load the key files named in `section` (refusing unsafe permissions: KeyFileError),
        unless processors are passed in (tests)."""
        now = time.monotonic() if now is None else now
        super().__init__(section, processor=mobility, now=now)
        self.home_address = home_address.packed
        # NEMO (guest_agent.mobile_network): its prefixes are reached through this tunnel too
        self.mobile_network: MobileNetwork | None = None
        self.home_agent = home_agent.packed
        if end_to_end is None and section.end_to_end and section.end_to_end_key_file is not None:
            end_to_end = build_processor(
                "end_to_end", load_key_file(section.end_to_end_key_file, now=now)
            )
        self.end_to_end = end_to_end
        self.care_of_address: IPv6Address | None = None
        self.terminations = TerminationLedger()  # both layers' terminations per flow

    # ------------------------------------------------------------------ configuration

    def binding_accepted(self, care_of_address: IPv6Address) -> None:
        """Move the care-of end of every tunnel-mode SA to the new care-of address."""
        self.care_of_address = care_of_address
        if self.mobility is None:
            return
        sad = self.mobility.sad
        for sa in sad:
            if sa.mode != TUNNEL:
                continue
            if sad.direction(sa.name) == OUTBOUND:
                sa.src = care_of_address
            elif sad.direction(sa.name) == INBOUND:
                sa.dst = care_of_address

    # ------------------------------------------------------------------ signalling

    # ------------------------------------------------------------------ mobility tunnel

    def seal_tunnel(self, inner: bytes | memoryview, encapsulator: Encapsulator,
                    now: float) -> bytes | None:
        """Send routine 100, tunnel step: Fig. 21 (ESP around IPv6-in-IPv6) or Fig. 22
        (ESP tunnel mode directly around the home address's packet)."""
        mobility = self.mobility
        if mobility is None or self.tunnel_mode == TUNNEL_OFF:
            return bytes(encapsulator.encapsulate(inner))
        if self.tunnel_mode == TUNNEL_ESP:
            return mobility.outbound(encapsulator.encapsulate(inner), now)
        return mobility.outbound(inner, now)

    def receive_esp(self, packet: bytes | memoryview, now: float) -> tuple[str, bytes] | None:
        """Receive routine 120 for a packet whose header chain ends in ESP.

        Returns (MOBILITY, decrypted BA packet), (TUNNELLED, IPv6-in-IPv6 packet), (HOME,
        packet for the home address), or None when dropped (counted).
        """
        mobility = self.mobility
        if mobility is not None and self._mobility_spi(packet):
            result = mobility.inbound(packet, now)
            if result is None:
                return None
            found = self._classify(result)
            if found is not None and found[0] != MOBILITY:  # issue 12: per-flow ledger
                kind, plain = found
                self.terminations.outer(plain if kind == HOME else memoryview(plain)[40:])
            return found
        if packet[24:40] == self.home_address:
            # at home: end-to-end ESP arrives natively; the end-to-end layer terminates it
            return HOME, bytes(packet)
        self.mismatch["esp_without_mobility_sa"] += 1
        return None

    def _mobility_spi(self, packet: bytes | memoryview) -> bool:
        try:
            spi = esp_spi(packet, walk(packet))
        except ParseError as exc:
            self.mismatch[f"esp_{exc.reason}"] += 1
            return False
        return self.mobility is not None and self.mobility.sad.inbound(spi) is not None

    def _classify(self, result: bytes) -> tuple[str, bytes] | None:
        if result[0] >> 4 != 6:
            self.mismatch["tunnel_inner_not_ipv6"] += 1
            return None
        if self.mobile_network is not None and self.mobile_network.holds(result[24:40]):
            return HOME, result  # Fig. 22 for a mobile network (NEMO): the agent routes it on
        upper = upper_protocol(result)
        if upper == IPPROTO_MH:
            return MOBILITY, result
        if result[6] == IPPROTO_IPV6 and result[8:24] == self.home_agent:
            if self.tunnel_mode != TUNNEL_ESP:
                self.mismatch["ip6ip6_inside_esp_while_tunnel_only"] += 1
                return None
            return TUNNELLED, result
        if result[24:40] != self.home_address:
            self.mismatch["tunnel_inner_not_home_address"] += 1
            return None
        if self.tunnel_mode != TUNNEL_ESP_ONLY:
            self.mismatch["inner_packet_inside_esp_while_ip6ip6_expected"] += 1
            return None
        return HOME, result

    # ------------------------------------------------------------------ end-to-end layer

    def from_hoa(self, packets: list[bytes], now: float) -> list[bytes]:
        """What `hoa0` sends, through the end-to-end processor (before the mobility layer)."""
        if self.end_to_end is None:
            return packets
        return _through(self.end_to_end.outbound, packets, now)

    def to_hoa(self, packets: list[Any], now: float) -> list[Any]:
        """What `hoa0` receives, through the end-to-end processor (after the mobility layer)."""
        end_to_end = self.end_to_end
        if end_to_end is None:
            self.terminations.end_batch()
            return packets
        out = []
        for packet in packets:
            result = end_to_end.inbound(packet, now)
            if result is None:
                continue
            if len(packet) > 40 and packet[6] == 50:
                self.terminations.inner(packet, result)
            out.append(result)
        self.terminations.end_batch()
        return out

    # ------------------------------------------------------------------ status

    def as_dict(self, now: float) -> dict[str, Any]:
        mobility = self.mobility_status(now)
        end_to_end: dict[str, Any] = {"enabled": self.end_to_end is not None}
        if self.end_to_end is not None:
            end_to_end.update(self.end_to_end.as_dict(now))
        return {"mobility": mobility, "end_to_end": end_to_end,
                "terminations": self.terminations.as_list()}


def _through(step: Callable[[Any, float], bytes | None], packets: list[Any], now: float) -> list[Any]:
    """Each packet through one processor direction; what it drops (and counts) is left out."""
    out = []
    for packet in packets:
        result = step(packet, now)
        if result is not None:
            out.append(result)
    return out
