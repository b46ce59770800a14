"""Differential tests of the kernel fast path: every packet through the loaded tc program
(BPF_PROG_TEST_RUN) and through the Python path must give the same bytes, or the program
must pass it on untouched (TC_ACT_OK) to the Python path.

Inputs: every case of the RFC 7915 conformance suite (tests/unit/test_translate_rfc7915.py) in
the direction the guest meets it (4->6 from the host link, 6->4 out of the tunnel), and the
tunnel cases (host IPv6 passthrough, HA intercept and reverse tunnel) with their negatives.
Needs root (BPF) but no namespaces; marked netns so the root tier runs it.
"""

from __future__ import annotations

import os
from collections import Counter
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
)
from scapy.packet import Raw

from guest_agent.dataplane import GuestDataPlane
from guest_agent.ipv4_path import Ipv4Translation
from netstack.translate.pool import IPv4Pool
from netstack.translate.rfc7915 import Rfc7915Translator, TranslatorConfig
from netstack.translate.table import TranslationTable
from netstack.wire.ip6ip6 import encapsulate
from network.home_agent.forwarding import HomeAgentDataPlane
from tests.unit.test_translate_rfc7915 import CASES, CN, CN6, H4, HOA, HOA6, HOST4, P4, PEER4

pytestmark = pytest.mark.netns

if os.geteuid() != 0:
    pytest.skip("BPF needs root", allow_module_level=True)

from netstack.fastpath.guest import SIDE_HOST_IPV4, GuestFastPath, GuestState  # noqa: E402
from netstack.fastpath.home_agent import HomeAgentFastPath, HomeAgentState  # noqa: E402
from netstack.fastpath.libbpf import TC_ACT_OK, TC_ACT_REDIRECT, prog_test_run  # noqa: E402

GW4 = IPv4Address("198.18.0.1").packed
HA = IPv6Address("2001:db8:6::1").packed
COA = IPv6Address("2001:db8:a::2").packed
COA2 = IPv6Address("2001:db8:b::2").packed
ROUTER_MAC = bytes.fromhex("020000000001")
VISITED_MAC = bytes.fromhex("020000000002")
HOST_MAC = bytes.fromhex("020000000003")
HOST_LINK_MAC = bytes.fromhex("020000000004")
HA_MAC = bytes.fromhex("020000000005")
HOME_ROUTER_MAC = bytes.fromhex("020000000006")
TUNNEL_MTU, HOST_MTU = 1460, 1440
ETH4, ETH6 = b"\x08\x00", b"\x86\xdd"


class PythonGuest:
    """The agent's Python path for the same state (HostSide's composition, agent config)."""

    def __init__(self) -> None:
        pool = IPv4Pool(IPv4Network("198.18.0.0/24"), exclude=(IPv4Address(GW4), IPv4Address(H4)))
        self.table = TranslationTable(pool)
        self.table.add_static(CN, P4, 0.0)
        self.translator = Rfc7915Translator(TranslatorConfig(
            ipv6_mtu=TUNNEL_MTU, ipv4_mtu=HOST_MTU, icmpv4_error_source=GW4, icmpv6_error_source=HOA))
        self.xlat = Ipv4Translation(self.table, self.translator, home_address=HOA, home_ipv4=H4,
                                    gateway_ipv4=GW4, counters=Counter())
        self.translator.map_6to4 = self.xlat.map_inner_6to4
        self.translator.map_4to6 = self.xlat.map_inner_4to6
        self.dataplane = GuestDataPlane(HOA, VISITED_MAC, Counter())
        self.dataplane.set_tunnel(COA, HA)
        self.dataplane.set_next_hop(ROUTER_MAC)

    def outbound_ipv4(self, packet: bytes) -> bytes | None:
        out, errors = self.xlat.outbound(memoryview(packet), 1.0)
        if errors or len(out) != 1:
            return None
        frames, unresolved = self.dataplane.outbound(out)
        return frames[0] if len(frames) == 1 and not unresolved else None

    def outbound_ipv6(self, packet: bytes) -> bytes | None:
        frames, _ = self.dataplane.outbound([packet])
        return frames[0] if len(frames) == 1 else None

    def inbound(self, outer: bytes, translate: bool = True) -> bytes | None:
        inner = self.dataplane.inbound(memoryview(outer))
        if inner is None:
            return None
        if not translate:
            return HOST_MAC + HOST_LINK_MAC + ETH6 + bytes(inner)
        out, errors = self.xlat.inbound(inner, 1.0)
        if errors or len(out) != 1:
            return None
        return HOST_MAC + HOST_LINK_MAC + ETH4 + out[0]


