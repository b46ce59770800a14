"""`[ipsec]` settings shared by the mobile node and the home agent (RFC 3776 / RFC 4877).

The tunnel modes are the patent's Fig. 21 (ESP tunnel mode around the IPv6-in-IPv6 mobile
tunnel) and Fig. 22 (ESP tunnel mode alone, the mobile tunnel header omitted because both
tunnels have the same endpoints). Plus a bytes-only walk to the upper-layer protocol, used on
decrypted packets to tell a BU/BA from tunnelled traffic.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netstack.ipsec.keys import build_processor, load_key_file
from netstack.ipsec.processor import SecurityProcessor
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.wire.mh_codec import build_mobility_packet

TUNNEL_OFF = "off"
TUNNEL_ESP = "esp-tunnel"  # Fig. 21
TUNNEL_ESP_ONLY = "esp-tunnel-only"  # Fig. 22
TUNNEL_MODES = (TUNNEL_OFF, TUNNEL_ESP, TUNNEL_ESP_ONLY)

IPPROTO_IPV6 = 41
IPPROTO_ESP = 50
IPPROTO_MH = 135
# Headers that may stand before ESP or MH: Hop-by-Hop, Routing (type 2), Fragment, Dest Opts.
_EXTENSION_HEADERS = (0, 43, 44, 60)


@dataclass
class MobilityIpsecSection:
    """MN-HA protection. Everything off by default (no key file needed)."""

    key_file: Path | None = None  # MN-HA SAs and policies (signalling and tunnel)
    signalling: bool = False
    tunnel: str = TUNNEL_OFF  # off | esp-tunnel (Fig. 21) | esp-tunnel-only (Fig. 22)
    # MN: drop a BA that was not in ESP; HA: refuse (no binding) a BU that was not (RFC 3776 4.3)
    require_protection: bool = False

    def __post_init__(self) -> None:
        if self.tunnel not in TUNNEL_MODES:
            raise ValueError(f"ipsec.tunnel must be one of {', '.join(TUNNEL_MODES)}, "
                             f"got {self.tunnel!r}")
        if (self.signalling or self.tunnel != TUNNEL_OFF) and self.key_file is None:
            raise ValueError("ipsec.signalling / ipsec.tunnel need ipsec.key_file")
        if self.require_protection and not self.signalling:
            raise ValueError("ipsec.require_protection needs ipsec.signalling = true")


def upper_protocol(packet: bytes | memoryview) -> int:
    """Next header after the extension headers that can precede ESP or MH (bytes only)."""
    nh = packet[6]
    off = 40
    n = len(packet)
    while nh in _EXTENSION_HEADERS and off + 8 <= n:
        length = 8 if nh == 44 else (packet[off + 1] + 1) * 8
        nh = packet[off]
        off += length
    return nh


class MobilityLayerSecurity:
    """What both ends of the MN-HA security association share (RFC 3776 / RFC 4877).

    The `mobility` processor loaded from the key file (refusing unsafe permissions:
    KeyFileError) unless one is passed in (tests), the tunnel mode, ESP of the BU/BA, and the
    counters of configuration mismatches between the two ends (reported, never silent).
    """

    def __init__(
        self,
        section: MobilityIpsecSection,
        *,
        processor: SecurityProcessor | None = None,
        now: float | None = None,
    ) -> None:
        now = time.monotonic() if now is None else now
        self.section = section
        self.signalling = section.signalling
        self.tunnel_mode = section.tunnel
        if processor is None and section.key_file is not None and (
            section.signalling or section.tunnel != TUNNEL_OFF
        ):
            processor = build_processor("mobility", load_key_file(section.key_file, now=now))
        self.mobility = processor
        self.mismatch: Counter[str] = Counter()

    @property
    def esp_tunnel(self) -> bool:
        return self.tunnel_mode != TUNNEL_OFF and self.mobility is not None

    def protect_signalling(self, packet: bytes, now: float) -> bytes | None:
        """A BU or BA on its way out: ESP transport mode when configured."""
        if not self.signalling or self.mobility is None:
            return packet
        return self.mobility.outbound(packet, now)

    def seal_mobility_message(self, message: OutgoingMobilityMessage, now: float) -> bytes | None:
        """Build a BU/BA the state machine asked for and protect it; None when the SPD drops
        it (counted by the processor)."""
        packet = build_mobility_packet(
            message.src,
            message.dst,
            message.message,
            home_address=message.home_address,
            routing_type2=message.routing_type2,
        )
        return self.protect_signalling(packet, now)

    def refuse_plain_tunnel(self) -> bool:
        """True (and counted) when a plain IPv6-in-IPv6 packet arrives but ESP is required."""
        if self.esp_tunnel:
            self.mismatch["plain_tunnel_while_esp_required"] += 1
            return True
        return False

    def mobility_status(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {"signalling": self.signalling, "tunnel": self.tunnel_mode,
                               "require_protection": self.section.require_protection,
                               "mismatch": dict(self.mismatch)}
        if self.mobility is not None:
            out.update(self.mobility.as_dict(now))
        return out
