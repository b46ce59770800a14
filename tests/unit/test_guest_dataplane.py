"""GuestDataPlane: send routine 100 (tunnel to the HA) and receive routine 120 (from the HA)."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv6Address

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

from guest_agent.dataplane import GuestDataPlane

HOA = "2001:db8:6::1000"
HA = "2001:db8:6::1"
COA = "2001:db8:a::2"
OTHER_COA = "2001:db8:b::2"
CN = "2001:db8:5::7"
OWN_MAC = bytes.fromhex("020000000a02")
ROUTER_MAC = bytes.fromhex("020000000a01")


def p(text: str) -> bytes:
    return IPv6Address(text).packed


def inner(src: str = HOA, dst: str = CN, *, tc: int = 0, hlim: int = 64, data: bytes = b"hello") -> bytes:
    return bytes(IPv6(src=src, dst=dst, tc=tc, hlim=hlim) / UDP(sport=4000, dport=53) / Raw(data))


def tunnelled(packet: bytes, *, src: str = HA, dst: str = COA) -> bytes:
    return bytes(IPv6(src=src, dst=dst, nh=41, hlim=64) / Raw(packet))


def plane(*, tunnel: bool = True, next_hop: bool = True) -> GuestDataPlane:
    dp = GuestDataPlane(p(HOA), OWN_MAC, Counter())
    if tunnel:
        dp.set_tunnel(p(COA), p(HA))
    if next_hop:
        dp.set_next_hop(ROUTER_MAC)
    return dp


# ------------------------------------------------------------------ send routine 100


def test_outbound_frame_is_ethernet_plus_outer_header_plus_inner() -> None:
    dp = plane()
    packet = inner(tc=0xB8)
    frames, unresolved = dp.outbound([packet])
    assert unresolved == []
    [frame] = frames
    assert frame[:14] == ROUTER_MAC + OWN_MAC + b"\x86\xdd"
    expected_outer = IPv6(src=COA, dst=HA, nh=41, hlim=64, tc=0xB8) / Raw(packet)
    assert frame[14:] == bytes(expected_outer)
    assert dp.counters == Counter({"tx_tunnelled": 1})


def test_outbound_batch_counts_every_tunnelled_packet() -> None:
    dp = plane()
    frames, _ = dp.outbound([inner(data=bytes([i]) * i) for i in range(1, 4)])
    assert [len(f) for f in frames] == [14 + 40 + 48 + i for i in range(1, 4)]
    assert dp.counters["tx_tunnelled"] == 3


def test_outbound_without_binding_drops_everything() -> None:
    dp = plane(tunnel=False)
    frames, unresolved = dp.outbound([inner(), inner()])
    assert (frames, unresolved) == ([], [])
    assert dp.counters == Counter({"tx_dropped_no_binding": 2})
    assert not dp.tunnel_up


def test_outbound_after_clear_tunnel_drops() -> None:
    dp = plane()
    assert dp.tunnel_up
    dp.clear_tunnel()
    assert not dp.tunnel_up and dp.care_of_address is None and dp.home_agent is None
    assert dp.outbound([inner()]) == ([], [])
    assert dp.counters["tx_dropped_no_binding"] == 1


def test_outbound_drops_packets_not_from_the_home_address() -> None:
    dp = plane()
    frames, unresolved = dp.outbound([inner(src="2001:db8:6::2000"), inner()])
    assert len(frames) == 1 and unresolved == []
    assert dp.counters == Counter({"tx_dropped_not_home_address": 1, "tx_tunnelled": 1})


@pytest.mark.parametrize(
    "packet",
    [
        b"\x45" + bytes(59),  # IPv4
        bytes(inner())[:39],  # shorter than an IPv6 header
        b"",
    ],
)
def test_outbound_drops_non_ipv6(packet: bytes) -> None:
    dp = plane()
    assert dp.outbound([packet]) == ([], [])
    assert dp.counters == Counter({"tx_dropped_not_ipv6": 1})


def test_outbound_with_unresolved_next_hop_returns_outer_packets() -> None:
    dp = plane(next_hop=False)
    packet = inner()
    frames, unresolved = dp.outbound([packet])
    assert frames == []
    assert unresolved == [bytes(IPv6(src=COA, dst=HA, nh=41, hlim=64) / Raw(packet))]
    assert isinstance(unresolved[0], bytes)
    assert dp.counters == Counter({"tx_tunnelled": 1})


def test_set_next_hop_none_forgets_the_router() -> None:
    dp = plane()
    dp.set_next_hop(None)
    frames, unresolved = dp.outbound([inner()])
    assert frames == [] and len(unresolved) == 1


def test_outbound_at_home_is_native() -> None:
    dp = plane(tunnel=False)
    dp.at_home = True
    packet = inner()
    frames, unresolved = dp.outbound([packet])
    assert frames == [ROUTER_MAC + OWN_MAC + b"\x86\xdd" + packet]
    assert unresolved == []
    assert dp.counters == Counter({"tx_native": 1})


def test_set_tunnel_leaves_home() -> None:
    dp = plane(tunnel=False)
    dp.at_home = True
    dp.set_tunnel(p(COA), p(HA))
    assert dp.at_home is False and dp.tunnel_up
    frames, _ = dp.outbound([inner()])
    assert frames[0][14 + 6] == 41


# ------------------------------------------------------------------ receive routine 120


def test_inbound_from_the_home_agent_is_detunnelled() -> None:
    dp = plane()
    packet = inner(src=CN, dst=HOA)
    result = dp.inbound(memoryview(tunnelled(packet)))
    assert isinstance(result, memoryview)
    assert result.tobytes() == packet
    assert dp.counters == Counter({"rx_detunnelled": 1})


def test_inbound_ignores_link_padding_after_the_outer_payload() -> None:
    dp = plane()
    packet = inner(src=CN, dst=HOA)
    result = dp.inbound(memoryview(tunnelled(packet) + bytes(8)))
    assert result is not None and result.tobytes() == packet


def test_inbound_with_forged_outer_source_is_dropped() -> None:
    dp = plane()
    forged = tunnelled(inner(src=CN, dst=HOA), src="2001:db8:66::1")
    assert dp.inbound(memoryview(forged)) is None
    assert dp.counters == Counter({"rx_dropped_tunnel_bad_outer_source": 1})


def test_inbound_tunnel_not_for_our_care_of_address() -> None:
    dp = plane()
    assert dp.inbound(memoryview(tunnelled(inner(src=CN, dst=HOA), dst=OTHER_COA))) is None
    assert dp.counters == Counter({"rx_dropped_tunnel_not_for_us": 1})


def test_inbound_tunnel_without_binding_is_not_for_us() -> None:
    dp = plane(tunnel=False)
    assert dp.inbound(memoryview(tunnelled(inner(src=CN, dst=HOA)))) is None
    assert dp.counters == Counter({"rx_dropped_tunnel_not_for_us": 1})


def test_inbound_inner_not_for_the_home_address() -> None:
    dp = plane()
    assert dp.inbound(memoryview(tunnelled(inner(src=CN, dst="2001:db8:6::2000")))) is None
    assert dp.counters == Counter({"rx_dropped_tunnel_inner_not_home_address": 1})


def test_inbound_inner_not_ipv6() -> None:
    dp = plane()
    fake_inner = bytearray(inner(src=CN, dst=HOA))
    fake_inner[0] = 0x45
    assert dp.inbound(memoryview(tunnelled(bytes(fake_inner)))) is None
    assert dp.counters == Counter({"rx_dropped_tunnel_inner_not_home_address": 1})


@pytest.mark.parametrize("payload_length", [0, 39, 10_000])
def test_inbound_malformed_outer_payload_length(payload_length: int) -> None:
    dp = plane()
    outer = bytearray(tunnelled(inner(src=CN, dst=HOA)))
    outer[4:6] = payload_length.to_bytes(2, "big")
    assert dp.inbound(memoryview(outer)) is None
    assert dp.counters == Counter({"rx_dropped_malformed": 1})


def test_inbound_truncated_outer_payload() -> None:
    dp = plane()
    outer = tunnelled(inner(src=CN, dst=HOA))
    assert dp.inbound(memoryview(outer[:-1])) is None
    assert dp.counters == Counter({"rx_dropped_malformed": 1})


def test_inbound_native_at_home_is_delivered() -> None:
    dp = plane(tunnel=False)
    dp.at_home = True
    packet = inner(src=CN, dst=HOA)
    result = dp.inbound(memoryview(packet))
    assert result is not None and result.tobytes() == packet
    assert dp.counters == Counter({"rx_native": 1})


def test_inbound_native_away_from_home_is_not_for_us() -> None:
    dp = plane()
    assert dp.inbound(memoryview(inner(src=CN, dst=HOA))) is None
    assert dp.counters == Counter({"rx_dropped_not_for_us": 1})


def test_inbound_native_at_home_for_another_address() -> None:
    dp = plane(tunnel=False)
    dp.at_home = True
    assert dp.inbound(memoryview(inner(src=CN, dst="2001:db8:6::2000"))) is None
    assert dp.counters == Counter({"rx_dropped_not_for_us": 1})


class _RefusingSecurity:
    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse
        self.asked = 0

    def refuse_plain_tunnel(self) -> bool:
        self.asked += 1
        return self.refuse


def test_inbound_plain_tunnel_refused_when_esp_is_required() -> None:
    dp = plane()
    security = _RefusingSecurity(refuse=True)
    dp.security = security  # type: ignore[assignment]
    assert dp.inbound(memoryview(tunnelled(inner(src=CN, dst=HOA)))) is None
    assert security.asked == 1
    assert dp.counters["rx_detunnelled"] == 0


def test_inbound_plain_tunnel_accepted_when_esp_is_optional() -> None:
    dp = plane()
    dp.security = _RefusingSecurity(refuse=False)  # type: ignore[assignment]
    assert dp.inbound(memoryview(tunnelled(inner(src=CN, dst=HOA)))) is not None
    assert dp.counters == Counter({"rx_detunnelled": 1})


def test_round_trip_between_two_planes() -> None:
    # The HA side is a second plane with CoA/HA swapped: what one sends, the other accepts.
    sender = plane()
    receiver = GuestDataPlane(p(HOA), OWN_MAC, Counter())
    receiver.set_tunnel(p(HA), p(COA))  # receiver's "CoA" is the sender's outer dst
    packet = bytes(IPv6(src=HOA, dst=HOA) / UDP() / Raw(b"x"))
    [frame] = sender.outbound([packet])[0]
    result = receiver.inbound(memoryview(frame)[14:])
    assert result is not None and result.tobytes() == packet


@pytest.mark.parametrize("tunnel", [True, False])
def test_link_scope_chatter_of_hoa0_is_ignored_not_dropped(tunnel: bool) -> None:
    dp = plane(tunnel=tunnel)
    router_solicitation = inner(src="fe80::1", dst="ff02::2")
    mld_report = inner(src="::", dst="ff02::16")
    frames, unresolved = dp.outbound([router_solicitation, mld_report, inner()])
    assert dp.counters["tx_ignored_link_scope"] == 2
    if tunnel:
        assert len(frames) == 1 and dp.counters["tx_tunnelled"] == 1
    else:
        assert frames == [] and dp.counters["tx_dropped_no_binding"] == 1
    assert unresolved == []


# ------------------------------------------------------------------ GSO super-frames


def _tcp_super_frame(size: int) -> bytearray:
    from scapy.layers.inet import TCP

    return bytearray(bytes(IPv6(src=HOA, dst=CN, tc=0x20) / TCP(sport=1, dport=2, seq=9, flags="PA")
                           / (bytes(range(256)) * (size // 256))))


def test_super_frame_is_tunnelled_once_with_partial_checksums() -> None:
    from netstack.wire.checksum import pseudo_header_sum
    from netstack.wire.offload import complete_checksum

    dp = plane()
    dp.partial_checksums = True
    packet = _tcp_super_frame(4096)
    items = dp.tunnel_super_frame(packet, 1400)
    assert items is not None and len(items) == 3
    seq = 9
    for frame, offload in items:
        assert offload.needs_checksum and not offload.is_gso
        assert (offload.csum_start, offload.csum_offset) == (14 + 80, 16)
        assert frame[:14] == ROUTER_MAC + OWN_MAC + b"\x86\xdd"
        outer = IPv6(bytes(frame[14:]))
        assert (outer.src, outer.dst, outer.nh, outer.tc) == (COA, HA, 41, 0x20)
        inner_packet = outer.payload
        payload = bytes(inner_packet.payload.payload)
        assert outer.plen == 40 + 20 + len(payload) and inner_packet.plen == 20 + len(payload)
        assert inner_packet.payload.seq == seq
        seq += len(payload)
        tcp_length = 20 + len(payload)
        assert inner_packet.payload.chksum == pseudo_header_sum(p(HOA), p(CN), tcp_length, 6)
        finished = bytearray(frame)
        complete_checksum(finished, offload.csum_start, offload.csum_offset)
        reference = IPv6(bytes(finished[54:]))
        received = reference.payload.chksum
        del reference.payload.chksum
        assert IPv6(bytes(reference)).payload.chksum == received
    assert seq == 9 + 4096
    assert dp.counters["tx_tunnelled"] == 3 and dp.counters["tx_tunnelled_super_frames"] == 1


@pytest.mark.parametrize("setup", ["plain link", "no tunnel", "no next hop", "foreign source"])
def test_super_frame_falls_back_to_the_per_packet_path(setup: str) -> None:
    dp = plane(tunnel=setup != "no tunnel", next_hop=setup != "no next hop")
    dp.partial_checksums = setup != "plain link"
    packet = _tcp_super_frame(4096)
    if setup == "foreign source":
        packet[8:24] = p(CN)
    assert dp.tunnel_super_frame(packet, 1400) is None