def guest_state(**changes: object) -> GuestState:
    state = GuestState(
        home_address=HOA, home_agent=HA, care_of_address=COA,
        prefix64=IPv6Address("64:ff9b::").packed[:12], home_ipv4=H4, gateway_ipv4=GW4,
        pool_network=IPv4Address("198.18.0.0").packed, pool_mask=IPv4Address("255.255.255.0").packed,
        next_hop_mac=ROUTER_MAC, visited_mac=VISITED_MAC, host_mac=HOST_MAC, host_ipv6_mac=HOST_MAC,
        host_link_mac=HOST_LINK_MAC, visited_ifindex=2, host_ifindex=3, ipv6_mtu=TUNNEL_MTU,
        ipv4_mtu=HOST_MTU, tunnel_up=True, translate=True, passthrough=True,
    )
    for key, value in changes.items():
        setattr(state, key, value)
    return state


@pytest.fixture(scope="module")
def guest_fp():
    fp = GuestFastPath()
    yield fp
    fp.close()


@pytest.fixture
def guest(guest_fp: GuestFastPath) -> tuple[GuestFastPath, PythonGuest]:
    python = PythonGuest()
    guest_fp.flows.clear()
    guest_fp.set_python_ports(frozenset())
    guest_fp.set_state(guest_state())
    guest_fp.push_table(python.table)
    return guest_fp, python


def _flow_of_inbound(inner: bytes) -> tuple[bytes, int, int, int] | None:
    if len(inner) < 44 or inner[6] not in (6, 17):
        return None
    return inner[8:24], int.from_bytes(inner[42:44], "big"), int.from_bytes(inner[40:42], "big"), inner[6]


def run(fp_fd: int, frame: bytes) -> tuple[int, bytes]:
    verdict, out, _ns = prog_test_run(fp_fd, frame)
    return verdict, out


# ---------------------------------------------------------------------------- guest, RFC 7915

_carried: Counter[str] = Counter()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_rfc7915_case_through_the_guest(guest, case) -> None:
    fp, python = guest
    if case.direction == "46":
        frame = HOST_LINK_MAC + HOST_MAC + ETH4 + case.packet
        verdict, out = run(fp.program_fds["host_ingress"], frame)
        expected = python.outbound_ipv4(case.packet)
    else:
        outer = bytes(encapsulate(case.packet, HA, COA))
        flow = _flow_of_inbound(case.packet)
        if flow is not None:
            fp.note_flow(*flow, SIDE_HOST_IPV4)
        fp.set_ident(python.translator._next_ident)
        frame = VISITED_MAC + ROUTER_MAC + ETH6 + outer
        verdict, out = run(fp.program_fds["visited_ingress"], frame)
        expected = python.inbound(outer)
    assert verdict in (TC_ACT_OK, TC_ACT_REDIRECT)
    if verdict == TC_ACT_OK:
        assert out == frame, "a passed packet must reach the Python path untouched"
        _carried["passed"] += 1
    else:
        assert expected is not None, "the fast path carried a packet the Python path refuses"
        assert out.hex() == expected.hex()
        _carried["carried"] += 1


def test_rfc7915_suite_mostly_exercised_the_fast_path() -> None:
    # Runs after the parametrised cases (file order): the fast path took a real share.
    if not _carried:
        pytest.skip("run with the RFC 7915 cases")
    assert _carried["carried"] >= 12, _carried  # the plain TCP/UDP cases of 4.1 and 5.1


# ---------------------------------------------------------------------------- guest, more cases

def _v4(*layers, dst: str = PEER4, **kw) -> bytes:
    pkt = IP(src=HOST4, dst=dst, **kw)
    for layer in layers:
        pkt = pkt / layer
    return bytes(pkt)


def _v6in(*layers, src: str = CN6, **kw) -> bytes:
    pkt = IPv6(src=src, dst=HOA6, **kw)
    for layer in layers:
        pkt = pkt / layer
    return bytes(pkt)


