"""HostLink (virtual network 15): ARP and ND answers, frame sorting, sends to the host."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address, IPv4Network, IPv6Address

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from guest_agent.host_link import HostLink
from netstack.wire.icmpv6 import decode_icmpv6_packet
from netstack.wire.icmpv6_types import NeighborAdvertisement, TargetLinkLayerAddress
from netstack.wire.ipv6 import parse_ipv6_packet
from netstack.wire.offload import F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, Offload, segment

OUR_MAC = "02:00:00:00:0f:01"
HOST_MAC = "02:00:00:00:0f:99"
OTHER_MAC = "02:00:00:00:0f:77"
POOL = IPv4Network("198.18.0.0/24")
GATEWAY4 = "198.18.0.1"
HOME4 = "198.18.0.2"
HOA = "2001:db8:6::1000"
GATEWAY6 = "fe80::1"
HOST_LL = "fe80::99"


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


class FakePacketLink:
    """The methods of netstack.runtime.afpacket.PacketLink that HostLink uses, in memory."""

    def __init__(self) -> None:
        self.mac = mac(OUR_MAC)
        self.inbox: list[bytes] = []
        self.sent: list[bytes] = []
        self.batches: list[list[bytes]] = []
        self.offloads: dict[bytes, Offload] = {}  # frames in the inbox that are super-frames

    def fileno(self) -> int:
        return 42

    def recv_batch(self, max: int = 64) -> list[memoryview]:  # noqa: A002 - PacketLink's name
        frames, self.inbox = self.inbox[:max], self.inbox[max:]
        return [memoryview(bytearray(f)) for f in frames]

    def recv_batch_offload(self, max: int = 64, keep: object = None  # noqa: A002
                           ) -> list[tuple[memoryview, Offload | None]]:
        """As PacketLink: super-frames `keep` refuses come back cut into wire frames."""
        out: list[tuple[memoryview, Offload | None]] = []
        for frame in self.recv_batch(max):
            offload = self.offloads.pop(bytes(frame), None)
            if offload is None or keep is None or keep(frame):  # type: ignore[operator]
                out.append((frame, offload))
            else:
                out.extend((memoryview(p), None) for p in segment(frame, offload.gso_size))
        return out

    def send(self, frame: bytes) -> None:
        self.sent.append(bytes(frame))

    def send_batch(self, frames: list[bytes]) -> None:
        self.batches.append([bytes(f) for f in frames])
        self.sent.extend(bytes(f) for f in frames)


def make() -> tuple[HostLink, FakePacketLink]:
    fake = FakePacketLink()
    link = HostLink(
        fake,  # type: ignore[arg-type]
        pool=POOL,
        gateway_ipv4=IPv4Address(GATEWAY4),
        home_ipv4=IPv4Address(HOME4),
        home_address=IPv6Address(HOA),
        ipv6_gateway=IPv6Address(GATEWAY6),
        counters=Counter(),
    )
    return link, fake


def receive(link: HostLink, fake: FakePacketLink, *frames: bytes) -> tuple[list[bytes], list[bytes]]:
    fake.inbox.extend(frames)
    ipv4, ipv6 = link.receive()
    return [bytes(p) for p in ipv4], [bytes(p) for p in ipv6]


def arp_request(target: str, *, sender_ip: str = HOME4, sender_mac: str = HOST_MAC, pad: bool = False) -> bytes:
    frame = Ether(src=sender_mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=sender_mac, psrc=sender_ip, hwdst="00:00:00:00:00:00", pdst=target
    )
    return bytes(frame / Raw(bytes(18))) if pad else bytes(frame)


# ------------------------------------------------------------------ ARP


@pytest.mark.parametrize("target", ["198.18.0.7", GATEWAY4, "198.18.0.254"])
def test_arp_request_for_a_pool_address_is_answered(target: str) -> None:
    link, fake = make()
    assert receive(link, fake, arp_request(target)) == ([], [])
    expected = Ether(dst=HOST_MAC, src=OUR_MAC, type=0x0806) / ARP(
        op=2, hwsrc=OUR_MAC, psrc=target, hwdst=HOST_MAC, pdst=HOME4
    )
    assert fake.batches == [[bytes(expected)]]
    assert link.counters == Counter({"host_arp_answered": 1})
    assert link.host_mac == mac(HOST_MAC)


def test_padded_arp_request_is_answered() -> None:
    link, fake = make()
    frame = arp_request("198.18.0.9", pad=True)
    assert len(frame) == 60
    receive(link, fake, frame)
    assert len(fake.sent) == 1 and len(fake.sent[0]) == 42


def test_arp_for_the_hosts_own_address_is_not_answered() -> None:
    link, fake = make()
    receive(link, fake, arp_request(HOME4))  # gratuitous ARP / DAD of the host
    assert fake.sent == []
    assert link.counters["host_arp_answered"] == 0
    assert link.host_mac == mac(HOST_MAC)  # but the host's MAC is learned


@pytest.mark.parametrize("target", ["192.0.2.1", "198.18.1.1", "10.0.0.1"])
def test_arp_outside_the_pool_is_not_answered(target: str) -> None:
    link, fake = make()
    receive(link, fake, arp_request(target))
    assert fake.sent == [] and link.counters["host_arp_answered"] == 0


def test_arp_from_another_address_does_not_teach_the_host_mac() -> None:
    link, fake = make()
    receive(link, fake, arp_request("198.18.0.7", sender_ip="198.18.0.50", sender_mac=OTHER_MAC))
    assert link.host_mac is None
    # the request is still answered, to the one who asked
    assert fake.sent[0][:6] == mac(OTHER_MAC)


def test_arp_reply_from_the_host_teaches_its_mac() -> None:
    link, fake = make()
    reply = Ether(src=HOST_MAC, dst=OUR_MAC) / ARP(op=2, hwsrc=HOST_MAC, psrc=HOME4, hwdst=OUR_MAC, pdst=GATEWAY4)
    receive(link, fake, bytes(reply))
    assert link.host_mac == mac(HOST_MAC) and fake.sent == []


def test_malformed_arp_is_counted() -> None:
    link, fake = make()
    frame = bytearray(arp_request("198.18.0.7"))
    frame[14 + 6 : 14 + 8] = b"\x00\x07"  # opcode 7
    receive(link, fake, bytes(frame))
    assert fake.sent == []
    assert link.counters == Counter({"host_rx_dropped_arp_malformed": 1})


# ------------------------------------------------------------------ Neighbor Discovery


def ns(src: str, dst: str, target: str = GATEWAY6, *, hlim: int = 255, slla: bool = True) -> bytes:
    body = ICMPv6ND_NS(tgt=target)
    if slla:
        body = body / ICMPv6NDOptSrcLLAddr(lladdr=HOST_MAC)
    return bytes(Ether(src=HOST_MAC, dst="33:33:ff:00:00:01") / IPv6(src=src, dst=dst, hlim=hlim) / body)


def test_ns_for_the_gateway_is_answered_with_a_solicited_router_na() -> None:
    link, fake = make()
    assert receive(link, fake, ns(HOST_LL, "ff02::1:ff00:1")) == ([], [])
    [frame] = fake.sent
    assert frame[:14] == mac(HOST_MAC) + mac(OUR_MAC) + b"\x86\xdd"
    parsed = parse_ipv6_packet(frame[14:])
    assert parsed.src == IPv6Address(GATEWAY6) and parsed.dst == IPv6Address(HOST_LL)
    assert parsed.hop_limit == 255
    message = decode_icmpv6_packet(parsed)  # checksum verified
    assert message == NeighborAdvertisement(
        target=IPv6Address(GATEWAY6),
        router=True,
        solicited=True,
        override=True,
        options=(TargetLinkLayerAddress(mac(OUR_MAC)),),
    )
    na = Ether(frame)[ICMPv6ND_NA]
    assert (na.R, na.S, na.O) == (1, 1, 1)
    assert na[ICMPv6NDOptDstLLAddr].lladdr == OUR_MAC
    assert link.counters == Counter({"host_ns_answered": 1})


def test_dad_ns_from_unspecified_is_answered_to_all_nodes() -> None:
    link, fake = make()
    receive(link, fake, ns("::", "ff02::1:ff00:1", slla=False))
    [frame] = fake.sent
    assert frame[:6] == bytes.fromhex("333300000001")
    parsed = parse_ipv6_packet(frame[14:])
    assert parsed.dst == IPv6Address("ff02::1") and parsed.src == IPv6Address(GATEWAY6)
    message = decode_icmpv6_packet(parsed)
    assert isinstance(message, NeighborAdvertisement)
    assert message.router and message.override and not message.solicited


def test_ns_for_another_target_is_not_answered() -> None:
    link, fake = make()
    receive(link, fake, ns(HOST_LL, "ff02::1:ff00:2", target="fe80::2"))
    assert fake.sent == [] and link.counters == Counter()


def test_ns_with_a_forwarded_hop_limit_is_dropped() -> None:
    link, fake = make()
    receive(link, fake, ns(HOST_LL, "ff02::1:ff00:1", hlim=254))
    assert fake.sent == []
    assert link.counters == Counter({"host_rx_dropped_nd_hop_limit": 1})


def test_ns_with_a_bad_checksum_is_counted() -> None:
    link, fake = make()
    frame = bytearray(ns(HOST_LL, "ff02::1:ff00:1"))
    frame[14 + 40 + 2] ^= 0xFF
    receive(link, fake, bytes(frame))
    assert fake.sent == []
    assert link.counters == Counter({"host_rx_dropped_nd_malformed": 1})


def test_arp_and_ns_answers_leave_in_one_batch() -> None:
    link, fake = make()
    receive(link, fake, arp_request("198.18.0.7"), ns(HOST_LL, "ff02::1:ff00:1"))
    assert len(fake.batches) == 1 and len(fake.batches[0]) == 2


# ------------------------------------------------------------------ sorting frames


def ipv4_frame(src: str = HOME4, dst: str = "198.18.0.7", src_mac: str = HOST_MAC) -> bytes:
    return bytes(Ether(src=src_mac, dst=OUR_MAC) / IP(src=src, dst=dst) / UDP(sport=5000, dport=53) / Raw(b"x"))


def ipv6_frame(src: str = HOA, dst: str = "2001:db8:5::7", src_mac: str = HOST_MAC) -> bytes:
    return bytes(Ether(src=src_mac, dst=OUR_MAC) / IPv6(src=src, dst=dst) / UDP(sport=5000, dport=53) / Raw(b"y"))


def test_frames_are_sorted_by_family() -> None:
    link, fake = make()
    v4 = ipv4_frame()
    v6 = ipv6_frame()
    ipv4, ipv6 = receive(link, fake, v4, v6, ipv4_frame(dst="192.0.2.1"))
    assert ipv4 == [v4[14:], ipv4_frame(dst="192.0.2.1")[14:]]
    assert ipv6 == [v6[14:]]
    assert fake.sent == [] and link.counters == Counter()


def test_ipv4_from_the_home_ipv4_teaches_the_host_mac() -> None:
    link, fake = make()
    receive(link, fake, ipv4_frame(src="198.18.0.77", src_mac=OTHER_MAC))
    assert link.host_mac is None
    receive(link, fake, ipv4_frame())
    assert link.host_mac == mac(HOST_MAC)


def test_ipv6_from_the_home_address_teaches_the_ipv6_mac() -> None:
    link, fake = make()
    receive(link, fake, ipv6_frame(src_mac=OTHER_MAC))
    assert link.host_ipv6_mac == mac(OTHER_MAC) and link.host_mac is None


def test_ipv6_from_another_source_is_ignored() -> None:
    link, fake = make()
    assert receive(link, fake, ipv6_frame(src=HOST_LL, dst="ff02::2")) == ([], [])
    assert link.counters == Counter({"host_rx_ignored_ipv6": 1})


def test_other_ethertypes_and_runts_are_counted() -> None:
    link, fake = make()
    lldp = mac("0180c200000e") + mac(HOST_MAC) + b"\x88\xcc" + bytes(46)
    runt = mac(OUR_MAC) + mac(HOST_MAC) + b"\x08\x00" + bytes(19)
    assert receive(link, fake, lldp, runt) == ([], [])
    assert link.counters == Counter({"host_rx_ignored": 1, "host_rx_dropped_runt": 1})


# ------------------------------------------------------------------ sending to the host


def test_send_ipv4_before_the_host_mac_is_known_asks_for_it() -> None:
    link, fake = make()
    link.send_ipv4([b"a", b"b"])
    expected = Ether(dst="ff:ff:ff:ff:ff:ff", src=OUR_MAC, type=0x0806) / ARP(
        op=1, hwsrc=OUR_MAC, psrc=GATEWAY4, hwdst="00:00:00:00:00:00", pdst=HOME4
    )
    assert fake.sent == [bytes(expected)] and fake.batches == []
    assert link.counters == Counter()  # held, not dropped


def test_packets_held_during_arp_are_sent_once_the_host_answers() -> None:
    link, fake = make()
    link.send_ipv4([b"a", b"b"])
    reply = Ether(dst=OUR_MAC, src=HOST_MAC) / ARP(
        op=2, hwsrc=HOST_MAC, psrc=HOME4, hwdst=OUR_MAC, pdst=GATEWAY4
    )
    receive(link, fake, bytes(reply))
    header = mac(HOST_MAC) + mac(OUR_MAC) + b"\x08\x00"
    assert fake.batches == [[header + b"a", header + b"b"]]
    assert link.counters["host_tx_ipv4"] == 2


def test_the_hold_queue_is_bounded() -> None:
    link, fake = make()
    link.send_ipv4([b"x"] * 20)
    assert link.counters["host_tx_dropped_unresolved"] == 20 - 16


def test_send_ipv4_after_learning_the_host_mac() -> None:
    link, fake = make()
    receive(link, fake, ipv4_frame())
    packet = ipv4_frame()[14:]
    link.send_ipv4([packet, packet])
    header = mac(HOST_MAC) + mac(OUR_MAC) + b"\x08\x00"
    assert fake.batches == [[header + packet, header + packet]]
    assert link.counters == Counter({"host_tx_ipv4": 2})


def test_send_ipv6_uses_the_ipv4_mac_until_ipv6_is_heard() -> None:
    link, fake = make()
    link.send_ipv6([b"p"])
    assert fake.sent == [] and link.counters["host_tx_dropped_unresolved"] == 1
    receive(link, fake, ipv4_frame())
    link.send_ipv6([b"q"])
    assert fake.sent[-1] == mac(HOST_MAC) + mac(OUR_MAC) + b"\x86\xdd" + b"q"
    receive(link, fake, ipv6_frame(src_mac=OTHER_MAC))
    link.send_ipv6([b"r"])
    assert fake.sent[-1] == mac(OTHER_MAC) + mac(OUR_MAC) + b"\x86\xdd" + b"r"
    assert link.counters["host_tx_ipv6"] == 2


def test_as_dict_and_fileno() -> None:
    link, fake = make()
    assert link.fileno() == 42
    assert link.as_dict() == {
        "mac": OUR_MAC,
        "host_mac": None,
        "gateway_ipv4": GATEWAY4,
        "home_ipv4": HOME4,
        "ipv6_gateway": GATEWAY6,
        "pool": "198.18.0.0/24",
    }
    receive(link, fake, ipv4_frame())
    assert link.as_dict()["host_mac"] == HOST_MAC


def test_host_super_frames_are_kept_whole_or_cut() -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    link, fake = make()
    payload = bytes(3000)
    tso4 = bytes(Ether(src=HOST_MAC, dst=OUR_MAC) / IP(src=HOME4, dst="198.18.0.9")
                 / TCP(dport=80) / payload)
    tso6 = bytes(Ether(src=HOST_MAC, dst=OUR_MAC) / IPv6(src=HOA, dst="2001:db8:8::1")
                 / TCP(dport=80) / payload)
    fake.inbox += [tso4, tso6]
    fake.offloads[tso4] = Offload(F_NEEDS_CSUM, GSO_TCPV4, 54, 1400, 34, 16)
    fake.offloads[tso6] = Offload(F_NEEDS_CSUM, GSO_TCPV6, 74, 1400, 54, 16)
    ipv4, ipv6 = link.receive()
    assert ipv4 == []
    assert [(bytes(p), o.gso_size) for p, o in link.ipv4_super_frames] == [(tso4[14:], 1400)]
    # IPv6 of the home address (E2) has no fast path: cut into wire-sized packets here
    assert [len(p) for p in ipv6] == [40 + 20 + 1400, 40 + 20 + 1400, 40 + 20 + 200]


def test_super_frames_to_the_gateway_are_cut_for_the_agent_itself() -> None:
    from netstack.wire.offload import GSO_UDP_L4

    link, fake = make()
    dns = bytes(Ether(src=HOST_MAC, dst=OUR_MAC) / IP(src=HOME4, dst=GATEWAY4)
                / UDP(sport=5353, dport=53) / bytes(300))
    fake.inbox.append(dns)
    fake.offloads[dns] = Offload(F_NEEDS_CSUM, GSO_UDP_L4, 42, 100, 34, 6)
    ipv4, ipv6 = link.receive()
    assert link.ipv4_super_frames == [] and ipv6 == []
    assert [len(p) for p in ipv4] == [128, 128, 128]  # three datagrams of 100 octets
