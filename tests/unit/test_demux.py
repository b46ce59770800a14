"""FlowDemux: inbound packets for the shared home address go back to the side that owns the flow."""

from __future__ import annotations

from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    IPv6,
)
from scapy.packet import Raw

from guest_agent.demux import FlowDemux, Side, _inbound_key, _outbound_key

HOA = "2001:db8:6::1000"
CN = "2001:db8:5::7"
CN2 = "2001:db8:5::8"
ROUTER = "2001:db8:5::1"


def out_udp(sport: int = 40000, dport: int = 53, dst: str = CN) -> bytes:
    return bytes(IPv6(src=HOA, dst=dst) / UDP(sport=sport, dport=dport) / Raw(b"q"))


def in_udp(sport: int = 53, dport: int = 40000, src: str = CN) -> bytes:
    return bytes(IPv6(src=src, dst=HOA) / UDP(sport=sport, dport=dport) / Raw(b"a"))


def out_tcp(sport: int = 50000, dport: int = 80) -> bytes:
    return bytes(IPv6(src=HOA, dst=CN) / TCP(sport=sport, dport=dport, flags="S"))


def in_tcp(sport: int = 80, dport: int = 50000) -> bytes:
    return bytes(IPv6(src=CN, dst=HOA) / TCP(sport=sport, dport=dport, flags="SA"))


def test_keys() -> None:
    cn = bytes.fromhex("20010db8000500000000000000000007")
    assert _outbound_key(out_udp()) == (17, 40000, cn, 53)
    assert _inbound_key(in_udp()) == (17, 40000, cn, 53)
    assert _outbound_key(out_tcp()) == (6, 50000, cn, 80)
    assert _inbound_key(in_tcp()) == (6, 50000, cn, 80)
    echo = bytes(IPv6(src=HOA, dst=CN) / ICMPv6EchoRequest(id=0x1234, seq=1))
    reply = bytes(IPv6(src=CN, dst=HOA) / ICMPv6EchoReply(id=0x1234, seq=1))
    assert _outbound_key(echo) == (58, 0x1234, cn, 0)
    assert _inbound_key(reply) == (58, 0x1234, cn, 0)


def test_keys_of_unkeyable_packets() -> None:
    assert _outbound_key(bytes(IPv6(src=HOA, dst=CN, nh=59))) is None
    assert _outbound_key(out_udp()[:43]) is None  # truncated ports
    assert _inbound_key(bytes(IPv6(src=CN, dst=HOA) / ICMPv6DestUnreach())[:60]) is None


def test_udp_reply_goes_to_the_side_that_sent() -> None:
    demux = FlowDemux(Side.HOST_IPV4)
    demux.note_outbound(out_udp(), Side.GUEST, 1.0)
    assert demux.classify(in_udp(), 2.0) is Side.GUEST
    assert len(demux) == 1


def test_tcp_reply_goes_to_the_side_that_sent() -> None:
    demux = FlowDemux(Side.GUEST)
    demux.note_outbound(out_tcp(), Side.HOST_IPV6, 1.0)
    assert demux.classify(in_tcp(), 2.0) is Side.HOST_IPV6


def test_flows_differ_by_port_protocol_and_peer() -> None:
    demux = FlowDemux(Side.GUEST)
    demux.note_outbound(out_udp(sport=40000), Side.HOST_IPV4, 1.0)
    demux.note_outbound(out_udp(sport=40001), Side.HOST_IPV6, 1.0)
    assert demux.classify(in_udp(dport=40000), 2.0) is Side.HOST_IPV4
    assert demux.classify(in_udp(dport=40001), 2.0) is Side.HOST_IPV6
    # UDP from another peer or remote port follows the local port (issue 12: a peer's RTP
    # may come from another of its addresses); a port nobody sent from gets the default
    assert demux.classify(in_udp(dport=40000, src=CN2), 2.0) is Side.HOST_IPV4
    assert demux.classify(in_udp(sport=54, dport=40000), 2.0) is Side.HOST_IPV4
    assert demux.classify(in_udp(dport=40002, src=CN2), 2.0) is Side.GUEST
    tcp_same_ports = bytes(IPv6(src=CN, dst=HOA) / TCP(sport=53, dport=40000))
    assert demux.classify(tcp_same_ports, 2.0) is Side.GUEST  # other protocol