OUT_CARRIED = {
    "udp-table-230": _v4(UDP(sport=1000, dport=2000), Raw(b"x" * 100)),
    "tcp-table-230": _v4(TCP(sport=1000, dport=80, flags="PA"), Raw(b"y" * 300), tos=0x28),
    "udp-rfc6052": _v4(UDP(sport=1000, dport=53), Raw(b"q" * 30), dst="192.0.2.33"),
    "tcp-df-full-size": _v4(TCP(sport=1, dport=2), Raw(bytes(TUNNEL_MTU - 60)), flags="DF"),
    "udp-checksum-becomes-ffff": None,  # built below
}
OUT_PASSED = {
    "icmp-echo": _v4(ICMP()),
    "fragment": _v4(UDP(sport=1, dport=2), Raw(b"z" * 50), flags="MF"),
    "options": _v4(UDP(sport=1, dport=2), Raw(b"z" * 50), options=b"\x01\x01\x01\x00"),
    "ttl-1": _v4(UDP(sport=1, dport=2), Raw(b"z" * 50), ttl=1),
    "udp-checksum-0": _v4(UDP(sport=1, dport=2, chksum=0), Raw(b"z" * 50)),
    "pool-address-without-row": _v4(UDP(sport=1, dport=2), Raw(b"z"), dst="198.18.0.77"),
    "to-the-gateway": _v4(UDP(sport=1, dport=53), Raw(b"z"), dst="198.18.0.1"),
    "df-too-big-for-tunnel": _v4(TCP(sport=1, dport=2), Raw(bytes(TUNNEL_MTU - 59)), flags="DF"),
    "no-df-above-1280": _v4(UDP(sport=1, dport=2), Raw(bytes(1300))),
    "bad-header-checksum": _v4(UDP(sport=1, dport=2), Raw(b"z"), chksum=0x1234),
    "foreign-source": bytes(IP(src="198.18.0.9", dst=PEER4) / UDP(sport=1, dport=2)),
}


def _udp_checksum_ffff_case() -> bytes:
    """A UDP datagram whose translated checksum computes to 0 (sent as 0xffff, RFC 768):
    with source port 0 the checksum is C0, so source port C0 brings the sum to 0xffff."""
    first = PythonGuest().outbound_ipv4(_v4(UDP(sport=0, dport=7), Raw(b"abcd")))
    sport = int.from_bytes(first[14 + 80 + 6 : 14 + 80 + 8], "big")
    pkt = _v4(UDP(sport=sport, dport=7), Raw(b"abcd"))
    assert PythonGuest().outbound_ipv4(pkt)[14 + 80 + 6 : 14 + 80 + 8] == b"\xff\xff"
    return pkt


@pytest.mark.parametrize("name", sorted(OUT_CARRIED))
def test_outbound_carried(guest, name: str) -> None:
    fp, python = guest
    packet = OUT_CARRIED[name] or _udp_checksum_ffff_case()
    frame = HOST_LINK_MAC + HOST_MAC + ETH4 + packet
    verdict, out = run(fp.program_fds["host_ingress"], frame)
    assert verdict == TC_ACT_REDIRECT
    assert out.hex() == python.outbound_ipv4(packet).hex()


@pytest.mark.parametrize("name", sorted(OUT_PASSED))
def test_outbound_passed(guest, name: str) -> None:
    fp, _python = guest
    frame = HOST_LINK_MAC + HOST_MAC + ETH4 + OUT_PASSED[name]
    verdict, out = run(fp.program_fds["host_ingress"], frame)
    assert (verdict, out) == (TC_ACT_OK, frame)


def test_outbound_records_the_flow_for_the_way_back(guest) -> None:
    fp, python = guest
    request = _v4(UDP(sport=4242, dport=5353), Raw(b"?"))
    assert run(fp.program_fds["host_ingress"], HOST_LINK_MAC + HOST_MAC + ETH4 + request)[0] == TC_ACT_REDIRECT
    reply = _v6in(UDP(sport=5353, dport=4242), Raw(b"!" * 20))
    frame = VISITED_MAC + ROUTER_MAC + ETH6 + bytes(encapsulate(reply, HA, COA))
    fp.set_ident(python.translator._next_ident)
    verdict, out = run(fp.program_fds["visited_ingress"], frame)
    assert verdict == TC_ACT_REDIRECT
    assert out.hex() == python.inbound(bytes(encapsulate(reply, HA, COA))).hex()


def test_outbound_counts_into_table_230(guest) -> None:
    fp, python = guest
    packet = OUT_CARRIED["udp-table-230"]
    for _ in range(3):
        run(fp.program_fds["host_ingress"], HOST_LINK_MAC + HOST_MAC + ETH4 + packet)
    entry = python.table.get(CN)
    before = entry.packets
    assert fp.read_counters(python.table, 50.0) >= 3
    assert entry.packets == before + 3 and entry.last_used == 50.0
    assert fp.read_counters(python.table, 60.0) == 0  # deltas, not totals


