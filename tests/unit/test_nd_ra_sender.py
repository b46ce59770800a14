"""RouterAdvertiser (RFC 4861 6.2, RFC 6275 7.5, RFC 5380 7.1) on a fake clock."""

from __future__ import annotations

import random
from ipaddress import IPv6Address, IPv6Network

import pytest
from scapy.layers.inet6 import ICMPv6ND_RA, ICMPv6NDOptMAP, ICMPv6NDOptPrefixInfo, IPv6

from netstack.nd.ra_sender import ALL_NODES, AdvertisedPrefix, RaConfig, RouterAdvertiser
from netstack.wire.icmpv6 import decode_icmpv6_packet
from netstack.wire.icmpv6_types import (
    AdvertisementInterval,
    MapOption,
    Mtu,
    PrefixInformation,
    RouterAdvertisement,
    UnknownNDOption,
)
from netstack.wire.ipv6 import parse_ipv6_packet

MAC = bytes.fromhex("020000000a01")
LL = IPv6Address("fe80::a1")
MAP = MapOption(distance=1, preference=10, valid_lifetime=600,
                map_address=IPv6Address("2001:db8:d::1"))


def _config(**kw: object) -> RaConfig:
    base: dict[str, object] = dict(
        prefixes=(AdvertisedPrefix(IPv6Network("2001:db8:a::/64")),),
        min_interval=0.05, max_interval=0.1, mtu=1500, advertisement_interval=True,
        rdnss=(IPv6Address("2001:db8:6::53"),), map_options=(MAP,))
    base.update(kw)
    return RaConfig(**base)  # type: ignore[arg-type]


def _decode(packet: bytes) -> RouterAdvertisement:
    message = decode_icmpv6_packet(parse_ipv6_packet(packet))
    assert isinstance(message, RouterAdvertisement)
    return message


def test_first_ra_at_once_with_every_option() -> None:
    ra = RouterAdvertiser(_config(home_agent=True, managed=True), MAC, LL, random.Random(1))
    out = ra.start(0.0)
    assert len(out) == 1 and out[0][0] == ALL_NODES
    msg = _decode(out[0][1])
    assert msg.home_agent and msg.managed and msg.router_lifetime == 1800
    kinds = {type(o) for o in msg.options}
    assert {Mtu, AdvertisementInterval, PrefixInformation, MapOption} <= kinds
    assert MAP in msg.options
    assert AdvertisementInterval(100) in msg.options
    rdnss = [o for o in msg.options if isinstance(o, UnknownNDOption) and o.type == 25]
    assert rdnss and rdnss[0].data.endswith(IPv6Address("2001:db8:6::53").packed)
    # an independent decoder reads the same RA (checksum right, MAP option fields)
    sc = IPv6(out[0][1])
    assert sc[ICMPv6ND_RA].H == 1
    assert sc[ICMPv6NDOptMAP].dist == 1 and sc[ICMPv6NDOptMAP].pref == 10
    assert sc[ICMPv6NDOptMAP].addr == "2001:db8:d::1"
    assert sc[ICMPv6NDOptPrefixInfo].prefix == "2001:db8:a::"
    del sc[ICMPv6ND_RA].cksum
    assert IPv6(bytes(sc))[ICMPv6ND_RA].cksum == IPv6(out[0][1])[ICMPv6ND_RA].cksum


def test_unsolicited_interval_within_bounds() -> None:
    ra = RouterAdvertiser(_config(), MAC, LL, random.Random(2))
    now = 0.0
    ra.start(now)
    sent = 0
    for _ in range(50):
        due = ra.next_timer()
        assert due is not None and 0.05 <= due - now <= 0.1 + 1e-9
        now = due
        out = ra.handle_timer(now)
        sent += len(out)
    assert sent == 50 and ra.counters["ra_sent_unsolicited"] == 51


def test_initial_interval_capped_at_16s() -> None:
    ra = RouterAdvertiser(_config(min_interval=100, max_interval=200), MAC, LL, random.Random(3))
    ra.start(0.0)
    assert ra.next_timer() == pytest.approx(16.0)


def test_rs_answered_at_once_unicast_and_rate_limited_multicast() -> None:
    ra = RouterAdvertiser(_config(min_interval=1.0, max_interval=2.0), MAC, LL, random.Random(4))
    ra.start(0.0)
    host = IPv6Address("fe80::99")
    out = ra.receive_router_solicitation(host, 0.1)
    assert [d for d, _ in out] == [host]
    assert parse_ipv6_packet(out[0][1]).dst == host
    _decode(out[0][1])  # checksum valid for the unicast destination
    # from :: inside MIN_DELAY_BETWEEN_RAS (= min_interval here): deferred, one multicast later
    assert ra.receive_router_solicitation(IPv6Address("::"), 0.2) == []
    assert ra.receive_router_solicitation(IPv6Address("::"), 0.3) == []
    assert ra.counters["rs_rate_limited"] == 2
    assert ra.next_timer() == pytest.approx(1.0)
    out = ra.handle_timer(1.0)
    assert [d for d, _ in out] == [ALL_NODES]
    assert ra.counters["ra_sent_solicited"] == 2
    # after the gap an RS from :: is answered at once
    assert len(ra.receive_router_solicitation(IPv6Address("::"), 2.5)) == 1


def test_stop_sends_zero_lifetime_and_disarms() -> None:
    ra = RouterAdvertiser(_config(), MAC, LL, random.Random(5))
    ra.start(0.0)
    out = ra.stop(1.0)
    assert _decode(out[0][1]).router_lifetime == 0
    assert ra.next_timer() is None
    assert ra.receive_router_solicitation(IPv6Address("fe80::1"), 2.0) == []


@pytest.mark.parametrize("kw", [dict(min_interval=0.01), dict(min_interval=5, max_interval=4),
                                dict(mtu=1000), dict(router_lifetime=10000)])
def test_bad_config_refused(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RouterAdvertiser(_config(**kw), MAC, LL)
