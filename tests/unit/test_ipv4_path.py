"""Ipv4Translation (scenario 10000): host IPv4 <-> IPv6 of the home address through table 230."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address, IPv4Network, IPv6Address

from scapy.layers.inet import ICMP, IP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import ICMPv6DestUnreach, IPerror6, IPv6
from scapy.packet import Raw

from guest_agent.ipv4_path import Ipv4Translation
from netstack.translate.pool import IPv4Pool
from netstack.translate.rfc6052 import Rfc6052Prefix
from netstack.translate.rfc7915 import Rfc7915Translator, TranslatorConfig
from netstack.translate.table import TranslationTable

HOA = "2001:db8:6::1000"
HOME4 = "198.18.0.2"
GATEWAY4 = "198.18.0.1"
POOL = IPv4Network("198.18.0.0/29")  # usable .3 .. .6 once .1 and .2 are excluded
CN = "2001:db8:5::7"
STATIC6 = "2001:db8:5::50"
STATIC4 = "192.0.2.50"
IDLE = 30.0


def a4(text: str) -> bytes:
    return IPv4Address(text).packed


def a6(text: str) -> bytes:
    return IPv6Address(text).packed


def make() -> Ipv4Translation:
    pool = IPv4Pool(POOL, exclude=(IPv4Address(GATEWAY4), IPv4Address(HOME4)))
    table = TranslationTable(pool, prefix=Rfc6052Prefix("64:ff9b::/96"), idle_timeout=IDLE)
    table.add_static(STATIC6, STATIC4, 0.0)
    translator = Rfc7915Translator(
        TranslatorConfig(icmpv4_error_source=a4(GATEWAY4), icmpv6_error_source=a6(HOA))
    )
    xlat = Ipv4Translation(
        table,
        translator,
        home_address=a6(HOA),
        home_ipv4=a4(HOME4),
        gateway_ipv4=a4(GATEWAY4),
        counters=Counter(),
    )
    translator.map_6to4 = xlat.map_inner_6to4
    translator.map_4to6 = xlat.map_inner_4to6
    return xlat


def host_packet(dst: str, *, src: str = HOME4, ttl: int = 64, data: bytes = b"ping") -> bytes:
    return bytes(IP(src=src, dst=dst, ttl=ttl, id=7) / UDP(sport=5353, dport=53) / Raw(data))


def peer_packet(src: str, *, dst: str = HOA, hlim: int = 64, data: bytes = b"pong") -> bytes:
    return bytes(IPv6(src=src, dst=dst, hlim=hlim) / UDP(sport=53, dport=5353) / Raw(data))


def assert_udp6_checksum_valid(packet: bytes) -> None:
    parsed = IPv6(packet)
    received = parsed[UDP].chksum
    del parsed[UDP].chksum
    assert IPv6(bytes(parsed))[UDP].chksum == received


def assert_udp4_checksum_valid(packet: bytes) -> None:
    parsed = IP(packet)
    received_ip, received_udp = parsed.chksum, parsed[UDP].chksum
    del parsed.chksum
    del parsed[UDP].chksum
    rebuilt = IP(bytes(parsed))
    assert (rebuilt.chksum, rebuilt[UDP].chksum) == (received_ip, received_udp)


# ------------------------------------------------------------------ step 514: host -> IPv6


def test_outbound_to_a_static_mapping() -> None:
    xlat = make()
    out, errors = xlat.outbound(memoryview(host_packet(STATIC4, ttl=64)), 1.0)
    assert errors == []
    [packet] = out
    header = IPv6(packet)
    assert header.src == HOA and header.dst == STATIC6
    assert header.nh == 17 and header.hlim == 63
    assert header[UDP].sport == 5353 and header[UDP].dport == 53 and bytes(header[Raw]) == b"ping"
    assert_udp6_checksum_valid(packet)
    assert xlat.counters == Counter({"xlat_4to6": 1})


def test_outbound_outside_the_pool_uses_the_rfc6052_prefix() -> None:
    xlat = make()
    [packet], errors = xlat.outbound(memoryview(host_packet("192.0.2.33")), 1.0)
    assert errors == []
    assert packet[8:24] == a6(HOA)
    assert packet[24:40] == a6("64:ff9b::c000:221")
    assert_udp6_checksum_valid(packet)


def test_outbound_from_a_foreign_source_is_dropped() -> None:
    xlat = make()
    assert xlat.outbound(memoryview(host_packet(STATIC4, src="198.18.0.9")), 1.0) == ([], [])
    assert xlat.counters == Counter({"xlat_dropped_foreign_source": 1})


def test_outbound_not_ipv4_is_dropped() -> None:
    xlat = make()
    assert xlat.outbound(memoryview(peer_packet(CN)), 1.0) == ([], [])
    assert xlat.outbound(memoryview(host_packet(STATIC4)[:19]), 1.0) == ([], [])
    assert xlat.counters == Counter({"xlat_dropped_not_ipv4": 2})


def test_outbound_to_an_unmapped_pool_address_is_refused_with_icmp() -> None:
    xlat = make()
    original = host_packet("198.18.0.5")
    out, [error] = xlat.outbound(memoryview(original), 1.0)
    assert out == []
    reply = IP(error)
    assert reply.src == GATEWAY4 and reply.dst == HOME4 and reply.proto == 1
    assert reply[ICMP].type == 3 and reply[ICMP].code == 13
    assert bytes(reply[IPerror])[: len(original)] == original
    assert reply[UDPerror].dport == 53
    checksum = reply[ICMP].chksum
    del reply[ICMP].chksum
    del reply.chksum
    assert IP(bytes(reply))[ICMP].chksum == checksum
    assert xlat.counters == Counter({"xlat_dropped_unmapped_destination": 1})


def test_expired_ttl_produces_the_translators_icmp_error() -> None:
    xlat = make()
    out, [error] = xlat.outbound(memoryview(host_packet(STATIC4, ttl=1)), 1.0)
    assert out == []
    reply = IP(error)
    assert reply[ICMP].type == 11 and reply.dst == HOME4
    assert xlat.counters["xlat_4to6"] == 0


# ------------------------------------------------------------------ step 511: IPv6 -> host


def test_inbound_from_a_new_source_allocates_a_pool_address() -> None:
    xlat = make()
    out, errors = xlat.inbound(memoryview(peer_packet(CN)), 1.0)
    assert errors == []
    [packet] = out
    header = IP(packet)
    assert header.src == "198.18.0.3" and header.dst == HOME4
    assert header.ttl == 63 and header.proto == 17 and bytes(header[Raw]) == b"pong"
    assert_udp4_checksum_valid(packet)
    assert xlat.table.get(a6(CN)).ipv4 == a4("198.18.0.3")
    assert xlat.counters == Counter({"xlat_6to4": 1})
    # the same peer keeps its address; the host's answer maps back to the peer
    [again], _ = xlat.inbound(memoryview(peer_packet(CN)), 2.0)
    assert IP(again).src == "198.18.0.3"
    [reply], _ = xlat.outbound(memoryview(host_packet("198.18.0.3")), 3.0)
    assert reply[24:40] == a6(CN)


def test_inbound_from_a_static_and_an_rfc6052_source() -> None:
    xlat = make()
    [from_static], _ = xlat.inbound(memoryview(peer_packet(STATIC6)), 1.0)
    [from_prefix], _ = xlat.inbound(memoryview(peer_packet("64:ff9b::c000:221")), 1.0)
    assert IP(from_static).src == STATIC4
    assert IP(from_prefix).src == "192.0.2.33"
    assert xlat.table.pool.in_use == 0  # neither took a pool address


def fill_pool(xlat: Ipv4Translation, now: float) -> list[str]:
    peers = [f"2001:db8:5::{i:x}" for i in range(0x100, 0x104)]
    for peer in peers:
        [packet], _ = xlat.inbound(memoryview(peer_packet(peer)), now)
    assert xlat.table.pool.in_use == 4
    return peers


def test_pool_exhausted_answers_admin_prohibited() -> None:
    xlat = make()
    fill_pool(xlat, 0.0)
    late = "2001:db8:5::999"
    original = peer_packet(late)
    out, [error] = xlat.inbound(memoryview(original), 1.0)
    assert out == []
    reply = IPv6(error)
    assert reply.src == HOA and reply.dst == late and reply.nh == 58
    assert reply[ICMPv6DestUnreach].type == 1 and reply[ICMPv6DestUnreach].code == 1
    assert bytes(reply[IPerror6]) == original
    checksum = reply[ICMPv6DestUnreach].cksum
    del reply[ICMPv6DestUnreach].cksum
    assert IPv6(bytes(reply))[ICMPv6DestUnreach].cksum == checksum
    assert xlat.counters["xlat_dropped_pool_exhausted"] == 1
    assert xlat.table.get(a6(late)) is None


def test_expired_entry_is_reused_after_the_idle_timeout() -> None:
    xlat = make()
    peers = fill_pool(xlat, 0.0)
    # Peers 1..3 stay busy; peer 0 goes quiet and is the one to give way.
    for peer in peers[1:]:
        xlat.inbound(memoryview(peer_packet(peer)), 20.0)
    late = "2001:db8:5::999"
    assert xlat.inbound(memoryview(peer_packet(late)), IDLE - 0.001)[0] == []  # not expired yet
    [packet], errors = xlat.inbound(memoryview(peer_packet(late)), IDLE)
    assert errors == []
    assert IP(packet).src == "198.18.0.3"  # peer 0's address, reused
    assert xlat.table.get(a6(peers[0])) is None
    assert xlat.table.get(a6(late)).ipv4 == a4("198.18.0.3")
    assert xlat.counters == Counter({"xlat_6to4": 8, "xlat_dropped_pool_exhausted": 1})


def test_router_icmpv6_error_comes_from_the_gateway_without_using_the_pool() -> None:
    xlat = make()
    # The host's UDP packet went out to the CN; a router on the way answers unreachable.
    out, _ = xlat.outbound(memoryview(host_packet(STATIC4)), 0.0)
    assert out
    error = bytes(
        IPv6(src="2001:db8:6::ffff", dst=HOA) / ICMPv6DestUnreach(code=0) / IPerror6(out[0][:48])
    )
    before = xlat.table.pool.in_use
    to_host, errors = xlat.inbound(memoryview(error), 1.0)
    assert errors == [] and len(to_host) == 1
    assert IP(to_host[0]).src == GATEWAY4
    assert IP(to_host[0])[ICMP].type == 3
    assert xlat.table.pool.in_use == before


# ------------------------------------------------------------------ GSO super-frames (TSO)


def _tso_super_frame(payload: bytes, *, flags: str = "PA") -> bytes:
    from scapy.layers.inet import TCP

    packet = bytearray(bytes(IP(src=HOME4, dst=STATIC4, ttl=64, id=100, flags="DF")
                             / TCP(sport=40000, dport=80, seq=10, ack=20, flags=flags) / payload))
    packet[36:38] = b"\x12\x34"  # CHECKSUM_PARTIAL: whatever the field holds is not used
    return bytes(packet)


def test_super_frame_is_translated_once_and_equals_the_per_segment_path() -> None:
    from scapy.layers.inet import TCP

    from netstack.wire.offload import F_NEEDS_CSUM, GSO_TCPV4, Offload, segment

    payload = bytes(range(256)) * 20  # 5120 octets -> 4 segments of at most 1400
    offload = Offload(F_NEEDS_CSUM, GSO_TCPV4, 14 + 40, 1400, 14 + 20, 16)
    fast = make()
    whole, none, errors = fast.outbound_super_frame(
        memoryview(_tso_super_frame(payload)), offload, 0.0)
    assert errors == [] and none == [] and whole is not None
    segments = segment(whole, 1400, l3_offset=0)
    # Reference: the kernel's cut (finished checksums), each translated on its own.
    slow = make()
    expected = []
    for piece in segment(_tso_super_frame(payload), 1400, l3_offset=0):
        out, failed = slow.outbound(memoryview(piece), 0.0)
        assert failed == []
        expected.extend(out)
    assert [bytes(s) for s in segments] == [bytes(e) for e in expected]
    assert len(segments) == 4
    assert fast.counters["xlat_4to6"] == 4 == slow.counters["xlat_4to6"]
    assert fast.counters["xlat_4to6_super_frames"] == 1
    for got in segments:  # valid TCP checksums over the IPv6 pseudo-header
        parsed = IPv6(bytes(got))
        checksum = parsed[TCP].chksum
        del parsed[TCP].chksum
        assert IPv6(bytes(parsed))[TCP].chksum == checksum
    assert IPv6(bytes(segments[-1]))[TCP].flags == "PA"
    assert IPv6(bytes(segments[0]))[TCP].flags == "A"


def test_super_frame_to_an_unmapped_pool_address_takes_the_per_segment_path() -> None:
    from netstack.wire.offload import F_NEEDS_CSUM, GSO_TCPV4, Offload

    packet = bytearray(_tso_super_frame(bytes(3000)))
    packet[16:20] = a4("198.18.0.5")  # in the pool, never allocated: refused with ICMP
    xlat = make()
    offload = Offload(F_NEEDS_CSUM, GSO_TCPV4, 54, 1400, 34, 16)
    whole, segments, errors = xlat.outbound_super_frame(memoryview(packet), offload, 0.0)
    assert whole is None and segments == []
    assert len(errors) == 3  # one admin-prohibited per segment, as without offloads
    assert xlat.counters["xlat_dropped_unmapped_destination"] == 3