def test_host_ipv6_passthrough(guest) -> None:
    fp, python = guest
    packet = bytes(IPv6(src=HOA6, dst=CN6, tc=0x20) / TCP(sport=5, dport=6) / Raw(b"p" * 64))
    frame = HOST_LINK_MAC + HOST_MAC + ETH6 + packet
    verdict, out = run(fp.program_fds["host_ingress"], frame)
    assert verdict == TC_ACT_REDIRECT
    assert out.hex() == python.outbound_ipv6(packet).hex()
    # and back, decapsulated only, to the host's IPv6 stack
    reply = _v6in(TCP(sport=6, dport=5), Raw(b"r" * 10))
    outer = bytes(encapsulate(reply, HA, COA))
    verdict, out = run(fp.program_fds["visited_ingress"], VISITED_MAC + ROUTER_MAC + ETH6 + outer)
    assert verdict == TC_ACT_REDIRECT
    assert out.hex() == python.inbound(outer, translate=False).hex()
    for passed in (
        bytes(IPv6(src=HOA6, dst=CN6) / ICMPv6EchoRequest()),
        bytes(IPv6(src="fe80::1", dst="ff02::1:ff00:1") / ICMPv6ND_NS(tgt="fe80::1")),
        bytes(IPv6(src=HOA6, dst=CN6) / IPv6ExtHdrDestOpt() / UDP(sport=1, dport=2)),
        bytes(IPv6(src="2001:db8:6::99", dst=CN6) / UDP(sport=1, dport=2)),
    ):
        frame = HOST_LINK_MAC + HOST_MAC + ETH6 + passed
        assert run(fp.program_fds["host_ingress"], frame) == (TC_ACT_OK, frame)


IN_PASSED = {
    "not-from-the-home-agent": (_v6in(UDP(sport=53, dport=4000), Raw(b"a")), {"outer_src": COA2}),
    "not-our-care-of-address": (_v6in(UDP(sport=53, dport=4000), Raw(b"a")), {"outer_dst": COA2}),
    "no-flow-of-the-host": (_v6in(UDP(sport=53, dport=4999), Raw(b"a")), {}),
    "icmpv6-echo": (_v6in(ICMPv6EchoRequest()), {}),
    "fragment": (_v6in(IPv6ExtHdrFragment(m=1), UDP(sport=53, dport=4000), Raw(b"a" * 16)), {}),
    "hop-limit-1": (_v6in(UDP(sport=53, dport=4000), Raw(b"a"), hlim=1), {}),
    "udp-checksum-0": (_v6in(UDP(sport=53, dport=4000, chksum=0), Raw(b"a")), {}),
    "unknown-source-needs-a-pool-address": (
        _v6in(UDP(sport=53, dport=4000), Raw(b"a"), src="2001:db8:99::1"), {}),
    "esp-in-tunnel": (_v6in(Raw(b"\x00" * 40), nh=50), {}),
    "mobility-header": (_v6in(Raw(b"\x3b\x00" + b"\x00" * 14), nh=135), {}),
    "too-big-for-the-host": (_v6in(UDP(sport=53, dport=4000), Raw(bytes(HOST_MTU))), {}),
}


@pytest.mark.parametrize("name", sorted(IN_PASSED))
def test_inbound_passed(guest, name: str) -> None:
    fp, _python = guest
    inner, outer_change = IN_PASSED[name]
    for source in (CN, IPv6Address("2001:db8:99::1").packed):
        fp.note_flow(source, 4000, 53, 17, SIDE_HOST_IPV4)
    outer = bytes(encapsulate(inner, outer_change.get("outer_src", HA), outer_change.get("outer_dst", COA)))
    frame = VISITED_MAC + ROUTER_MAC + ETH6 + outer
    assert run(fp.program_fds["visited_ingress"], frame) == (TC_ACT_OK, frame)


