"""The SIP ALG on the translated path (guest_agent/sip_alg_path.py): datagrams and table 230."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from pathlib import Path

from guest_agent.sip_alg_path import SipAlgPath
from netstack.translate.pool import IPv4Pool
from netstack.translate.table import TranslationTable
from netstack.wire.ipv4 import build_ipv4_udp, parse_ipv4_udp

DATA = Path(__file__).parent / "data" / "sip"
HOA, HOME4 = "2001:db8:6::1000", "198.18.0.2"
PROXY6, CN6 = "2001:db8:8::5060", "2001:db8:8::1001"


def a4(text: str) -> bytes:
    return IPv4Address(text).packed


def make(enabled: bool = True) -> tuple[SipAlgPath, TranslationTable, Counter[str]]:
    pool = IPv4Pool(IPv4Network("198.18.0.0/24"),
                    exclude=(IPv4Address("198.18.0.1"), IPv4Address(HOME4)))
    table = TranslationTable(pool, idle_timeout=300)
    table.lookup_or_allocate_v6(IPv6Address(PROXY6).packed, 0.0)  # what DNS gave the phone
    counters: Counter[str] = Counter()
    alg = SipAlgPath(table, home_address=IPv6Address(HOA).packed, home_ipv4=a4(HOME4),
                     enabled=enabled, counters=counters)
    return alg, table, counters


def proxy4(table: TranslationTable) -> bytes:
    return table.get(IPv6Address(PROXY6).packed).ipv4


def test_outbound_invite_is_rewritten_with_valid_checksums() -> None:
    alg, table, counters = make()
    invite = (DATA / "invite_from_host.v4.sip").read_bytes()
    invite = invite.replace(b"198.18.0.3", str(IPv4Address(proxy4(table))).encode())
    packet = build_ipv4_udp(a4(HOME4), proxy4(table), 5062, 5060, invite, ttl=61, ident=7)
    out = alg.outbound(memoryview(packet), 1.0)
    src, dst, sport, dport, payload = parse_ipv4_udp(out)  # checks both checksums
    assert (src, dst, sport, dport) == (a4(HOME4), proxy4(table), 5062, 5060)
    assert out[8] == 61
    assert b"c=IN IP6 2001:db8:6::1000" in bytes(payload)
    assert counters["sip_alg_rewritten_out"] == 1 and counters["sip_alg_sdp_out"] == 1


def test_inbound_answer_allocates_the_peer_media_address() -> None:
    alg, table, counters = make()
    answer = (DATA / "ok_to_host.v6.sip").read_bytes()
    packet = build_ipv4_udp(proxy4(table), a4(HOME4), 5060, 5062, answer)
    assert table.get(IPv6Address("2001:db8:8::1005").packed) is None
    out = alg.inbound(packet, 2.0)
    entry = table.get(IPv6Address("2001:db8:8::1005").packed)
    assert entry is not None  # the RTP source has its table-230 row before its first packet
    media4 = str(IPv4Address(entry.ipv4)).encode()
    payload = bytes(parse_ipv4_udp(out)[4])
    assert b"c=IN IP4 " + media4 in payload
    assert b"Via: SIP/2.0/UDP 198.18.0.2:5062" in payload
    assert table.get(IPv6Address(CN6).packed) is not None  # the Contact's address
    assert counters["sip_alg_rewritten_in"] == 1


def test_malformed_sip_passes_untouched_and_is_counted() -> None:
    alg, table, counters = make()
    packet = build_ipv4_udp(a4(HOME4), proxy4(table), 40000, 5060, b"\x00garbage\xff" * 20)
    assert alg.outbound(packet, 1.0) is packet
    assert counters["sip_alg_malformed_no_header_end"] == 1


def test_other_ports_and_fragments_are_not_looked_at() -> None:
    alg, table, counters = make()
    rtp = build_ipv4_udp(a4(HOME4), proxy4(table), 30000, 40000, b"INVITE 198.18.0.2")
    assert alg.outbound(rtp, 1.0) is rtp
    fragment = bytearray(build_ipv4_udp(a4(HOME4), proxy4(table), 5062, 5060, b"x" * 64))
    fragment[6] |= 0x20  # more fragments
    assert alg.outbound(fragment, 1.0) is fragment
    assert counters["sip_alg_skipped_fragment"] == 1
    assert not [k for k in counters if k.startswith("sip_alg_messages")]


def test_disabled_alg_passes_sip_through() -> None:
    alg, table, counters = make(enabled=False)
    invite = (DATA / "invite_from_host.v4.sip").read_bytes()
    packet = build_ipv4_udp(a4(HOME4), proxy4(table), 5062, 5060, invite)
    assert alg.outbound(packet, 1.0) is packet
    assert counters["sip_alg_off_passed_out"] == 1


def test_wants_sip_ports_only_when_enabled() -> None:
    alg, table, _ = make()
    sip = build_ipv4_udp(a4(HOME4), proxy4(table), 5062, 5060, b"x")
    rtp = build_ipv4_udp(a4(HOME4), proxy4(table), 30000, 40000, b"x")
    assert alg.wants(sip) and not alg.wants(rtp)
    assert not make(enabled=False)[0].wants(sip)
