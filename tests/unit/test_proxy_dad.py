"""ProxyDad: DAD on the home link on behalf of a mobile node (RFC 6275 10.4.1)."""

from __future__ import annotations

from ipaddress import IPv6Address

from scapy.layers.inet6 import ICMPv6ND_NS, IPv6, in6_chksum

from netstack.wire.icmpv6 import decode_icmpv6_packet
from netstack.wire.icmpv6_types import NeighborSolicitation
from netstack.wire.ipv6 import parse_ipv6_packet
from network.home_agent.proxy_dad import ProxyDad

HOA = IPv6Address("2001:db8:6::1000")
HOA2 = IPv6Address("2001:db8:6::2:3000")
OTHER = IPv6Address("2001:db8:6::77")
SOLICITED_HOA = IPv6Address("ff02::1:ff00:1000")


def test_probe_is_a_dad_neighbor_solicitation() -> None:
    dad = ProxyDad()
    dad.start(HOA, 10.0)
    [(group, packet)] = dad.packets_to_send()
    assert group == SOLICITED_HOA
    parsed = parse_ipv6_packet(packet)
    assert parsed.src == IPv6Address("::") and parsed.dst == SOLICITED_HOA
    assert parsed.hop_limit == 255 and parsed.upper_protocol == 58
    message = decode_icmpv6_packet(parsed)
    assert message == NeighborSolicitation(target=HOA)  # no SLLA option from ::
    scapy_view = IPv6(packet)
    ns = scapy_view[ICMPv6ND_NS]
    assert ns.tgt == str(HOA) and ns.type == 135 and ns.code == 0
    checksum = ns.cksum
    ns.cksum = 0
    assert in6_chksum(58, scapy_view, bytes(ns)) == checksum
    assert dad.packets_to_send() == []  # drained


def test_no_answer_within_retrans_timer_means_unique() -> None:
    dad = ProxyDad(retrans_timer=1.0)
    dad.start(HOA, 10.0)
    assert dad.get_timer() == 11.0
    dad.handle_timer(10.999)
    assert dad.results() == []
    dad.handle_timer(11.0)
    assert dad.results() == [(HOA, False)]
    assert dad.results() == []
    assert dad.get_timer() is None


def test_neighbor_advertisement_means_duplicate() -> None:
    dad = ProxyDad()
    dad.start(HOA, 0.0)
    dad.observe(HOA, advertisement=True, source=OTHER)
    assert dad.results() == [(HOA, True)]
    assert dad.get_timer() is None
    dad.handle_timer(5.0)
    assert dad.results() == []  # no second verdict


def test_someone_elses_dad_probe_means_duplicate() -> None:
    dad = ProxyDad()
    dad.start(HOA, 0.0)
    dad.observe(HOA, advertisement=False, source=IPv6Address("::"))
    assert dad.results() == [(HOA, True)]


def test_ordinary_address_resolution_is_not_a_duplicate() -> None:
    dad = ProxyDad()
    dad.start(HOA, 0.0)
    dad.observe(HOA, advertisement=False, source=OTHER)
    assert dad.results() == []
    dad.handle_timer(1.0)
    assert dad.results() == [(HOA, False)]


def test_observations_for_other_targets_are_ignored() -> None:
    dad = ProxyDad()
    dad.start(HOA, 0.0)
    dad.observe(HOA2, advertisement=True, source=OTHER)
    assert dad.results() == []
    assert dad.get_timer() == 1.0


def test_observation_without_a_probe_is_ignored() -> None:
    dad = ProxyDad()
    dad.observe(HOA, advertisement=True, source=OTHER)
    assert dad.results() == [] and dad.get_timer() is None


def test_multiple_transmits() -> None:
    dad = ProxyDad(retrans_timer=0.5, transmits=3)
    dad.start(HOA, 0.0)
    assert len(dad.packets_to_send()) == 1
    dad.handle_timer(0.5)
    assert len(dad.packets_to_send()) == 1 and dad.results() == []
    assert dad.get_timer() == 1.0
    dad.handle_timer(1.0)
    assert len(dad.packets_to_send()) == 1 and dad.results() == []
    dad.handle_timer(1.5)
    assert dad.packets_to_send() == []
    assert dad.results() == [(HOA, False)]


def test_duplicate_seen_between_transmits() -> None:
    dad = ProxyDad(retrans_timer=1.0, transmits=2)
    dad.start(HOA, 0.0)
    dad.handle_timer(1.0)
    dad.observe(HOA, advertisement=True, source=OTHER)
    assert dad.results() == [(HOA, True)]
    dad.handle_timer(2.0)
    assert dad.results() == []


def test_start_twice_does_not_restart_the_probe() -> None:
    dad = ProxyDad()
    dad.start(HOA, 0.0)
    dad.start(HOA, 0.5)
    assert len(dad.packets_to_send()) == 1
    assert dad.get_timer() == 1.0


def test_two_addresses_in_parallel() -> None:
    dad = ProxyDad()
    dad.start(HOA, 0.0)
    dad.start(HOA2, 0.4)
    groups = [group for group, _ in dad.packets_to_send()]
    assert groups == [SOLICITED_HOA, IPv6Address("ff02::1:ff02:3000")]
    assert dad.get_timer() == 1.0
    dad.observe(HOA2, advertisement=True, source=OTHER)
    dad.handle_timer(1.0)
    assert sorted(dad.results()) == [(HOA, False), (HOA2, True)]


def test_probe_again_after_a_verdict() -> None:
    dad = ProxyDad()
    dad.start(HOA, 0.0)
    dad.handle_timer(1.0)
    assert dad.results() == [(HOA, False)]
    dad.packets_to_send()
    dad.start(HOA, 100.0)
    assert len(dad.packets_to_send()) == 1 and dad.get_timer() == 101.0