def test_sip_alg_ports_stay_on_the_python_path(guest) -> None:
    fp, _python = guest
    fp.set_python_ports(frozenset({5060, 40123}))
    for packet in (_v4(UDP(sport=5062, dport=5060), Raw(b"REGISTER sip:x SIP/2.0\r\n")),
                   _v4(TCP(sport=40123, dport=5061), Raw(b"SIP/2.0 200 OK\r\n"))):
        frame = HOST_LINK_MAC + HOST_MAC + ETH4 + packet
        assert run(fp.program_fds["host_ingress"], frame) == (TC_ACT_OK, frame)
    fp.note_flow(CN, 5062, 5060, 17, SIDE_HOST_IPV4)
    reply = bytes(encapsulate(_v6in(UDP(sport=5060, dport=5062), Raw(b"SIP/2.0 200 OK\r\n")), HA, COA))
    frame = VISITED_MAC + ROUTER_MAC + ETH6 + reply
    assert run(fp.program_fds["visited_ingress"], frame) == (TC_ACT_OK, frame)
    fp.set_python_ports(frozenset())
    assert run(fp.program_fds["visited_ingress"], frame)[0] == TC_ACT_REDIRECT


def test_nothing_carried_without_a_binding(guest) -> None:
    fp, _python = guest
    fp.set_state(guest_state(tunnel_up=False))
    frame = HOST_LINK_MAC + HOST_MAC + ETH4 + OUT_CARRIED["udp-table-230"]
    assert run(fp.program_fds["host_ingress"], frame) == (TC_ACT_OK, frame)
    fp.set_state(guest_state(next_hop_mac=None))
    assert run(fp.program_fds["host_ingress"], frame) == (TC_ACT_OK, frame)


def test_handover_swaps_care_of_address_and_next_hop_together(guest) -> None:
    fp, python = guest
    new_router = bytes.fromhex("0200000000aa")
    fp.set_state(guest_state(care_of_address=COA2, next_hop_mac=new_router))
    python.dataplane.set_tunnel(COA2, HA)
    python.dataplane.set_next_hop(new_router)
    packet = OUT_CARRIED["udp-table-230"]
    verdict, out = run(fp.program_fds["host_ingress"], HOST_LINK_MAC + HOST_MAC + ETH4 + packet)
    assert verdict == TC_ACT_REDIRECT
    assert out[:6] == new_router and out[14 + 8 : 14 + 24] == COA2
    assert out.hex() == python.outbound_ipv4(packet).hex()
    # tunnelled packets to the old care-of address are no longer ours
    old = VISITED_MAC + ROUTER_MAC + ETH6 + bytes(encapsulate(_v6in(UDP(sport=80, dport=1000)), HA, COA))
    assert run(fp.program_fds["visited_ingress"], old) == (TC_ACT_OK, old)


def test_table_rows_follow_the_python_table(guest) -> None:
    fp, python = guest
    python.table.on_change = lambda entry, added: (fp.map_added if added else fp.map_removed)(entry)
    peer = IPv6Address("2001:db8:77::5").packed
    ipv4 = python.table.lookup_or_allocate_v6(peer, 1.0)
    assert fp.xlat_v6.lookup(peer) is not None and fp.xlat_v4.lookup(ipv4) is not None
    python.table.remove(peer)
    assert fp.xlat_v6.lookup(peer) is None and fp.xlat_v4.lookup(ipv4) is None


# ---------------------------------------------------------------------------- home agent

HOME_PREFIX = IPv6Network("2001:db8:6::/64")


class PythonHomeAgent:
    def __init__(self, bindings: dict[bytes, bytes]) -> None:
        self.bindings = bindings
        self.dataplane = HomeAgentDataPlane(HA, HA_MAC, Counter(), bindings.get)
        self.dataplane.set_next_hop(HOME_ROUTER_MAC)

    def intercept(self, packet: bytes) -> bytes | None:
        coa = self.bindings.get(packet[24:40])
        outer = self.dataplane.intercept(memoryview(packet), coa) if coa else None
        return self.dataplane.frame(outer) if outer is not None else None

    def reverse(self, packet: bytes) -> bytes | None:
        inner = self.dataplane.detunnel(memoryview(packet))
        if inner is None:
            return None
        forwarded = bytearray(inner)
        forwarded[7] -= 1
        return self.dataplane.frame(forwarded)


@pytest.fixture(scope="module")
def ha_fp():
    fp = HomeAgentFastPath(max_bindings=2048)
    fp.set_state(HomeAgentState(HA, HOME_PREFIX, HA_MAC, HOME_ROUTER_MAC, ifindex=2))
    for i in range(1000):  # a crowded map: the lookups must find the right one
        fp.bind(IPv6Address(f"2001:db8:6::{0x4000 + i:x}").packed, IPv6Address(f"2001:db8:c::{i + 1:x}").packed)
    fp.bind(HOA, COA)
    yield fp
    fp.close()


