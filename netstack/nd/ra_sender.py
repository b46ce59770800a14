"""Router advertisement sender (RFC 4861 6.2; RFC 6275 7.3-7.5; RFC 5380 7.1), sans-IO.

The interface is fixed by /work/notes/RA_SENDER_CONTRACT.md (shared by the HMIPv6 router
daemon and the NEMO mobile router). Inputs: `start(now)`, `receive_router_solicitation(src,
now)`, `handle_timer(now)`, `stop(now)`. Output of each: a list of (destination, full IPv6
packet with the ICMPv6 checksum done). `next_timer()` is the absolute time of the next
unsolicited RA (or of a deferred solicited answer).

Choices where the RFCs leave room:
- Unsolicited RAs every uniform(min_interval, max_interval); the first
  MAX_INITIAL_RTR_ADVERTISEMENTS (3) at most MAX_INITIAL_RTR_ADVERT_INTERVAL (16 s) apart
  (RFC 4861 6.2.4).
- An RS is answered at once, with no MAX_RA_DELAY_TIME random delay (the contract; RFC 6275
  7.5 lets mobility routers answer fast): unicast to a specified source, else to ff02::1. Two
  answers are never closer than MIN_DELAY_BETWEEN_RAS, which is min(3 s, min_interval) as
  RFC 6275 7.5 allows (down to 30 ms); an RS inside that gap is answered by one multicast RA
  when the gap ends.
- RDNSS (RFC 8106, type 25) is written as an opaque ND option (the codec has no class for it).
- `stop` sends one final RA with router lifetime 0 (RFC 4861 6.2.5) and disarms the timer.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from netstack.wire.icmpv6 import build_icmpv6_packet
from netstack.wire.icmpv6_types import (
    AdvertisementInterval,
    MapOption,
    Mtu,
    NDOption,
    PrefixInformation,
    RouterAdvertisement,
    SourceLinkLayerAddress,
    UnknownNDOption,
)

__all__ = ["AdvertisedPrefix", "RaConfig", "RouterAdvertiser", "ALL_NODES"]

ALL_NODES = IPv6Address("ff02::1")
UNSPECIFIED = IPv6Address("::")
MAX_INITIAL_RTR_ADVERTISEMENTS = 3
MAX_INITIAL_RTR_ADVERT_INTERVAL = 16.0
MIN_DELAY_BETWEEN_RAS = 3.0
RDNSS_OPTION_TYPE = 25


@dataclass(frozen=True)
class AdvertisedPrefix:
    """RFC 4861 4.6.2 Prefix Information option."""

    prefix: IPv6Network
    on_link: bool = True
    autonomous: bool = True
    valid_lifetime: int = 86400
    preferred_lifetime: int = 14400
    router_address: bool = False  # RFC 6275 7.2 R flag (prefix field = router's address)


@dataclass(frozen=True)
class RaConfig:
    prefixes: tuple[AdvertisedPrefix, ...] = ()
    min_interval: float = 3.0  # seconds; down to 0.03 as radvd allows (MIPv6 7.5)
    max_interval: float = 10.0
    router_lifetime: int = 1800
    hop_limit: int = 64
    managed: bool = False
    other_config: bool = False
    home_agent: bool = False  # H flag
    mtu: int | None = None
    advertisement_interval: bool = False  # RFC 6275 7.3 option (max_interval in ms)
    rdnss: tuple[IPv6Address, ...] = ()
    rdnss_lifetime: int = 600
    map_options: tuple[MapOption, ...] = ()  # RFC 5380 7.1


def _rdnss_option(servers: tuple[IPv6Address, ...], lifetime: int) -> UnknownNDOption:
    """RFC 8106 5.1: reserved (16 bits), lifetime (32 bits), the servers' addresses."""
    data = b"\x00\x00" + struct.pack("!I", lifetime) + b"".join(a.packed for a in servers)
    return UnknownNDOption(RDNSS_OPTION_TYPE, data)


def validate(config: RaConfig) -> None:
    """RFC 4861 6.2.1 / RFC 6275 7.5 bounds; raises ValueError with one clear sentence."""
    if not 0.03 <= config.min_interval <= config.max_interval:
        raise ValueError("min_interval must be at least 0.03 s and not above max_interval")
    if not 0.07 <= config.max_interval <= 1800:
        raise ValueError("max_interval must be between 0.07 and 1800 s")
    if not 0 <= config.router_lifetime <= 9000:
        raise ValueError("router_lifetime must be between 0 and 9000 s")
    if config.mtu is not None and not 1280 <= config.mtu <= 65535:
        raise ValueError("mtu must be between 1280 and 65535")
    for p in config.prefixes:
        if p.preferred_lifetime > p.valid_lifetime:
            raise ValueError(f"prefix {p.prefix}: preferred lifetime above valid lifetime")


