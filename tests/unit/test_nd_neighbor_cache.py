"""RFC 4861 7.3 reachability state machine, driven directly with a fake clock."""

from __future__ import annotations

from ipaddress import IPv6Address

from netstack.nd.config import NdConfig
from netstack.nd.neighbor_cache import NeighborCache, NeighborState, Solicit, Transmit

PEER = IPv6Address("fe80::2")
PEER_MAC = bytes.fromhex("020000000002")
OTHER_MAC = bytes.fromhex("020000000003")


def make_cache() -> tuple[NeighborCache, dict[str, int]]:
    counters: dict[str, int] = {}
    return NeighborCache(NdConfig(randomize_reachable_time=False), counters), counters


def test_resolution_holds_packets_and_flushes_on_solicited_na() -> None:
    cache, _ = make_cache()
    assert cache.send(PEER, b"p1", 0.0) == [Solicit(PEER, None)]
    assert cache.send(PEER, b"p2", 0.1) == []
    assert cache.get(PEER).state is NeighborState.INCOMPLETE
    actions, _ = cache.advertisement(
        PEER, PEER_MAC, solicited=True, override=True, router=False, now=0.5
    )
    assert actions == [Transmit(PEER_MAC, b"p1"), Transmit(PEER_MAC, b"p2")]
    assert cache.get(PEER).state is NeighborState.REACHABLE
    assert cache.send(PEER, b"p3", 1.0) == [Transmit(PEER_MAC, b"p3")]


def test_queue_keeps_newest_three() -> None:
    cache, counters = make_cache()
    for i in range(5):
        cache.send(PEER, f"p{i}".encode(), 0.0)
    actions, _ = cache.advertisement(
        PEER, PEER_MAC, solicited=True, override=True, router=False, now=0.1
    )
    assert [a.packet for a in actions] == [b"p2", b"p3", b"p4"]
    assert counters["nd_queue_overflow"] == 2


def test_resolution_failure_after_max_multicast_solicit() -> None:
    cache, counters = make_cache()
    cache.send(PEER, b"p1", 0.0)
    cache.send(PEER, b"p2", 0.0)
    assert cache.handle_timer(1.0) == [Solicit(PEER, None)]
    assert cache.handle_timer(2.0) == [Solicit(PEER, None)]
    assert cache.handle_timer(3.0) == []
    assert cache.get(PEER) is None
    assert counters["nd_resolution_failed"] == 1
    assert counters["nd_dropped_packets"] == 2


def test_reachable_stale_delay_probe_and_deletion() -> None:
    cache, counters = make_cache()
    cache.send(PEER, b"p", 0.0)
    cache.advertisement(PEER, PEER_MAC, solicited=True, override=True, router=False, now=0.0)
    assert cache.next_timer() == 30.0
    cache.handle_timer(30.0)
    assert cache.get(PEER).state is NeighborState.STALE
    assert cache.send(PEER, b"q", 31.0) == [Transmit(PEER_MAC, b"q")]
    assert cache.get(PEER).state is NeighborState.DELAY
    assert cache.handle_timer(36.0) == [Solicit(PEER, PEER_MAC)]
    assert cache.get(PEER).state is NeighborState.PROBE
    assert cache.handle_timer(37.0) == [Solicit(PEER, PEER_MAC)]
    assert cache.handle_timer(38.0) == [Solicit(PEER, PEER_MAC)]
    assert cache.handle_timer(39.0) == []
    assert cache.get(PEER) is None
    assert counters["nd_unreachable"] == 1


def test_probe_answered_returns_to_reachable() -> None:
    cache, _ = make_cache()
    cache.learn(PEER, PEER_MAC, 0.0)
    cache.send(PEER, b"q", 1.0)
    cache.handle_timer(6.0)
    assert cache.get(PEER).state is NeighborState.PROBE
    cache.advertisement(PEER, PEER_MAC, solicited=True, override=False, router=False, now=6.5)
    assert cache.get(PEER).state is NeighborState.REACHABLE


def test_non_override_na_with_new_mac_does_not_replace() -> None:
    cache, _ = make_cache()
    cache.send(PEER, b"p", 0.0)
    cache.advertisement(PEER, PEER_MAC, solicited=True, override=True, router=False, now=0.0)
    cache.advertisement(PEER, OTHER_MAC, solicited=False, override=False, router=False, now=1.0)
    entry = cache.get(PEER)
    assert entry.mac == PEER_MAC
    assert entry.state is NeighborState.STALE
    cache.advertisement(PEER, OTHER_MAC, solicited=False, override=True, router=False, now=2.0)
    assert cache.get(PEER).mac == OTHER_MAC


def test_learn_from_solicitation_creates_stale_and_resolves_incomplete() -> None:
    cache, _ = make_cache()
    cache.learn(PEER, PEER_MAC, 0.0)
    assert cache.get(PEER).state is NeighborState.STALE
    other = IPv6Address("fe80::9")
    cache.send(other, b"x", 0.0)
    assert cache.learn(other, OTHER_MAC, 0.2) == [Transmit(OTHER_MAC, b"x")]
    assert cache.get(other).state is NeighborState.DELAY


def test_router_flag_cleared_is_reported() -> None:
    cache, _ = make_cache()
    cache.learn(PEER, PEER_MAC, 0.0, is_router=True)
    _, cleared = cache.advertisement(
        PEER, None, solicited=False, override=False, router=False, now=1.0
    )
    assert cleared is True


def test_unknown_target_na_is_ignored() -> None:
    cache, _ = make_cache()
    actions, cleared = cache.advertisement(
        PEER, PEER_MAC, solicited=False, override=True, router=False, now=0.0
    )
    assert (actions, cleared, cache.get(PEER)) == ([], False, None)