def _cn_to_hoa(*layers, **kw) -> bytes:
    pkt = IPv6(src=CN6, dst=HOA6, **kw)
    for layer in layers:
        pkt = pkt / layer
    return bytes(pkt)


HA_INTERCEPT = {
    "udp": (_cn_to_hoa(UDP(sport=53, dport=4000), Raw(b"u" * 100)), True),
    "tcp-traffic-class": (_cn_to_hoa(TCP(sport=80, dport=4000), Raw(b"t" * 900), tc=0xB8), True),
    "full-size": (_cn_to_hoa(UDP(sport=53, dport=4000), Raw(bytes(1500 - 40 - 48))), True),
    "too-big": (_cn_to_hoa(UDP(sport=53, dport=4000), Raw(bytes(1500 - 40 - 47))), False),
    "hop-limit-1": (_cn_to_hoa(UDP(sport=53, dport=4000), hlim=1), False),
    "icmpv6": (_cn_to_hoa(ICMPv6EchoRequest()), False),
    "extension-header": (_cn_to_hoa(IPv6ExtHdrDestOpt(), UDP(sport=53, dport=4000)), False),
    "no-binding": (bytes(IPv6(src=CN6, dst="2001:db8:6::9999") / UDP(sport=1, dport=2)), False),
}


@pytest.mark.parametrize("name", sorted(HA_INTERCEPT))
def test_home_agent_intercept(ha_fp, name: str) -> None:
    packet, carried = HA_INTERCEPT[name]
    frame = HA_MAC + HOME_ROUTER_MAC + ETH6 + packet
    verdict, out = run(ha_fp.program_fd, frame)
    if not carried:
        assert (verdict, out) == (TC_ACT_OK, frame)
        return
    assert verdict == TC_ACT_REDIRECT
    assert out.hex() == PythonHomeAgent({HOA: COA}).intercept(packet).hex()


def _mn_to_cn(*layers, src: str = HOA6, dst: str = CN6, **kw) -> bytes:
    pkt = IPv6(src=src, dst=dst, **kw)
    for layer in layers:
        pkt = pkt / layer
    return bytes(pkt)


HA_REVERSE = {
    "udp": (_mn_to_cn(UDP(sport=4000, dport=53), Raw(b"u" * 100)), COA, True),
    "tcp": (_mn_to_cn(TCP(sport=4000, dport=80), Raw(b"t" * 1000), tc=4), COA, True),
    "wrong-care-of-address": (_mn_to_cn(UDP(sport=4000, dport=53)), COA2, False),
    "unbound-inner-source": (_mn_to_cn(UDP(sport=1, dport=2), src="2001:db8:6::9999"), COA, False),
    "on-link-destination": (_mn_to_cn(UDP(sport=1, dport=2), dst="2001:db8:6::53"), COA, False),
    "hop-limit-1": (_mn_to_cn(UDP(sport=1, dport=2), hlim=1), COA, False),
    "icmpv6": (_mn_to_cn(ICMPv6EchoRequest()), COA, False),
}


@pytest.mark.parametrize("name", sorted(HA_REVERSE))
def test_home_agent_reverse_tunnel(ha_fp, name: str) -> None:
    inner, source, carried = HA_REVERSE[name]
    outer = bytes(encapsulate(inner, source, HA))
    frame = HA_MAC + ROUTER_MAC + ETH6 + outer
    verdict, out = run(ha_fp.program_fd, frame)
    if not carried:
        assert (verdict, out) == (TC_ACT_OK, frame)
        return
    assert verdict == TC_ACT_REDIRECT
    assert out.hex() == PythonHomeAgent({HOA: COA}).reverse(outer).hex()


def test_home_agent_binding_moves_and_goes(ha_fp) -> None:
    packet = HA_INTERCEPT["udp"][0]
    frame = HA_MAC + HOME_ROUTER_MAC + ETH6 + packet
    try:
        ha_fp.bind(HOA, COA2)
        verdict, out = run(ha_fp.program_fd, frame)
        assert verdict == TC_ACT_REDIRECT and out[14 + 24 : 14 + 40] == COA2
        ha_fp.unbind(HOA)
        assert run(ha_fp.program_fd, frame) == (TC_ACT_OK, frame)
    finally:
        ha_fp.bind(HOA, COA)
    assert ha_fp.stats()["intercepted"] >= 1
