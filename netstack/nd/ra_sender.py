"""Router Advertisement sender (RFC 4861 6.2; RFC 6275 7.2-7.5), sans-IO.

Inputs: `start(now)`, `receive_router_solicitation(src, now)`, `handle_timer(now)`,
`stop(now)`. Outputs: each returns `[(destination, packet)]`, full IPv6 packets with the
ICMPv6 checksum done (the caller frames them); `next_timer()` is the absolute time of the
next unsolicited RA. The interface is fixed by the lead (notes/RA_SENDER_CONTRACT.md) and
shared by the HMIPv6 router (MAP option) and the NEMO mobile router (its prefix on eth1).

Choices where RFC 4861 leaves room:
- The first MAX_INITIAL_RTR_ADVERTISEMENTS (3) unsolicited RAs are spaced at most
  MAX_INITIAL_RTR_ADVERT_INTERVAL (16 s) apart, then uniformly in [min, max] interval.
- A solicited RA is sent at once (no 0-0.5 s random delay: the test bed and mobile nodes
  want it fast), unicast to a specified solicitor, multicast otherwise; solicited RAs closer
  than `min_delay_between_ras` to the previous one are suppressed (counted).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from netstack.wire.icmpv6 import build_icmpv6_packet
from netstack.wire.icmpv6_types import (
    AdvertisementInterval,
    Mtu,
    NDOption,
    PrefixInformation,
    RouterAdvertisement,
    SourceLinkLayerAddress,
    UnknownNDOption,
)

ALL_NODES = IPv6Address("ff02::1")
UNSPECIFIED = IPv6Address("::")
MAX_INITIAL_RTR_ADVERTISEMENTS = 3
MAX_INITIAL_RTR_ADVERT_INTERVAL = 16.0
MIN_DELAY_BETWEEN_RAS = 3.0  # RFC 4861 10; RFC 6275 7.5 allows 0.03 s for mobility
_RDNSS = 25  # RFC 8106 Recursive DNS Server option

Outgoing = list[tuple[IPv6Address, bytes]]


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
    min_interval: float = 3.0
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
    map_options: tuple = ()  # MapOption (netstack.wire.icmpv6_types), RFC 5380 7.1
    min_delay_between_ras: float = MIN_DELAY_BETWEEN_RAS


class RouterAdvertiser:
    """Unsolicited and solicited RAs for one interface."""

    def __init__(
        self,
        config: RaConfig,
        mac: bytes,
        link_local: IPv6Address,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < config.min_interval <= config.max_interval:
            raise ValueError("RA intervals must satisfy 0 < min_interval <= max_interval")
        self.config = config
        self.mac = bytes(mac)
        self.link_local = link_local
        self.counters: dict[str, int] = {
            "ra_sent_unsolicited": 0,
            "ra_sent_solicited": 0,
            "ra_sent_final": 0,
            "rs_received": 0,
            "rs_rate_limited": 0,
        }
        self._rng = rng if rng is not None else random.Random()
        self._next: float | None = None
        self._initial_left = 0
        self._last_sent: float | None = None

    # ------------------------------------------------------------ inputs

    def start(self, now: float) -> Outgoing:
        self._initial_left = MAX_INITIAL_RTR_ADVERTISEMENTS - 1
        return self._unsolicited(now)

    def receive_router_solicitation(self, src: IPv6Address, now: float) -> Outgoing:
        self.counters["rs_received"] += 1
        if self._next is None:
            return []  # stopped or never started
        last = self._last_sent
        if last is not None and now - last < self.config.min_delay_between_ras:
            self.counters["rs_rate_limited"] += 1
            return []
        self.counters["ra_sent_solicited"] += 1
        self._last_sent = now
        destination = ALL_NODES if src == UNSPECIFIED else src
        return [(destination, self._packet(destination, self.config.router_lifetime))]

    def handle_timer(self, now: float) -> Outgoing:
        if self._next is None or now < self._next:
            return []
        return self._unsolicited(now)

    def next_timer(self) -> float | None:
        return self._next

    def stop(self, now: float) -> Outgoing:
        """RFC 4861 6.2.5: a final RA with router lifetime 0."""
        if self._next is None:
            return []
        self._next = None
        self._last_sent = now
        self.counters["ra_sent_final"] += 1
        return [(ALL_NODES, self._packet(ALL_NODES, 0))]

    # ------------------------------------------------------------ internals

    def _unsolicited(self, now: float) -> Outgoing:
        config = self.config
        interval = self._rng.uniform(config.min_interval, config.max_interval)
        if self._initial_left > 0:
            self._initial_left -= 1
            interval = min(interval, MAX_INITIAL_RTR_ADVERT_INTERVAL)
        self._next = now + interval
        self._last_sent = now
        self.counters["ra_sent_unsolicited"] += 1
        return [(ALL_NODES, self._packet(ALL_NODES, config.router_lifetime))]

    def _options(self) -> tuple[NDOption, ...]:
        config = self.config
        options: list[NDOption] = [SourceLinkLayerAddress(self.mac)]
        if config.mtu is not None:
            options.append(Mtu(config.mtu))
        if config.advertisement_interval:
            options.append(AdvertisementInterval(int(config.max_interval * 1000)))
        for p in config.prefixes:
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
        if config.rdnss:
            data = struct.pack("!HI", 0, config.rdnss_lifetime) + b"".join(
                a.packed for a in config.rdnss
            )
            options.append(UnknownNDOption(_RDNSS, data))
        options.extend(config.map_options)
        return tuple(options)

    def _packet(self, destination: IPv6Address, router_lifetime: int) -> bytes:
        config = self.config
        advert = RouterAdvertisement(
            cur_hop_limit=config.hop_limit,
            managed=config.managed,
            other=config.other_config,
            home_agent=config.home_agent,
            router_lifetime=router_lifetime,
            options=self._options(),
        )
        return build_icmpv6_packet(self.link_local, destination, advert)
