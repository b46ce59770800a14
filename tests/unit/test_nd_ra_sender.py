"""RouterAdvertiser (RFC 4861 6.2), fake clock."""

from __future__ import annotations

import random
from ipaddress import IPv6Address, IPv6Network

from netstack.nd.ra_sender import AdvertisedPrefix, RaConfig, RouterAdvertiser
from netstack.wire.icmpv6 import decode_icmpv6_packet
from netstack.wire.icmpv6_types import (
    PrefixInformation,
    RouterAdvertisement,
    SourceLinkLayerAddress,
)
from netstack.wire.ipv6 import parse_ipv6_packet

MAC = bytes.fromhex("020000000001")
LL = IPv6Address("fe80::1")
MNP = IPv6Network("2001:db8:6:100::/64")


def advertiser(**kw: object) -> RouterAdvertiser:
    config = RaConfig(prefixes=(AdvertisedPrefix(MNP),), **kw)  # type: ignore[arg-type]
    return RouterAdvertiser(config, MAC, LL, rng=random.Random(3))


def decode(packet: bytes) -> RouterAdvertisement:
    parsed = parse_ipv6_packet(packet)
    assert parsed.hop_limit == 255 and parsed.src == LL
    message = decode_icmpv6_packet(parsed)  # checks the ICMPv6 checksum
    assert isinstance(message, RouterAdvertisement)
    return message


def test_first_ra_at_start_carries_prefix_and_source_link_layer_address() -> None:
    ra = advertiser()
    ((dst, packet),) = ra.start(0.0)
    assert dst == IPv6Address("ff02::1")
    message = decode(packet)
    assert message.router_lifetime == 1800
    assert SourceLinkLayerAddress(MAC) in message.options
    pio = [o for o in message.options if isinstance(o, PrefixInformation)]
    assert [(p.prefix, p.autonomous, p.on_link) for p in pio] == [(MNP, True, True)]


def test_unsolicited_ras_stay_within_the_interval() -> None:
    ra = advertiser(min_interval=3.0, max_interval=10.0)
    ra.start(0.0)
    now = 0.0
    for _ in range(20):
        nxt = ra.next_timer()
        assert nxt is not None and 3.0 <= nxt - now <= 10.0
        assert ra.handle_timer(nxt - 0.01) == []
        now = nxt
        assert len(ra.handle_timer(now)) == 1
    assert ra.counters["ra_sent_unsolicited"] == 21


def test_solicitation_answered_unicast_or_multicast() -> None:
    ra = advertiser()
    ra.start(0.0)
    host = IPv6Address("fe80::99")
    ((dst, packet),) = ra.receive_router_solicitation(host, 100.0)
    assert dst == host and decode(packet).router_lifetime == 1800
    ((dst, _),) = ra.receive_router_solicitation(IPv6Address("::"), 200.0)
    assert dst == IPv6Address("ff02::1")
    assert ra.counters["rs_received"] == 2


def test_stop_sends_lifetime_zero_and_silences() -> None:
    ra = advertiser()
    ra.start(0.0)
    ((_, packet),) = ra.stop(1.0)
    assert decode(packet).router_lifetime == 0
    assert ra.next_timer() is None and ra.handle_timer(100.0) == []