def test_echo_reply_goes_to_the_pinger() -> None:
    demux = FlowDemux(Side.HOST_IPV4)
    demux.note_outbound(bytes(IPv6(src=HOA, dst=CN) / ICMPv6EchoRequest(id=7, seq=1)), Side.HOST_IPV6, 0.0)
    assert demux.classify(bytes(IPv6(src=CN, dst=HOA) / ICMPv6EchoReply(id=7, seq=1)), 1.0) is Side.HOST_IPV6
    assert demux.classify(bytes(IPv6(src=CN, dst=HOA) / ICMPv6EchoReply(id=8, seq=1)), 1.0) is Side.HOST_IPV4


def test_inbound_echo_request_uses_the_default_side() -> None:
    demux = FlowDemux(Side.HOST_IPV4)
    assert demux.classify(bytes(IPv6(src=CN, dst=HOA) / ICMPv6EchoRequest(id=9)), 0.0) is Side.HOST_IPV4


def test_icmpv6_error_quoting_our_packet_goes_to_the_owner() -> None:
    demux = FlowDemux(Side.HOST_IPV4)
    sent = out_udp(sport=41000)
    demux.note_outbound(sent, Side.HOST_IPV6, 0.0)
    unreachable = bytes(IPv6(src=ROUTER, dst=HOA) / ICMPv6DestUnreach(code=4) / Raw(sent))
    too_big = bytes(IPv6(src=ROUTER, dst=HOA) / ICMPv6PacketTooBig(mtu=1280) / Raw(sent))
    assert demux.classify(unreachable, 1.0) is Side.HOST_IPV6
    assert demux.classify(too_big, 1.0) is Side.HOST_IPV6


def test_icmpv6_error_quoting_an_echo_request() -> None:
    demux = FlowDemux(Side.HOST_IPV4)
    echo = bytes(IPv6(src=HOA, dst=CN) / ICMPv6EchoRequest(id=77))
    demux.note_outbound(echo, Side.GUEST, 0.0)
    error = bytes(IPv6(src=ROUTER, dst=HOA) / ICMPv6DestUnreach() / Raw(echo))
    assert demux.classify(error, 1.0) is Side.GUEST


def test_icmpv6_error_about_an_unknown_flow_uses_the_default() -> None:
    demux = FlowDemux(Side.HOST_IPV6)
    demux.note_outbound(out_udp(sport=41000), Side.GUEST, 0.0)
    error = bytes(IPv6(src=ROUTER, dst=HOA) / ICMPv6DestUnreach() / Raw(out_udp(sport=41001)))
    assert demux.classify(error, 1.0) is Side.HOST_IPV6


def test_unknown_flow_goes_to_the_default_side() -> None:
    assert FlowDemux(Side.HOST_IPV4).classify(in_tcp(), 0.0) is Side.HOST_IPV4
    assert FlowDemux(Side.GUEST).classify(in_udp(), 0.0) is Side.GUEST
    assert FlowDemux(Side.HOST_IPV6).classify(bytes(IPv6(src=CN, dst=HOA, nh=59)), 0.0) is Side.HOST_IPV6


def test_unkeyable_outbound_is_not_recorded() -> None:
    demux = FlowDemux(Side.GUEST)
    demux.note_outbound(bytes(IPv6(src=HOA, dst=CN, nh=59)), Side.HOST_IPV6, 0.0)
    demux.note_outbound(bytes(IPv6(src=HOA, dst=CN) / ICMPv6DestUnreach()), Side.HOST_IPV6, 0.0)
    assert len(demux) == 0


def test_latest_sender_owns_the_flow() -> None:
    demux = FlowDemux(Side.GUEST)
    demux.note_outbound(out_udp(), Side.HOST_IPV4, 0.0)
    demux.note_outbound(out_udp(), Side.HOST_IPV6, 1.0)
    assert demux.classify(in_udp(), 2.0) is Side.HOST_IPV6 and len(demux) == 1


