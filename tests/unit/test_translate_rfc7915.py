"""RFC 7915 conformance: each case is an input packet and the exact expected output bytes.

Grouped by RFC 7915 clause (the clause starts each case id), in the manner of TAYGA's suite.
Inputs and expectations are built with scapy; our translator's bytes must equal scapy's
construction of the expected packet. Only the outer IPv4 Identification and header checksum
are ignored when the expectation leaves the ID at 0 (RFC 7915 5.1 lets the translator choose).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6MLQuery,
    ICMPv6ND_NS,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.packet import Raw

from netstack.translate.rfc6052 import Rfc6052Prefix
from netstack.translate.rfc7915 import (
    Rfc7915Translator,
    TranslatorConfig,
    icmpv4_admin_prohibited,
    translate_4to6,
    translate_6to4,
)
from netstack.wire.checksum import ones_complement_sum, pseudo_header_sum

HOST4 = "198.18.0.2"  # the host's virtual IPv4 (the home address)
PEER4 = "198.18.0.3"  # pool address standing for the IPv6 correspondent
HOA6 = "2001:db8:1::100"
CN6 = "2001:db8:2::200"
ROUTER4 = "192.0.2.1"
FAR4 = "192.0.2.33"
WKP = Rfc6052Prefix()

H4, P4 = IPv4Address(HOST4).packed, IPv4Address(PEER4).packed
HOA, CN = IPv6Address(HOA6).packed, IPv6Address(CN6).packed
DATA = bytes(range(100))


@dataclass
class Case:
    id: str
    direction: str  # "46": translate_4to6(pkt, HOA, CN); "64": translate_6to4(pkt, P4, H4)
    packet: bytes
    expected: list[bytes]
    config: dict = field(default_factory=dict)
    errors: list[bytes] = field(default_factory=list)  # ICMP errors the translator queues
    src6: bytes = HOA
    dst6: bytes = CN


def v4(*layers, src: str = HOST4, dst: str = PEER4, **kw) -> IP:
    kw.setdefault("id", 0)
    pkt = IP(src=src, dst=dst, **kw)
    for layer in layers:
        pkt = pkt / layer
    return pkt


def v6(*layers, src: str = HOA6, dst: str = CN6, **kw) -> IPv6:
    pkt = IPv6(src=src, dst=dst, **kw)
    for layer in layers:
        pkt = pkt / layer
    return pkt


def udp() -> UDP:
    return UDP(sport=40000, dport=53)


def tcp() -> TCP:
    return TCP(sport=40001, dport=80, flags="S", seq=1000, window=8192)


def l4_bytes(packet) -> bytes:
    raw = bytes(packet)
    return raw[(raw[0] & 0x0F) * 4 :] if raw[0] >> 4 == 4 else raw[40:]


# -- the packets in error carried by ICMP errors -------------------------------------------

# 4->6: the host answers an error about a packet the correspondent sent it (PEER4 -> HOST4).
INNER4 = bytes(v4(udp(), Raw(DATA[:20]), src=PEER4, dst=HOST4, ttl=50))
INNER4_AS6 = bytes(v6(udp(), Raw(DATA[:20]), src=CN6, dst=HOA6, hlim=50))
# 6->4: the correspondent answers an error about a packet the MN sent it (HOA6 -> CN6).
INNER6 = bytes(v6(udp(), Raw(DATA[:20]), hlim=50))
INNER6_AS4 = bytes(v4(udp(), Raw(DATA[:20]), ttl=50))


def icmp4_error(icmp_layer, inner: bytes = INNER4, **kw) -> bytes:
    return bytes(v4(icmp_layer, Raw(inner), **kw))


def icmp6_error(icmp_layer, inner: bytes = INNER4_AS6, **kw) -> bytes:
    return bytes(v6(icmp_layer, Raw(inner), hlim=63, **kw))


def icmp6_in(icmp_layer, inner: bytes = INNER6, **kw) -> bytes:
    return bytes(v6(icmp_layer, Raw(inner), src=CN6, dst=HOA6, **kw))


def icmp4_out(icmp_layer, inner: bytes = INNER6_AS4, **kw) -> bytes:
    return bytes(v4(icmp_layer, Raw(inner), src=PEER4, dst=HOST4, ttl=63, **kw))


def _cases_4to6() -> list[Case]:
    c: list[Case] = []
    add = c.append
    # ---- 4.1 header translation ----
    add(Case("4.1-udp-basic", "46", bytes(v4(udp(), Raw(DATA))), [bytes(v6(udp(), Raw(DATA), hlim=63))]))
    add(Case("4.1-tcp-basic", "46", bytes(v4(tcp(), Raw(DATA))), [bytes(v6(tcp(), Raw(DATA), hlim=63))]))
    add(Case("4.1-tos-copied-to-traffic-class", "46", bytes(v4(udp(), Raw(DATA), tos=0xB8)),
             [bytes(v6(udp(), Raw(DATA), hlim=63, tc=0xB8))]))
    add(Case("4.1-tos-zeroized-by-config", "46", bytes(v4(udp(), Raw(DATA), tos=0xB8)),
             [bytes(v6(udp(), Raw(DATA), hlim=63))], {"zeroize_traffic_class": True}))
    add(Case("4.1-ttl-decremented", "46", bytes(v4(udp(), Raw(DATA), ttl=2)),
             [bytes(v6(udp(), Raw(DATA), hlim=1))]))
    add(Case("4.1-ttl-kept-when-decrement-off", "46", bytes(v4(udp(), Raw(DATA), ttl=1)),
             [bytes(v6(udp(), Raw(DATA), hlim=1))], {"decrement_ttl": False}))
    ttl1 = bytes(v4(udp(), Raw(DATA), ttl=1))
    add(Case("4.1-ttl-expired-time-exceeded", "46", ttl1, [],
             errors=[bytes(v4(ICMP(type=11, code=0), Raw(ttl1), src=PEER4, dst=HOST4))]))
    add(Case("4.1-df-set-small-no-fragment-header", "46", bytes(v4(udp(), Raw(DATA), flags="DF")),
             [bytes(v6(udp(), Raw(DATA), hlim=63))]))
    add(Case("4.1-flow-label-zero-payload-length", "46", bytes(v4(udp(), Raw(DATA * 3))),
             [bytes(v6(udp(), Raw(DATA * 3), hlim=63, fl=0, plen=308))]))
    add(Case("4.1-ipv4-options-not-translated", "46",
             bytes(v4(udp(), Raw(DATA), options=[IPOption_NOP(), IPOption_RR(routers=["0.0.0.0"])])),
             [bytes(v6(udp(), Raw(DATA), hlim=63))]))
    # Loose source route whose pointer (12) is past its length (11): expired, so ignored.
    lsrr_done = b"\x83\x0b\x0c" + IPv4Address("198.51.100.2").packed + IPv4Address("198.51.100.1").packed + b"\x00"
    add(Case("4.1-expired-source-route-ignored", "46",
             bytes(v4(udp(), Raw(DATA), options=[Raw(lsrr_done)])), [bytes(v6(udp(), Raw(DATA), hlim=63))]))
    lsrr_live = b"\x83\x0b\x04" + IPv4Address("198.51.100.2").packed + IPv4Address("198.51.100.1").packed + b"\x00"
    live = bytes(v4(udp(), Raw(DATA), options=[Raw(lsrr_live)]))
    add(Case("4.1-unexpired-source-route-source-route-failed", "46", live, [],
             errors=[bytes(v4(ICMP(type=3, code=5), Raw(live), src=PEER4, dst=HOST4))]))
    add(Case("4.1-unknown-protocol-copied", "46", bytes(v4(Raw(DATA), proto=253)),
             [bytes(v6(Raw(DATA), hlim=63, nh=253))]))
    add(Case("4.1-link-padding-trimmed", "46", bytes(v4(udp(), Raw(DATA))) + b"\x00" * 6,
             [bytes(v6(udp(), Raw(DATA), hlim=63))]))
    # Fragments: the Fragment Header carries offset, M and the 16-bit ID (high bits zero).
    full4 = l4_bytes(v4(udp(), Raw(DATA * 10)))
    full6 = l4_bytes(v6(udp(), Raw(DATA * 10)))
    add(Case("4.1-first-fragment-checksum-updated", "46",
             bytes(v4(Raw(full4[:504]), proto=17, id=0x1234, flags="MF")),
             [bytes(v6(IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=0x1234), Raw(full6[:504]), hlim=63))]))
    add(Case("4.1-middle-fragment-data-unchanged", "46",
             bytes(v4(Raw(full4[504:760]), proto=17, id=0x1234, flags="MF", frag=63)),
             [bytes(v6(IPv6ExtHdrFragment(nh=17, offset=63, m=1, id=0x1234), Raw(full4[504:760]), hlim=63))]))
    add(Case("4.1-last-fragment", "46",
             bytes(v4(Raw(full4[760:]), proto=17, id=0xBEEF, frag=95)),
             [bytes(v6(IPv6ExtHdrFragment(nh=17, offset=95, m=0, id=0xBEEF), Raw(full4[760:]), hlim=63))]))
    add(Case("4.1-fragment-with-df-keeps-fragment-header", "46",
             bytes(v4(Raw(full4[:504]), proto=17, id=7, flags="MF+DF")),
             [bytes(v6(IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=7), Raw(full6[:504]), hlim=63))]))
    big_payload = (DATA * 14)[:1392]
    big4 = bytes(v4(udp(), Raw(big_payload), id=0x4242))
    big6_l4 = l4_bytes(v6(udp(), Raw(big_payload)))
    add(Case("4.1-df-clear-too-big-fragmented-to-lowest-ipv6-mtu", "46", big4, [
        bytes(v6(IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=0x4242), Raw(big6_l4[:1232]), hlim=63)),
        bytes(v6(IPv6ExtHdrFragment(nh=17, offset=154, m=0, id=0x4242), Raw(big6_l4[1232:]), hlim=63)),
    ]))
    add(Case("4.1-lowest-ipv6-mtu-configurable", "46", big4,
             [bytes(v6(udp(), Raw(big_payload), hlim=63))], {"lowest_ipv6_mtu": 1500}))
    add(Case("4.1-fragment-refragmented-keeps-offset-and-more", "46",
             bytes(v4(Raw((full4[:1000] * 2)[:1400]), proto=17, id=9, flags="MF", frag=10)), [
                 bytes(v6(IPv6ExtHdrFragment(nh=17, offset=10, m=1, id=9), Raw((full4[:1000] * 2)[:1232]), hlim=63)),
                 bytes(v6(IPv6ExtHdrFragment(nh=17, offset=164, m=1, id=9), Raw((full4[:1000] * 2)[1232:1400]), hlim=63)),
             ]))
    fits = bytes(v4(udp(), Raw(bytes(1452)), flags="DF"))  # 1480 -> 1500
    add(Case("4.1-df-set-fits-ipv6-mtu", "46", fits, [bytes(v6(udp(), Raw(bytes(1452)), hlim=63))]))
    too_big = bytes(v4(udp(), Raw(bytes(1453)), flags="DF"))  # 1481 -> 1501
    add(Case("4.1-df-set-too-big-fragmentation-needed", "46", too_big, [],
             errors=[bytes(v4(ICMP(type=3, code=4, nexthopmtu=1480), Raw(too_big[:548]), src=PEER4, dst=HOST4))]))
    bad_header = bytearray(bytes(v4(udp(), Raw(DATA))))
    bad_header[10] ^= 0xFF
    add(Case("4.1-bad-header-checksum-dropped", "46", bytes(bad_header), []))

    # ---- 4.2 ICMPv4 -> ICMPv6 ----
    add(Case("4.2-echo-request", "46", bytes(v4(ICMP(type=8, id=7, seq=1), Raw(DATA))),
             [bytes(v6(ICMPv6EchoRequest(id=7, seq=1, data=DATA), hlim=63))]))
    add(Case("4.2-echo-reply", "46", bytes(v4(ICMP(type=0, id=7, seq=2), Raw(DATA))),
             [bytes(v6(ICMPv6EchoReply(id=7, seq=2, data=DATA), hlim=63))]))
    for code4, code6 in ((0, 0), (1, 0), (3, 4), (5, 0), (6, 0), (7, 0), (8, 0), (9, 1), (10, 1),
                         (11, 0), (12, 0), (13, 1), (15, 1)):
        add(Case(f"4.2-dest-unreach-code{code4}-to-code{code6}", "46",
                 icmp4_error(ICMP(type=3, code=code4)), [icmp6_error(ICMPv6DestUnreach(code=code6))]))
    add(Case("4.2-protocol-unreachable-to-parameter-problem-pointer-6", "46",
             icmp4_error(ICMP(type=3, code=2)), [icmp6_error(ICMPv6ParamProblem(code=1, ptr=6))]))
    add(Case("4.2-host-precedence-violation-dropped", "46", icmp4_error(ICMP(type=3, code=14)), []))
    add(Case("4.2-dest-unreach-unknown-code-dropped", "46", icmp4_error(ICMP(type=3, code=16)), []))
    add(Case("4.2-fragmentation-needed-mtu-plus-20", "46",
             icmp4_error(ICMP(type=3, code=4, nexthopmtu=1400)), [icmp6_error(ICMPv6PacketTooBig(mtu=1420))]))
    add(Case("4.2-fragmentation-needed-never-below-1280", "46",
             icmp4_error(ICMP(type=3, code=4, nexthopmtu=576)), [icmp6_error(ICMPv6PacketTooBig(mtu=1280))]))
    add(Case("4.2-fragmentation-needed-capped-by-ipv6-mtu", "46",
             icmp4_error(ICMP(type=3, code=4, nexthopmtu=1500)), [icmp6_error(ICMPv6PacketTooBig(mtu=1500))]))
    # MTU 0 (pre-RFC 1191 router): largest plateau below the inner Total Length (4000 -> 2002).
    inner_long4 = bytearray(INNER4)
    inner_long4[2:4] = struct.pack("!H", 4000)
    inner_long4[10:12] = b"\x00\x00"
    inner_long4[10:12] = struct.pack("!H", ~ones_complement_sum(bytes(inner_long4[:20])) & 0xFFFF)
    inner_long6 = bytearray(INNER4_AS6)
    inner_long6[4:6] = struct.pack("!H", 3980)
    add(Case("4.2-fragmentation-needed-mtu-zero-plateau", "46",
             icmp4_error(ICMP(type=3, code=4, nexthopmtu=0), bytes(inner_long4)),
             [icmp6_error(ICMPv6PacketTooBig(mtu=2022), bytes(inner_long6))],
             {"ipv6_mtu": 9000, "ipv4_mtu": 9000}))
    add(Case("4.2-time-exceeded-in-transit", "46", icmp4_error(ICMP(type=11, code=0)),
             [icmp6_error(ICMPv6TimeExceeded(code=0))]))
    add(Case("4.2-time-exceeded-reassembly", "46", icmp4_error(ICMP(type=11, code=1)),
             [icmp6_error(ICMPv6TimeExceeded(code=1))]))
    for ptr4, ptr6 in ((0, 0), (1, 1), (2, 4), (8, 7), (9, 6), (12, 8), (16, 24)):
        add(Case(f"4.2-parameter-problem-pointer-{ptr4}-to-{ptr6}", "46", icmp4_error(ICMP(type=12, ptr=ptr4)),
                 [icmp6_error(ICMPv6ParamProblem(code=0, ptr=ptr6))]))
    add(Case("4.2-parameter-problem-bad-length-code2", "46", icmp4_error(ICMP(type=12, code=2, ptr=3)),
             [icmp6_error(ICMPv6ParamProblem(code=0, ptr=4))]))
    add(Case("4.2-parameter-problem-pointer-na-dropped", "46", icmp4_error(ICMP(type=12, ptr=4)), []))
    add(Case("4.2-parameter-problem-missing-option-dropped", "46", icmp4_error(ICMP(type=12, code=1)), []))
    add(Case("4.2-source-quench-dropped", "46", icmp4_error(ICMP(type=4)), []))
    add(Case("4.2-redirect-dropped", "46", icmp4_error(ICMP(type=5, gw="192.0.2.1")), []))
    add(Case("4.2-timestamp-dropped", "46", bytes(v4(ICMP(type=13))), []))
    add(Case("4.2-information-request-dropped", "46", bytes(v4(ICMP(type=15))), []))
    add(Case("4.2-router-advertisement-dropped", "46", bytes(v4(ICMP(type=9), Raw(bytes(8)))), []))
    bad_icmp = bytearray(bytes(v4(ICMP(type=8, id=1, seq=1), Raw(DATA))))
    bad_icmp[22] ^= 0x01
    add(Case("4.2-bad-icmp-checksum-dropped", "46", bytes(bad_icmp), []))

    # ---- 1.2 / 4.3 ICMP errors ----
    add(Case("1.2-fragmented-icmp-dropped", "46",
             bytes(v4(Raw(bytes(ICMP(type=8) / Raw(DATA))[:48]), proto=1, flags="MF")), []))
    add(Case("4.3-inner-tcp-ttl-kept-checksum-updated", "46",
             icmp4_error(ICMP(type=3, code=3), bytes(v4(tcp(), src=PEER4, dst=HOST4, ttl=1))),
             [icmp6_error(ICMPv6DestUnreach(code=4), bytes(v6(tcp(), src=CN6, dst=HOA6, hlim=1)))]))
    big_inner4 = bytes(v4(udp(), Raw(bytes(1452)), src=PEER4, dst=HOST4))
    big_inner6 = bytes(v6(udp(), Raw(bytes(1452)), src=CN6, dst=HOA6))
    add(Case("4.3-packet-in-error-truncated-to-1280", "46", icmp4_error(ICMP(type=3, code=3), big_inner4),
             [icmp6_error(ICMPv6DestUnreach(code=4), big_inner6[:1232])]))
    # A truncated quote: the inner lengths stay the original ones.
    add(Case("4.3-short-quote-keeps-inner-length", "46", icmp4_error(ICMP(type=11), big_inner4[:548]),
             [icmp6_error(ICMPv6TimeExceeded(), big_inner6[:568])]))
    echo_inner4 = bytes(v4(ICMP(type=8, id=3, seq=4), Raw(DATA), src=PEER4, dst=HOST4))
    echo_inner6 = bytes(v6(ICMPv6EchoRequest(id=3, seq=4, data=DATA), src=CN6, dst=HOA6))
    add(Case("4.3-inner-echo-request-retyped", "46", icmp4_error(ICMP(type=3, code=1), echo_inner4),
             [icmp6_error(ICMPv6DestUnreach(code=0), echo_inner6)]))
    add(Case("4.3-inner-fragment-gets-fragment-header", "46",
             icmp4_error(ICMP(type=11, code=1), bytes(v4(Raw(full4[504:560]), proto=17, id=0x55, flags="MF",
                                                         frag=63, src=PEER4, dst=HOST4))),
             [icmp6_error(ICMPv6TimeExceeded(code=1),
                          bytes(v6(IPv6ExtHdrFragment(nh=17, offset=63, m=1, id=0x55), Raw(full4[504:560]),
                                   src=CN6, dst=HOA6)))]))
    add(Case("4.3-icmp-error-in-error-dropped", "46",
             icmp4_error(ICMP(type=3, code=3), bytes(v4(ICMP(type=3, code=3), Raw(INNER4), src=PEER4, dst=HOST4))),
             []))
    # A router (not the host) reports on a host packet to a far IPv4 site: WKP mapping.
    router_src6 = WKP.embed(IPv4Address(ROUTER4).packed)
    inner_far4 = bytes(v4(udp(), Raw(DATA[:8]), dst=FAR4))
    inner_far6 = bytes(v6(udp(), Raw(DATA[:8]), dst=str(IPv6Address(WKP.embed(IPv4Address(FAR4).packed)))))
    add(Case("4.3-inner-address-mapped-by-rfc6052", "46",
             bytes(v4(ICMP(type=11), Raw(inner_far4), src=ROUTER4, dst=HOST4)),
             [bytes(v6(ICMPv6TimeExceeded(), Raw(inner_far6), src=str(IPv6Address(router_src6)), dst=HOA6, hlim=63))],
             src6=router_src6, dst6=HOA))

    # ---- 4.5 transport layer ----
    zero4 = bytearray(bytes(v4(udp(), Raw(DATA))))
    zero4[26:28] = b"\x00\x00"
    add(Case("4.5-udp-zero-checksum-computed", "46", bytes(zero4), [bytes(v6(udp(), Raw(DATA), hlim=63))]))
    add(Case("4.5-udp-zero-checksum-dropped-by-config", "46", bytes(zero4), [], {"amend_udp_checksum_zero": False}))
    zero_frag = bytearray(bytes(v4(Raw(full4[:504]), proto=17, flags="MF")))
    zero_frag[26:28] = b"\x00\x00"
    add(Case("4.5-udp-zero-checksum-first-fragment-dropped", "46", bytes(zero_frag), []))
    return c


def _cases_6to4() -> list[Case]:
    c: list[Case] = []
    add = c.append

    def out4(*layers, **kw) -> bytes:
        return bytes(v4(*layers, src=PEER4, dst=HOST4, ttl=kw.pop("ttl", 63), **kw))

    def in6(*layers, **kw) -> bytes:
        return bytes(v6(*layers, src=CN6, dst=HOA6, **kw))

    # ---- 5.1 header translation ----
    add(Case("5.1-udp-basic", "64", in6(udp(), Raw(DATA)), [out4(udp(), Raw(DATA))]))
    add(Case("5.1-tcp-basic", "64", in6(tcp(), Raw(DATA)), [out4(tcp(), Raw(DATA))]))
    add(Case("5.1-traffic-class-copied-to-tos", "64", in6(udp(), Raw(DATA), tc=0x2E, fl=0x12345),
             [out4(udp(), Raw(DATA), tos=0x2E)]))
    add(Case("5.1-tos-overridden-by-config", "64", in6(udp(), Raw(DATA), tc=0x2E),
             [out4(udp(), Raw(DATA), tos=0x10)], {"override_tos": 0x10}))
    add(Case("5.1-hop-limit-decremented", "64", in6(udp(), Raw(DATA), hlim=2), [out4(udp(), Raw(DATA), ttl=1)]))
    expired = in6(udp(), Raw(DATA), hlim=1)
    add(Case("5.1-hop-limit-expired-time-exceeded", "64", expired, [],
             errors=[bytes(v6(ICMPv6TimeExceeded(code=0), Raw(expired), src=HOA6, dst=CN6))]))
    add(Case("5.1-df-clear-at-1260", "64", in6(udp(), Raw(bytes(1232))), [out4(udp(), Raw(bytes(1232)))]))
    add(Case("5.1-df-set-above-1260", "64", in6(udp(), Raw(bytes(1233))),
             [out4(udp(), Raw(bytes(1233)), flags="DF")]))
    add(Case("5.1-hop-by-hop-skipped", "64", in6(IPv6ExtHdrHopByHop(), udp(), Raw(DATA)),
             [out4(udp(), Raw(DATA))]))
    add(Case("5.1-destination-options-skipped", "64", in6(IPv6ExtHdrDestOpt(), udp(), Raw(DATA)),
             [out4(udp(), Raw(DATA))]))
    add(Case("5.1-routing-segments-left-0-skipped", "64",
             in6(IPv6ExtHdrRouting(addresses=["2001:db8::1"], segleft=0), udp(), Raw(DATA)),
             [out4(udp(), Raw(DATA))]))
    routed = in6(IPv6ExtHdrRouting(addresses=["2001:db8::1"], segleft=1), udp(), Raw(DATA))
    add(Case("5.1-routing-segments-left-parameter-problem", "64", routed, [],
             errors=[bytes(v6(ICMPv6ParamProblem(code=0, ptr=43), Raw(routed), src=HOA6, dst=CN6))]))
    add(Case("5.1-unknown-protocol-copied", "64", in6(Raw(DATA), nh=253), [out4(Raw(DATA), proto=253)]))
    add(Case("5.5-udp-zero-checksum-kept", "64", in6(UDP(sport=1, dport=2, chksum=0), Raw(DATA)),
             [out4(UDP(sport=1, dport=2, chksum=0), Raw(DATA))]))
    too_big = in6(udp(), Raw(bytes(1473)))  # IPv4 total 1501
    add(Case("5.1-too-big-packet-too-big", "64", too_big, [],
             errors=[bytes(v6(ICMPv6PacketTooBig(mtu=1520), Raw(too_big[:1232]), src=HOA6, dst=CN6))]))
    fits = in6(udp(), Raw(bytes(1472)))
    add(Case("5.1-ipv4-mtu-fits", "64", fits, [out4(udp(), Raw(bytes(1472)), flags="DF")]))
    # ---- 5.1.1 fragments ----
    full6 = l4_bytes(v6(udp(), Raw(DATA * 10), src=CN6, dst=HOA6))
    full4 = l4_bytes(v4(udp(), Raw(DATA * 10), src=PEER4, dst=HOST4))
    add(Case("5.1.1-first-fragment", "64",
             in6(IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=0xABCD1234), Raw(full6[:504])),
             [out4(Raw(full4[:504]), proto=17, id=0x1234, flags="MF")]))
    add(Case("5.1.1-middle-fragment", "64",
             in6(IPv6ExtHdrFragment(nh=17, offset=63, m=1, id=0x10002), Raw(full6[504:760])),
             [out4(Raw(full6[504:760]), proto=17, id=0x0002, flags="MF", frag=63)]))
    add(Case("5.1.1-last-fragment", "64",
             in6(IPv6ExtHdrFragment(nh=17, offset=95, m=0, id=77), Raw(full6[760:])),
             [out4(Raw(full6[760:]), proto=17, id=77, frag=95)]))
    add(Case("5.1.1-atomic-fragment", "64",
             in6(IPv6ExtHdrFragment(nh=17, offset=0, m=0, id=99), udp(), Raw(DATA)),
             [out4(udp(), Raw(DATA), id=99)]))
    add(Case("5.1.1-extension-after-fragment-dropped", "64",
             in6(IPv6ExtHdrFragment(nh=60, offset=0, m=1, id=5), IPv6ExtHdrDestOpt(), udp(), Raw(DATA)), []))
    add(Case("5.1.1-extension-before-fragment-skipped", "64",
             in6(IPv6ExtHdrDestOpt(), IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=6), Raw(full6[:504])),
             [out4(Raw(full4[:504]), proto=17, id=6, flags="MF")]))

    # ---- 5.2 ICMPv6 -> ICMPv4 ----
    add(Case("5.2-echo-request", "64", in6(ICMPv6EchoRequest(id=9, seq=1, data=DATA)),
             [out4(ICMP(type=8, id=9, seq=1), Raw(DATA))]))
    add(Case("5.2-echo-reply", "64", in6(ICMPv6EchoReply(id=9, seq=2, data=DATA)),
             [out4(ICMP(type=0, id=9, seq=2), Raw(DATA))]))
    for code6, code4 in ((0, 1), (1, 10), (2, 1), (3, 1), (4, 3)):
        add(Case(f"5.2-dest-unreach-code{code6}-to-code{code4}", "64", icmp6_in(ICMPv6DestUnreach(code=code6)),
                 [icmp4_out(ICMP(type=3, code=code4))]))
    add(Case("5.2-dest-unreach-code5-dropped", "64", icmp6_in(ICMPv6DestUnreach(code=5)), []))
    add(Case("5.2-packet-too-big-mtu-minus-20", "64", icmp6_in(ICMPv6PacketTooBig(mtu=1400)),
             [icmp4_out(ICMP(type=3, code=4, nexthopmtu=1380))]))
    add(Case("5.2-packet-too-big-capped-by-ipv4-mtu", "64", icmp6_in(ICMPv6PacketTooBig(mtu=9000)),
             [icmp4_out(ICMP(type=3, code=4, nexthopmtu=1480))], {"ipv4_mtu": 1480, "ipv6_mtu": 9000}))
    frag_inner6 = bytes(v6(IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=3), Raw(l4_bytes(v6(udp(), Raw(DATA)))[:64]), hlim=50))
    frag_inner4 = bytes(v4(Raw(l4_bytes(v4(udp(), Raw(DATA)))[:64]), proto=17, id=3, flags="MF", ttl=50))
    add(Case("5.2-packet-too-big-inner-fragment-minus-28", "64",
             icmp6_in(ICMPv6PacketTooBig(mtu=1400), frag_inner6),
             [icmp4_out(ICMP(type=3, code=4, nexthopmtu=1372), frag_inner4)]))
    add(Case("5.2-time-exceeded", "64", icmp6_in(ICMPv6TimeExceeded(code=0)), [icmp4_out(ICMP(type=11, code=0))]))
    add(Case("5.2-time-exceeded-reassembly", "64", icmp6_in(ICMPv6TimeExceeded(code=1)),
             [icmp4_out(ICMP(type=11, code=1))]))
    for ptr6, ptr4 in ((0, 0), (1, 1), (4, 2), (5, 2), (6, 9), (7, 8), (8, 12), (23, 12), (24, 16), (39, 16)):
        add(Case(f"5.2-parameter-problem-pointer-{ptr6}-to-{ptr4}", "64",
                 icmp6_in(ICMPv6ParamProblem(code=0, ptr=ptr6)), [icmp4_out(ICMP(type=12, ptr=ptr4))]))
    add(Case("5.2-parameter-problem-pointer-na-dropped", "64", icmp6_in(ICMPv6ParamProblem(code=0, ptr=2)), []))
    add(Case("5.2-parameter-problem-pointer-beyond-header-dropped", "64",
             icmp6_in(ICMPv6ParamProblem(code=0, ptr=40)), []))
    add(Case("5.2-unrecognized-next-header-to-protocol-unreachable", "64",
             icmp6_in(ICMPv6ParamProblem(code=1, ptr=6)), [icmp4_out(ICMP(type=3, code=2))]))
    add(Case("5.2-unrecognized-option-dropped", "64", icmp6_in(ICMPv6ParamProblem(code=2, ptr=42)), []))
    add(Case("5.2-mld-query-dropped", "64", in6(ICMPv6MLQuery(), hlim=64), []))
    add(Case("5.2-neighbor-solicitation-dropped", "64", in6(ICMPv6ND_NS(tgt=HOA6)), []))
    bad = bytearray(in6(ICMPv6EchoRequest(id=1, seq=1, data=DATA)))
    bad[42] ^= 0x01
    add(Case("5.2-bad-icmpv6-checksum-dropped", "64", bytes(bad), []))
    add(Case("1.2-fragmented-icmpv6-dropped", "64",
             in6(IPv6ExtHdrFragment(nh=58, offset=0, m=1, id=1), Raw(bytes(ICMPv6EchoRequest(data=DATA))[:48])), []))

    # ---- 5.3 packet in error ----
    big_inner6 = bytes(v6(udp(), Raw(bytes(600))))
    big_inner4 = bytes(v4(udp(), Raw(bytes(600))))
    add(Case("5.3-packet-in-error-truncated-to-576", "64", icmp6_in(ICMPv6DestUnreach(code=4), big_inner6),
             [icmp4_out(ICMP(type=3, code=3), big_inner4[:548])]))
    echo6 = bytes(v6(ICMPv6EchoRequest(id=5, seq=6, data=DATA), hlim=3))
    echo4 = bytes(v4(ICMP(type=8, id=5, seq=6), Raw(DATA), ttl=3))
    add(Case("5.3-inner-echo-retyped-hop-limit-kept", "64", icmp6_in(ICMPv6TimeExceeded(), echo6),
             [icmp4_out(ICMP(type=11), echo4)]))
    add(Case("5.3-inner-tcp-checksum-updated", "64", icmp6_in(ICMPv6DestUnreach(code=1), bytes(v6(tcp()))),
             [icmp4_out(ICMP(type=3, code=10), bytes(v4(tcp())))]))
    add(Case("5.3-icmp-error-in-error-dropped", "64",
             icmp6_in(ICMPv6DestUnreach(code=4), bytes(v6(ICMPv6DestUnreach(), Raw(INNER6)))), []))
    add(Case("5.3-inner-unmappable-address-dropped", "64",
             icmp6_in(ICMPv6DestUnreach(code=4), bytes(v6(udp(), dst="2001:db8:9::9"))), []))
    return c


CASES = _cases_4to6() + _cases_6to4()


def _normalise(actual: bytes, expected: bytes) -> bytes:
    """Zero the outer IPv4 ID and header checksum when the expectation leaves the ID free."""
    if actual[:1] and actual[0] >> 4 == 4 and expected[4:6] == b"\x00\x00":
        scrubbed = bytearray(actual)
        scrubbed[4:6] = b"\x00\x00"
        scrubbed[10:12] = b"\x00\x00"
        return bytes(scrubbed)
    return actual


def _scrub_expected(expected: bytes) -> bytes:
    if expected[0] >> 4 == 4 and expected[4:6] == b"\x00\x00":
        scrubbed = bytearray(expected)
        scrubbed[10:12] = b"\x00\x00"
        return bytes(scrubbed)
    return expected


def test_suite_is_large_enough() -> None:
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_rfc7915(case: Case) -> None:
    translator = Rfc7915Translator(TranslatorConfig(**case.config))
    if case.direction == "46":
        out = translator.translate_4to6(case.packet, case.src6, case.dst6)
    else:
        out = translator.translate_6to4(case.packet, P4, H4)
    assert [_normalise(a, e) for a, e in zip(out, case.expected, strict=False)] == [
        _scrub_expected(e) for e in case.expected
    ]
    assert len(out) == len(case.expected)
    for packet in out:
        if packet[0] >> 4 == 4:  # the header checksum we leave free must still be right
            assert ones_complement_sum(packet[:20]) == 0xFFFF
    assert translator.icmp_errors_to_send() == case.errors
    if not case.expected:
        assert sum(translator.counters.values()) >= 1  # every drop is counted


def test_ipv4_identification_unique_for_small_packets() -> None:
    translator = Rfc7915Translator()
    packet = bytes(v6(udp(), Raw(DATA), src=CN6, dst=HOA6))
    ids = {translator.translate_6to4(packet, P4, H4)[0][4:6] for _ in range(5)}
    assert len(ids) == 5


def test_bad_udp_checksum_stays_equally_bad_4to6() -> None:
    good = bytearray(bytes(v4(udp(), Raw(DATA))))
    bad = bytearray(good)
    bad[26:28] = struct.pack("!H", (struct.unpack("!H", good[26:28])[0] + 0x0101) & 0xFFFF)
    [out] = translate_4to6(bytes(bad), HOA, CN)
    residue_in = ones_complement_sum(bytes(bad[20:]), _pseudo4(H4, P4, len(bad) - 20, 17))
    residue_out = ones_complement_sum(out[40:], pseudo_header_sum(HOA, CN, len(out) - 40, 17))
    assert residue_in != 0xFFFF
    assert residue_out == residue_in


def test_bad_tcp_checksum_stays_equally_bad_6to4() -> None:
    good = bytearray(bytes(v6(tcp(), Raw(DATA), src=CN6, dst=HOA6)))
    good[40 + 16] ^= 0x5A
    [out] = translate_6to4(bytes(good), P4, H4)
    residue_in = ones_complement_sum(bytes(good[40:]), pseudo_header_sum(CN, HOA, len(good) - 40, 6))
    residue_out = ones_complement_sum(out[20:], _pseudo4(P4, H4, len(out) - 20, 6))
    assert residue_in != 0xFFFF
    assert residue_out == residue_in


def _pseudo4(src: bytes, dst: bytes, length: int, proto: int) -> int:
    return ones_complement_sum(src + dst + struct.pack("!BBH", 0, proto, length))


def test_icmpv4_admin_prohibited() -> None:
    original = bytes(v4(udp(), Raw(DATA)))
    error = icmpv4_admin_prohibited(original, P4)
    expected = bytes(v4(ICMP(type=3, code=13), Raw(original), src=PEER4, dst=HOST4))
    assert error == expected


def test_icmpv4_admin_prohibited_quote_capped_at_576() -> None:
    original = bytes(v4(udp(), Raw(bytes(1400))))
    error = icmpv4_admin_prohibited(original, P4)
    assert error is not None and len(error) == 576
    assert error[28:] == original[:548]


def test_no_icmp_error_about_icmp_error_or_later_fragment() -> None:
    assert icmpv4_admin_prohibited(icmp4_error(ICMP(type=3, code=3)), P4) is None
    assert icmpv4_admin_prohibited(bytes(v4(Raw(DATA), proto=17, frag=10)), P4) is None
    # an echo request is not an error: it gets one
    assert icmpv4_admin_prohibited(bytes(v4(ICMP(type=8), Raw(DATA))), P4) is not None


def test_icmp_errors_can_be_disabled() -> None:
    translator = Rfc7915Translator(TranslatorConfig(generate_icmp_errors=False))
    assert translator.translate_4to6(bytes(v4(udp(), ttl=1)), HOA, CN) == []
    assert translator.icmp_errors_to_send() == []
    assert translator.counters["ttl_expired"] == 1


def test_icmp_error_source_configurable() -> None:
    source = IPv4Address("198.18.0.1").packed
    translator = Rfc7915Translator(TranslatorConfig(icmpv4_error_source=source))
    translator.translate_4to6(bytes(v4(udp(), ttl=1)), HOA, CN)
    [error] = translator.icmp_errors_to_send()
    assert error[12:16] == source and error[16:20] == H4


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x45", b"\x45" + bytes(18), b"\x46" + bytes(30), b"\x60" + bytes(39), bytes(60),
     b"\x45\x00\xff\xff" + bytes(16), b"\x60\x00\x00\x00\xff\xff" + bytes(34)],
)
def test_garbage_never_raises(garbage: bytes) -> None:
    translator = Rfc7915Translator()
    assert translator.translate_4to6(garbage, HOA, CN) == []
    assert translator.translate_6to4(garbage, P4, H4) == []


def test_truncated_l4_and_extension_headers_dropped_not_raised() -> None:
    translator = Rfc7915Translator()
    # UDP header cut short, total length consistent
    assert translator.translate_4to6(bytes(v4(Raw(b"\x01\x02\x03"), proto=17)), HOA, CN) == []
    # hop-by-hop header announced but missing
    assert translator.translate_6to4(bytes(v6(Raw(b"\x11\x00"), nh=0, src=CN6, dst=HOA6)), P4, H4) == []
    assert translator.counters["truncated"] == 2


def test_memoryview_input_accepted() -> None:
    packet = bytes(v4(udp(), Raw(DATA)))
    assert translate_4to6(memoryview(packet), HOA, CN) == [bytes(v6(udp(), Raw(DATA), hlim=63))]


def test_round_trip_udp() -> None:
    packet = bytes(v4(udp(), Raw(DATA), ttl=64))
    [six] = Rfc7915Translator(TranslatorConfig(decrement_ttl=False)).translate_4to6(packet, HOA, CN)
    back = Rfc7915Translator(TranslatorConfig(decrement_ttl=False)).translate_6to4(six, H4, P4)
    assert _normalise(back[0], packet) == _scrub_expected(packet)


# -- robustness: mutated packets never raise -------------------------------------------------

_SEEDS = [case.packet for case in CASES if case.packet]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(_SEEDS),
    flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 2000),
)
def test_mutated_packets_never_raise(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for index, value in flips:
        if data:
            data[index % len(data)] = value
    data = data[: max(cut, len(data) // 2)]
    translator = Rfc7915Translator()
    for packet in translator.translate_4to6(bytes(data), HOA, CN) + translator.translate_6to4(bytes(data), P4, H4):
        assert packet[0] >> 4 in (4, 6)
    translator.icmp_errors_to_send()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    translator = Rfc7915Translator()
    translator.translate_4to6(data, HOA, CN)
    translator.translate_6to4(data, P4, H4)
    icmpv4_admin_prohibited(data, P4)


@pytest.mark.parametrize("bad", [{"lowest_ipv6_mtu": 1279}, {"ipv6_mtu": 576}, {"ipv4_mtu": 67}])
def test_config_rejects_impossible_mtus(bad: dict) -> None:
    with pytest.raises(ValueError):
        TranslatorConfig(**bad)
