"""Translation table 230, its IPv4 pool and RFC 6052 address mapping."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network, IPv6Address

import pytest

from netstack.translate.pool import IPv4Pool
from netstack.translate.rfc6052 import Rfc6052Prefix
from netstack.translate.table import BadStateFile, TranslationTable
from netstack.wire.errors import ParseError


def a6(text: str) -> bytes:
    return IPv6Address(text).packed


def a4(text: str) -> bytes:
    return IPv4Address(text).packed


HOA = a6("2001:db8:1::100")
PEERS = [a6(f"2001:db8:2::{i:x}") for i in range(1, 20)]


def small_table(network: str = "10.64.0.0/29", idle: float = 30.0) -> TranslationTable:
    # /29: hosts .1-.6, .1 excluded (translator's own address) -> 5 usable addresses
    return TranslationTable(IPv4Pool(IPv4Network(network), exclude=["10.64.0.1"]), idle_timeout=idle)


# -- RFC 6052 -----------------------------------------------------------------------------

# RFC 6052 section 2.4, Table 2: 192.0.2.33 under each prefix length.
RFC6052_VECTORS = [
    ("2001:db8::/32", "2001:db8:c000:221::"),
    ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
    ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
    ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
    ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
    ("2001:db8:122:344::/96", "2001:db8:122:344::c000:221"),
    ("64:ff9b::/96", "64:ff9b::c000:221"),
]


@pytest.mark.parametrize(("prefix", "embedded"), RFC6052_VECTORS)
def test_rfc6052_section_2_4_vectors(prefix: str, embedded: str) -> None:
    mapping = Rfc6052Prefix(prefix)
    assert mapping.embed(a4("192.0.2.33")) == a6(embedded)
    assert mapping.extract(a6(embedded)) == a4("192.0.2.33")


@pytest.mark.parametrize("prefix", ["2001:db8::/33", "2001:db8::/128", "2001:db8::/0"])
def test_rfc6052_rejects_other_lengths(prefix: str) -> None:
    with pytest.raises(ValueError):
        Rfc6052Prefix(prefix)


def test_rfc6052_rejects_nonzero_u_octet() -> None:
    with pytest.raises(ValueError):
        Rfc6052Prefix("2001:db8:122:344:ff00::/64")


def test_rfc6052_extract_outside_prefix() -> None:
    assert Rfc6052Prefix("64:ff9b::/96").extract(a6("2001:db8::1")) is None


# -- pool --------------------------------------------------------------------------------


def test_pool_skips_network_broadcast_and_excluded() -> None:
    pool = IPv4Pool(IPv4Network("10.64.0.0/29"), exclude=["10.64.0.1"])
    got = [pool.allocate() for _ in range(6)]
    assert got == [a4(f"10.64.0.{i}") for i in range(2, 7)] + [None]
    assert a4("10.64.0.1") not in pool and a4("10.64.0.7") not in pool
    assert pool.size == 5


def test_pool_release_makes_address_reusable() -> None:
    pool = IPv4Pool(IPv4Network("10.64.0.0/30"), exclude=[])
    first, second = pool.allocate(), pool.allocate()
    assert pool.allocate() is None
    pool.release(first)
    assert pool.allocate() == first
    assert second != first


def test_default_pool_is_benchmarking_space() -> None:
    table = TranslationTable()
    assert table.pool.network == IPv4Network("198.18.0.0/15")
    assert table.lookup_or_allocate_v6(PEERS[0], 0.0) == a4("198.18.0.2")


# -- table -------------------------------------------------------------------------------


def test_allocation_and_reverse_lookup() -> None:
    table = small_table()
    v4 = table.lookup_or_allocate_v6(PEERS[0], now=1.0)
    assert v4 == a4("10.64.0.2")
    assert table.lookup_or_allocate_v6(PEERS[0], now=2.0) == v4  # stable
    assert table.lookup_v4(v4, now=3.0) == PEERS[0]
    assert table.lookup_v4(a4("10.64.0.3"), now=3.0) is None
    entry = table.get(PEERS[0])
    assert entry.packets == 3 and entry.last_used == 3.0


def test_counters_count_packets_and_bytes() -> None:
    table = small_table()
    v4 = table.lookup_or_allocate_v6(PEERS[0], 0.0, size=100)
    table.lookup_v4(v4, 1.0, size=60)
    entry = table.get(PEERS[0])
    assert (entry.packets, entry.bytes) == (2, 160)


def test_bind_home_address_keeps_address_on_refresh() -> None:
    table = small_table()
    v4 = table.bind_home_address(HOA, now=0.0, lifetime=420)
    entry = table.get(HOA)
    assert entry.home and entry.expires_at == 420
    assert table.bind_home_address(IPv6Address("2001:db8:1::100"), now=300.0, lifetime=600) == v4
    assert entry.expires_at == 900 and entry.lifetime == 600
    assert table.lookup_v4(v4, 301.0) == HOA


def test_idle_expiry_and_traffic_refresh() -> None:
    table = small_table(idle=30.0)
    table.lookup_or_allocate_v6(PEERS[0], now=0.0)
    entry = table.get(PEERS[0])
    assert not entry.expired(29.9) and entry.expired(30.0)
    table.lookup_or_allocate_v6(PEERS[0], now=25.0)  # traffic refreshes
    assert not entry.expired(54.9) and entry.expired(55.0)
    assert table.purge_expired(54.0) == []
    assert [e.ipv6 for e in table.purge_expired(55.0)] == [PEERS[0]]
    assert len(table) == 0 and table.pool.in_use == 0


def test_exhaustion_reuses_least_recently_used_expired_entry() -> None:
    table = small_table(idle=30.0)
    for i in range(5):  # fill the 5 addresses at t = 0..4
        table.lookup_or_allocate_v6(PEERS[i], now=float(i))
    table.lookup_or_allocate_v6(PEERS[0], now=10.0)  # PEERS[0] used last -> expires 40
    # at t=36: PEERS[1..4] expired (31..34); PEERS[1] is the least recently used
    reused = table.get(PEERS[1]).ipv4
    assert table.lookup_or_allocate_v6(PEERS[10], now=36.0) == reused
    assert table.get(PEERS[1]) is None
    assert table.lookup_v4(reused, 36.0) == PEERS[10]
    assert table.counters["reused_expired"] == 1
    # next one takes PEERS[2]'s address (next LRU expired), not PEERS[0] (alive until 40)
    assert table.lookup_or_allocate_v6(PEERS[11], now=36.0) is not None
    assert table.get(PEERS[2]) is None and table.get(PEERS[0]) is not None


def test_exhaustion_without_expired_entries_returns_none() -> None:
    table = small_table(idle=30.0)
    for i in range(5):
        assert table.lookup_or_allocate_v6(PEERS[i], now=0.0) is not None
    assert table.lookup_or_allocate_v6(PEERS[5], now=10.0) is None
    assert table.counters["pool_exhausted"] == 1
    assert table.bind_home_address(HOA, 10.0, 420) is None


def test_static_entries_never_expire_nor_get_reused() -> None:
    table = small_table(idle=30.0)
    table.add_static(PEERS[0], a4("10.64.0.2"), now=0.0)
    table.add_static(a6("2001:db8:9::1"), a4("203.0.113.5"), now=0.0)  # outside the pool
    for i in range(1, 5):
        table.lookup_or_allocate_v6(PEERS[i], now=0.0)
    assert table.lookup_or_allocate_v6(PEERS[5], now=1000.0) is not None  # reused a dynamic one
    assert table.get(PEERS[0]).ipv4 == a4("10.64.0.2")
    assert table.lookup_v4(a4("203.0.113.5"), 1000.0) == a6("2001:db8:9::1")
    assert table.purge_expired(10_000.0) and table.get(PEERS[0]) is not None


def test_static_entry_replaces_dynamic_one() -> None:
    table = small_table()
    table.lookup_or_allocate_v6(PEERS[0], now=0.0)
    table.add_static(PEERS[0], a4("203.0.113.9"), now=1.0)
    assert table.lookup_v4(a4("203.0.113.9"), 2.0) == PEERS[0]
    assert table.lookup_v4(a4("10.64.0.2"), 2.0) is None
    assert table.pool.in_use == 0


def test_rfc6052_fallback_for_addresses_outside_the_pool() -> None:
    table = TranslationTable(IPv4Pool(IPv4Network("10.64.0.0/29"), exclude=["10.64.0.1"]), prefix="2001:db8:100::/40")
    # host -> far IPv4 destination: synthesised with the prefix, no row created
    assert table.v4_to_v6(a4("192.0.2.33"), 0.0) == a6("2001:db8:1c0:2:21::")
    assert len(table) == 0
    # reply from the synthesised address maps back without allocating
    assert table.v6_to_v4(a6("2001:db8:1c0:2:21::"), 0.0) == a4("192.0.2.33")
    # an unknown native IPv6 source gets a pool address
    assert table.v6_to_v4(PEERS[0], 0.0) == a4("10.64.0.2")
    assert table.v4_to_v6(a4("10.64.0.2"), 0.0) == PEERS[0]
    # a pool address without a row is unknown, never synthesised
    assert table.v4_to_v6(a4("10.64.0.5"), 0.0) is None


def test_persistence_round_trip(tmp_path) -> None:
    table = small_table(idle=30.0)
    hoa_v4 = table.bind_home_address(HOA, now=100.0, lifetime=420)
    table.lookup_or_allocate_v6(PEERS[0], now=100.0, size=10)
    table.lookup_or_allocate_v6(PEERS[1], now=110.0)
    table.add_static(a6("2001:db8:9::1"), a4("203.0.113.5"), now=100.0)
    path = tmp_path / "xlat.json"
    table.save(path, now=120.0)
    assert [p.name for p in tmp_path.iterdir()] == ["xlat.json"]  # no temp file left behind

    # reloaded in a new process whose clock restarted at 5.0
    loaded = TranslationTable.load(path, now=5.0)
    assert loaded.get(HOA).ipv4 == hoa_v4 and loaded.get(HOA).home
    assert loaded.get(HOA).expires_at == pytest.approx(5.0 + 400.0)
    peer0 = loaded.get(PEERS[0])
    assert peer0.expires_at == pytest.approx(5.0 + 10.0) and peer0.bytes == 10
    assert loaded.lookup_v4(a4("203.0.113.5"), 6.0) == a6("2001:db8:9::1")
    assert loaded.pool.network == table.pool.network
    # allocation continues without clashing with restored addresses
    fresh = loaded.lookup_or_allocate_v6(PEERS[2], now=6.0)
    assert fresh not in {hoa_v4, peer0.ipv4, loaded.get(PEERS[1]).ipv4}
    # LRU order survives: PEERS[0] (idle longest) is reused first once expired
    for i in range(3, 5):
        loaded.lookup_or_allocate_v6(PEERS[i], now=6.0)
    assert loaded.lookup_or_allocate_v6(PEERS[9], now=16.0) == peer0.ipv4


def test_to_json_is_json_with_remaining_lifetimes() -> None:
    table = small_table(idle=30.0)
    table.lookup_or_allocate_v6(PEERS[0], now=0.0)
    state = json.loads(table.to_json(now=10.0))
    assert state["entries"][0]["remaining"] == pytest.approx(20.0)
    assert state["entries"][0]["ipv6"] == "2001:db8:2::1"


@pytest.mark.parametrize(
    "text",
    ["not json", "{}", '{"version": 99}', '{"version": 1, "pool": {"network": "bad"}}', "[]"],
)
def test_bad_state_file_raises_parse_error(text: str) -> None:
    with pytest.raises(BadStateFile) as info:
        TranslationTable.from_json(text, now=0.0)
    assert isinstance(info.value, ParseError) and info.value.reason == "bad_state_file"


def test_as_dict_for_status() -> None:
    table = small_table()
    table.bind_home_address(HOA, 0.0, 420)
    status = table.as_dict(now=20.0)
    assert status["entries"][0]["ipv4"] == "10.64.0.2"
    assert status["entries"][0]["remaining"] == 400.0
    assert status["pool_in_use"] == 1