class RouterAdvertiser:
    """Sans-IO: no sockets, no clock. Packets are full IPv6 packets (bytes) with the ICMPv6
    checksum done; the caller puts them in Ethernet frames."""

    def __init__(
        self,
        config: RaConfig,
        mac: bytes,
        link_local: IPv6Address,
        rng: random.Random | None = None,
    ) -> None:
        validate(config)
        self.config = config
        self.mac = bytes(mac)
        self.link_local = link_local
        self._rng = rng if rng is not None else random.Random()
        self.counters: dict[str, int] = {
            "ra_sent_unsolicited": 0,
            "ra_sent_solicited": 0,
            "ra_sent_final": 0,
            "rs_received": 0,
            "rs_rate_limited": 0,
        }
        self.min_delay_between_ras = min(MIN_DELAY_BETWEEN_RAS, config.min_interval)
        self._next_unsolicited: float | None = None
        self._pending_solicited: float | None = None
        self._last_multicast: float | None = None
        self._initial_left = 0
        self._packet_cache: dict[int, bytes] = {}

    # ------------------------------------------------------------------ inputs

    def start(self, now: float) -> list[tuple[IPv6Address, bytes]]:
        self._initial_left = MAX_INITIAL_RTR_ADVERTISEMENTS
        return self._send_unsolicited(now)

    def receive_router_solicitation(
        self, src: IPv6Address, now: float
    ) -> list[tuple[IPv6Address, bytes]]:
        self._count("rs_received")
        if self._next_unsolicited is None:  # stopped or not started: silent (RFC 4861 6.2.6)
            return []
        if src != UNSPECIFIED:
            # A unicast answer does not disturb the multicast schedule of the link.
            self._count("ra_sent_solicited")
            return [(src, self._packet(self.config.router_lifetime, src))]
        if self._last_multicast is not None and now - self._last_multicast < self.min_delay_between_ras:
            self._count("rs_rate_limited")
            due = self._last_multicast + self.min_delay_between_ras
            if self._pending_solicited is None or due < self._pending_solicited:
                self._pending_solicited = due
            return []
        self._count("ra_sent_solicited")
        self._last_multicast = now
        return [(ALL_NODES, self._packet(self.config.router_lifetime))]

    def handle_timer(self, now: float) -> list[tuple[IPv6Address, bytes]]:
        out: list[tuple[IPv6Address, bytes]] = []
        if self._pending_solicited is not None and self._pending_solicited <= now:
            self._pending_solicited = None
            self._count("ra_sent_solicited")
            self._last_multicast = now
            out.append((ALL_NODES, self._packet(self.config.router_lifetime)))
        if self._next_unsolicited is not None and self._next_unsolicited <= now:
            if out:
                self._schedule(now)  # the solicited answer stands in for this one
            else:
                out += self._send_unsolicited(now)
        return out

    def next_timer(self) -> float | None:
        times = [t for t in (self._next_unsolicited, self._pending_solicited) if t is not None]
        return min(times) if times else None

    def stop(self, now: float) -> list[tuple[IPv6Address, bytes]]:
        """The final RA with router lifetime 0 (RFC 4861 6.2.5); the timer is disarmed."""
        self._next_unsolicited = None
        self._pending_solicited = None
        self._count("ra_sent_final")
        return [(ALL_NODES, self._packet(0))]

    # ------------------------------------------------------------------ internals

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _send_unsolicited(self, now: float) -> list[tuple[IPv6Address, bytes]]:
        self._count("ra_sent_unsolicited")
        self._last_multicast = now
        self._schedule(now)
        return [(ALL_NODES, self._packet(self.config.router_lifetime))]

    def _schedule(self, now: float) -> None:
        interval = self._rng.uniform(self.config.min_interval, self.config.max_interval)
        if self._initial_left > 0:
            self._initial_left -= 1
            interval = min(interval, MAX_INITIAL_RTR_ADVERT_INTERVAL)
        self._next_unsolicited = now + interval

    def _packet(self, router_lifetime: int, destination: IPv6Address = ALL_NODES) -> bytes:
        """The RA for `destination` (the ICMPv6 checksum covers it); multicast ones cached."""
        if destination != ALL_NODES:
            return build_icmpv6_packet(
                self.link_local, destination, self._advertisement(router_lifetime)
            )
        cached = self._packet_cache.get(router_lifetime)
        if cached is None:
            cached = build_icmpv6_packet(
                self.link_local, ALL_NODES, self._advertisement(router_lifetime)
            )
            self._packet_cache[router_lifetime] = cached
        return cached

    def _advertisement(self, router_lifetime: int) -> RouterAdvertisement:
        c = self.config
        options: list[NDOption] = [SourceLinkLayerAddress(self.mac)]
        if c.mtu is not None:
            options.append(Mtu(c.mtu))
        if c.advertisement_interval:
            options.append(AdvertisementInterval(int(c.max_interval * 1000)))
        for p in c.prefixes:
            options.append(
                PrefixInformation(
                    prefix=p.prefix,
                    valid_lifetime=p.valid_lifetime,
                    preferred_lifetime=p.preferred_lifetime,
                    on_link=p.on_link,
                    autonomous=p.autonomous,
                    router_address=p.router_address,
                )
            )
        if c.rdnss:
            options.append(_rdnss_option(c.rdnss, c.rdnss_lifetime))
        options.extend(c.map_options)
        return RouterAdvertisement(
            cur_hop_limit=c.hop_limit,
            managed=c.managed,
            other=c.other_config,
            home_agent=c.home_agent,
            router_lifetime=router_lifetime,
            options=tuple(options),
        )
