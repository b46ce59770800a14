"""SIP over TCP through the ALG (guest_agent/sip_alg_tcp.py): sequence numbers follow the
length changes of rewritten segments, both ways, retransmissions included."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from guest_agent.sip_alg_path import SipAlgPath
from guest_agent.sip_alg_tcp import SeqShift
from netstack.translate.pool import IPv4Pool
from netstack.translate.table import TranslationTable

DATA = Path(__file__).parent / "data" / "sip"
HOA, HOME4 = "2001:db8:6::1000", "198.18.0.2"


def make() -> tuple[SipAlgPath, str, Counter[str]]:
    pool = IPv4Pool(IPv4Network("198.18.0.0/24"),
                    exclude=(IPv4Address("198.18.0.1"), IPv4Address(HOME4)))
    table = TranslationTable(pool, idle_timeout=300)
    proxy4 = str(IPv4Address(table.lookup_or_allocate_v6(
        IPv6Address("2001:db8:8::5060").packed, 0.0)))
    counters: Counter[str] = Counter()
    alg = SipAlgPath(table, home_address=IPv6Address(HOA).packed,
                     home_ipv4=IPv4Address(HOME4).packed, counters=counters)
    return alg, proxy4, counters


def segment(src: str, dst: str, sport: int, dport: int, seq: int, ack: int,
            payload: bytes = b"", flags: str = "PA") -> bytes:
    return bytes(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, seq=seq, ack=ack,
                                            flags=flags) / Raw(payload))


def test_seq_shift_maps_both_ways_and_ignores_retransmissions() -> None:
    shift = SeqShift()
    assert shift.to_wire(1000) == 1000
    shift.note(1000, 100, 130)  # octets 1000..1099 became 130 octets
    shift.note(1000, 100, 130)  # retransmitted: nothing new
    assert shift.to_wire(1100) == 1130 and shift.to_wire(1050) == 1050
    assert shift.from_wire(1130) == 1100  # the peer acknowledges the grown stream
    shift.note(1100, 10, 5)
    assert shift.to_wire(1110) == 1135 and shift.from_wire(1135) == 1110
    wrapped = SeqShift()
    wrapped.note((1 << 32) - 10, 20, 25)  # a rewrite across the wrap of the sequence space
    assert wrapped.to_wire(10) == 15


def test_invite_over_tcp_is_rewritten_and_the_stream_stays_consistent() -> None:
    alg, proxy4, counters = make()
    invite = (DATA / "invite_from_host.v4.sip").read_bytes().replace(b"198.18.0.3",
                                                                    proxy4.encode())
    first = alg.outbound(segment(HOME4, proxy4, 40000, 5060, 5000, 9000, invite), 1.0)
    parsed = IP(first)
    assert parsed[TCP].seq == 5000 and parsed[TCP].ack == 9000
    grown = len(bytes(parsed[TCP].payload)) - len(invite)
    assert grown > 0 and b"c=IN IP6 2001:db8:6::1000" in bytes(parsed[TCP].payload)
    # checksums as a receiver computes them
    assert IP(bytes(IP(first))).chksum == IP(first).chksum
    rebuilt = IP(first)
    del rebuilt.chksum, rebuilt[TCP].chksum
    assert IP(bytes(rebuilt))[TCP].chksum == parsed[TCP].chksum
    # the next segment of the host moves by what the INVITE grew
    ack_only = IP(alg.outbound(segment(HOME4, proxy4, 40000, 5060, 5000 + len(invite), 9000,
                                       flags="A"), 2.0))
    assert ack_only[TCP].seq == 5000 + len(invite) + grown
    # the proxy acknowledges the grown stream; the host sees its own numbering
    reply = alg.inbound(segment(proxy4, HOME4, 5060, 40000, 9000,
                                5000 + len(invite) + grown, flags="A"), 3.0)
    assert IP(reply)[TCP].ack == 5000 + len(invite)
    # a retransmitted INVITE is rewritten the same way, at the same shifted position
    again = IP(alg.outbound(segment(HOME4, proxy4, 40000, 5060, 5000, 9000, invite), 4.0))
    assert again[TCP].seq == 5000 and bytes(again[TCP].payload) == bytes(parsed[TCP].payload)
    assert counters["sip_alg_tcp_messages_out"] == 2


def test_partial_message_passes_unrewritten_but_counted() -> None:
    alg, proxy4, counters = make()
    half = (DATA / "invite_from_host.v4.sip").read_bytes()[:300]
    packet = segment(HOME4, proxy4, 40001, 5060, 1, 1, half)
    assert alg.outbound(packet, 1.0) == packet
    assert sum(v for k, v in counters.items() if k.startswith("sip_alg_tcp_unrewritten_")) == 1


def test_contact_port_makes_a_proxy_connection_to_the_phone_sip() -> None:
    alg, proxy4, _ = make()
    register = (b"REGISTER sip:sip.example SIP/2.0\r\nVia: SIP/2.0/TCP 198.18.0.2:5066\r\n"
                b"Contact: <sip:host4tcp@198.18.0.2:5066;transport=tcp>\r\n"
                b"CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")
    alg.outbound(segment(HOME4, proxy4, 40002, 5060, 1, 1, register), 1.0)
    assert 5066 in alg.host_ports
    invite = (DATA / "invite_to_host.v6.sip").read_bytes()
    out = IP(alg.inbound(segment(proxy4, HOME4, 45481, 5066, 7, 1, invite), 2.0))
    assert b"c=IN IP4 " in bytes(out[TCP].payload)