def test_prune_by_idle_timeout() -> None:
    demux = FlowDemux(Side.GUEST, idle_timeout=10.0)
    demux.note_outbound(out_udp(sport=1000), Side.HOST_IPV4, 0.0)
    demux.note_outbound(out_udp(sport=1001), Side.HOST_IPV4, 5.0)
    assert demux.prune(9.99) == 0
    assert demux.prune(10.0) == 1  # idle exactly the timeout: gone
    assert len(demux) == 1
    assert demux.classify(in_udp(dport=1000), 10.0) is Side.GUEST
    assert demux.classify(in_udp(dport=1001), 10.0) is Side.HOST_IPV4


def test_inbound_traffic_keeps_a_flow_alive() -> None:
    demux = FlowDemux(Side.GUEST, idle_timeout=10.0)
    demux.note_outbound(out_udp(), Side.HOST_IPV4, 0.0)
    demux.classify(in_udp(), 8.0)
    assert demux.prune(15.0) == 0
    assert demux.prune(18.0) == 1


def test_prune_by_size_keeps_the_newest_half() -> None:
    demux = FlowDemux(Side.GUEST, max_flows=4)
    for i in range(4):
        demux.note_outbound(out_udp(sport=2000 + i), Side.HOST_IPV4, float(i))
    assert len(demux) == 4
    demux.classify(in_udp(dport=2000), 10.0)  # the oldest flow is used again: now the newest
    demux.note_outbound(out_udp(sport=2004), Side.HOST_IPV4, 5.0)  # 5 > 4: prune
    assert len(demux) == 3
    survivors = {port for port in range(2000, 2005) if demux.classify(in_udp(dport=port), 11.0) is Side.HOST_IPV4}
    assert survivors == {2003, 2004, 2000}


def test_prune_returns_zero_when_nothing_is_idle() -> None:
    demux = FlowDemux(Side.GUEST)
    demux.note_outbound(out_udp(), Side.GUEST, 0.0)
    assert demux.prune(1.0) == 0 and len(demux) == 1


def test_udp_from_another_peer_address_follows_the_local_port() -> None:
    """A SIP peer's RTP may leave from another of its addresses than its SDP named."""
    from ipaddress import IPv6Address as _A

    from guest_agent.demux import FlowDemux as _Demux
    from guest_agent.demux import Side as _Side

    hoa, sdp_peer, real_peer = (_A(a).packed for a in
                                ("2001:db8:6::1000", "2001:db8:8::1005", "2001:db8:8::1001"))

    def udp(src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
        return (bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + src + dst
                + sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + bytes(4))

    demux = _Demux(_Side.HOST_IPV4)
    demux.note_outbound(udp(hoa, sdp_peer, 31000, 40000), _Side.HOST_IPV6, 0.0)
    assert demux.classify(udp(real_peer, hoa, 40000, 31000), 1.0) is _Side.HOST_IPV6
    assert demux.classify(udp(real_peer, hoa, 40000, 31002), 1.0) is _Side.HOST_IPV4
    assert demux.classify(udp(real_peer, hoa, 40000, 31000), 1000.0) is _Side.HOST_IPV4


def test_claimed_udp_port_goes_to_its_side_before_any_packet() -> None:
    demux = FlowDemux(Side.HOST_IPV4, idle_timeout=10.0)
    demux.claim_udp_port(40000, Side.HOST_IPV6, 0.0)
    assert demux.classify(in_udp(dport=40000), 1.0) is Side.HOST_IPV6
    demux.prune(11.0)
    assert demux.classify(in_udp(dport=40000), 11.0) is Side.HOST_IPV4


def test_new_flows_and_side_changes_are_reported_once() -> None:
    """The fast path mirrors the flow table (issue 14): told of new flows, not of every packet."""
    demux = FlowDemux(Side.HOST_IPV4)
    seen: list[tuple[tuple[int, int, bytes, int], Side]] = []
    demux.on_new_flow = lambda key, side: seen.append((key, side))
    demux.note_outbound(out_tcp(), Side.GUEST, 0.0)
    demux.note_outbound(out_tcp(), Side.GUEST, 1.0)
    demux.note_outbound(out_tcp(), Side.HOST_IPV6, 2.0)
    demux.note_outbound(out_udp(), Side.GUEST, 3.0)
    cn = bytes.fromhex("20010db8000500000000000000000007")
    assert seen == [((6, 50000, cn, 80), Side.GUEST), ((6, 50000, cn, 80), Side.HOST_IPV6),
                    ((17, 40000, cn, 53), Side.GUEST)]
