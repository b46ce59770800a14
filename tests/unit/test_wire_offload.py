"""Software GSO and checksum completion (netstack.wire.offload), cross-checked with scapy."""

from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from netstack.wire.checksum import ones_complement_sum, pseudo_header_sum
from netstack.wire.offload import (
    F_NEEDS_CSUM,
    GSO_NONE,
    GSO_TCPV6,
    Offload,
    SegmentationError,
    complete_checksum,
    segment,
)

MAC = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
PAYLOAD = bytes(range(256)) * 20  # 5120 octets: 3 full segments of 1400 and one of 920
MSS = 1400
INNER_SRC = socket.inet_pton(socket.AF_INET6, "2001:db8:6::1000")
INNER_DST = socket.inet_pton(socket.AF_INET6, "2001:db8:8::1001")


def _chunks() -> list[bytes]:
    return [PAYLOAD[i : i + MSS] for i in range(0, len(PAYLOAD), MSS)]


def test_offload_header_round_trip_and_shift() -> None:
    header = Offload(F_NEEDS_CSUM, GSO_TCPV6, 134, 1400, 94, 16)
    assert Offload.unpack(header.pack()) == header
    assert len(header.pack()) == 10
    assert header.is_gso and header.needs_checksum
    assert header.shifted(-40) == Offload(F_NEEDS_CSUM, GSO_TCPV6, 94, 1400, 54, 16)
    assert not Offload().is_gso


def test_tcpv4_super_frame_cut_like_the_kernel() -> None:
    frame = bytes(Ether(**MAC) / IP(src="192.0.2.2", dst="198.18.0.5", id=100, flags="DF", ttl=63)
                  / TCP(sport=40000, dport=5201, seq=1000, ack=7, flags="PAF") / PAYLOAD)
    segments = segment(frame, MSS)
    assert len(segments) == 4
    for index, (got, chunk) in enumerate(zip(segments, _chunks(), strict=True)):
        flags = "PAF" if index == 3 else "A"
        expected = bytes(Ether(**MAC) / IP(src="192.0.2.2", dst="198.18.0.5", id=100 + index,
                                           flags="DF", ttl=63)
                         / TCP(sport=40000, dport=5201, seq=1000 + index * MSS, ack=7, flags=flags)
                         / chunk)
        assert bytes(got) == expected, index


def test_tcp_in_ipv6_in_ipv6_partial_checksums() -> None:
    inner = (IPv6(src="2001:db8:6::1000", dst="2001:db8:8::1001", hlim=64)
             / TCP(sport=40000, dport=5201, seq=5, flags="CA") / PAYLOAD)
    frame = bytes(Ether(**MAC) / IPv6(src="2001:db8:b::5", dst="2001:db8:6::1", nh=41) / inner)
    segments = segment(frame, MSS, partial=True)
    assert len(segments) == 4
    for index, (got, chunk) in enumerate(zip(segments, _chunks(), strict=True)):
        parsed = Ether(bytes(got))
        assert parsed[IPv6].plen == 40 + 20 + len(chunk)
        assert parsed[IPv6][1].plen == 20 + len(chunk)
        tcp = parsed[IPv6][1][TCP]
        assert tcp.seq == 5 + index * MSS
        assert tcp.flags == ("CA" if index == 0 else "A")  # CWR only on the first segment
        assert bytes(tcp.payload) == chunk
        # CHECKSUM_PARTIAL: the field holds the pseudo-header sum; completing it gives scapy's.
        pseudo = pseudo_header_sum(INNER_SRC, INNER_DST, 20 + len(chunk), 6)
        assert tcp.chksum == pseudo
        buffer = bytearray(got)
        assert complete_checksum(buffer, 14 + 80, 16)
        recomputed = Ether(bytes(buffer))
        del recomputed[TCP].chksum
        assert Ether(bytes(buffer))[TCP].chksum == Ether(bytes(recomputed))[TCP].chksum


def test_udp_super_frame_without_link_header() -> None:
    packet = bytes(IP(src="192.0.2.2", dst="198.18.0.5", id=7) / UDP(sport=1, dport=2) / PAYLOAD)
    segments = segment(packet, 100, l3_offset=0)
    assert len(segments) == len(PAYLOAD) // 100 + 1
    for index, got in enumerate(segments):
        chunk = PAYLOAD[index * 100 : (index + 1) * 100]
        expected = bytes(IP(src="192.0.2.2", dst="198.18.0.5", id=7 + index)
                         / UDP(sport=1, dport=2) / chunk)
        assert bytes(got) == expected


def test_complete_checksum_writes_ffff_for_zero_and_refuses_bad_offsets() -> None:
    udp = bytearray(bytes(UDP(sport=1, dport=2, chksum=0) / b"\x00\x00"))
    # choose a field value so that the full sum is 0xFFFF: the result must be 0xFFFF, not 0
    partial = (~ones_complement_sum(bytes(udp))) & 0xFFFF
    udp[6:8] = partial.to_bytes(2, "big")
    assert complete_checksum(udp, 0, 6)
    assert udp[6:8] == b"\xff\xff"
    assert not complete_checksum(bytearray(4), 0, 6)


@pytest.mark.parametrize("layer", [IPv6(nh=0) / (b"\x06\x00" + bytes(6)), IP(proto=47)])
def test_unsupported_layers_are_refused(layer: object) -> None:
    frame = bytes(Ether(**MAC) / layer / PAYLOAD)  # type: ignore[operator]
    with pytest.raises(SegmentationError):
        segment(frame, MSS)


def test_gso_none_and_bad_size() -> None:
    assert GSO_NONE == 0
    frame = bytes(Ether(**MAC) / IP() / TCP() / b"x")
    with pytest.raises(SegmentationError):
        segment(frame, 0)
    assert len(segment(frame, MSS)) == 1
