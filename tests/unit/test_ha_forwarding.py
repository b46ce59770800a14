"""HomeAgentDataPlane: intercepted packets tunnelled to the CoA, reverse tunnel checked."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv6Address

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

from network.home_agent.forwarding import HomeAgentDataPlane

HA = "2001:db8:6::1"
HOA = "2001:db8:6::1000"
HOA2 = "2001:db8:6::2000"
COA = "2001:db8:a::2"
COA2 = "2001:db8:b::2"
CN = "2001:db8:5::7"
HA_MAC = bytes.fromhex("020000000601")
ROUTER_MAC = bytes.fromhex("0200000006fe")


def p(text: str) -> bytes:
    return IPv6Address(text).packed


def packet(src: str = CN, dst: str = HOA, *, hlim: int = 64, tc: int = 0, size: int = 10) -> bytes:
    return bytes(IPv6(src=src, dst=dst, hlim=hlim, tc=tc) / UDP(sport=53, dport=4000) / Raw(b"z" * size))


def plane(bindings: dict[bytes, bytes] | None = None, *, mtu: int = 1500) -> HomeAgentDataPlane:
    table = {p(HOA): p(COA)} if bindings is None else bindings
    return HomeAgentDataPlane(p(HA), HA_MAC, Counter(), table.get, link_mtu=mtu)


# ------------------------------------------------------------------ intercept (508-509)


def test_intercept_builds_the_outer_header_and_decrements_the_inner_hop_limit() -> None:
    dp = plane()
    original = packet(hlim=64, tc=0x20)
    outer = dp.intercept(memoryview(original), p(COA))
    assert isinstance(outer, bytes)
    forwarded = bytearray(original)
    forwarded[7] = 63
    assert outer == bytes(IPv6(src=HA, dst=COA, nh=41, hlim=64, tc=0x20) / Raw(bytes(forwarded)))
    assert dp.counters == Counter({"tx_tunnelled": 1})


def test_intercept_does_not_modify_the_original_packet() -> None:
    dp = plane()
    original = bytearray(packet(hlim=10))
    dp.intercept(memoryview(original), p(COA))
    assert original[7] == 10


def test_intercept_reuses_one_encapsulator_per_care_of_address() -> None:
    dp = plane()
    first = dp.intercept(memoryview(packet()), p(COA))
    second = dp.intercept(memoryview(packet(dst=HOA2)), p(COA2))
    third = dp.intercept(memoryview(packet()), p(COA))
    assert first is not None and second is not None and third is not None
    assert first[24:40] == p(COA) and second[24:40] == p(COA2) and third == first
    assert len(dp._encapsulators) == 2
    dp.forget(p(COA))
    assert list(dp._encapsulators) == [p(COA2)]
    dp.forget(p(COA))  # forgetting twice is harmless


@pytest.mark.parametrize("hop_limit", [0, 1])
def test_intercept_with_exhausted_hop_limit(hop_limit: int) -> None:
    dp = plane()
    assert dp.intercept(memoryview(packet(hlim=hop_limit)), p(COA)) is None
    assert dp.counters == Counter({"rx_dropped_hop_limit": 1})


def test_intercept_hop_limit_two_leaves_one() -> None:
    dp = plane()
    outer = dp.intercept(memoryview(packet(hlim=2)), p(COA))
    assert outer is not None and outer[47] == 1 and outer[7] == 64


def test_intercept_too_big_for_the_tunnel() -> None:
    dp = plane(mtu=1280)
    fits = packet(size=1280 - 40 - 48)  # 1240 octets + 40 outer = 1280
    too_big = packet(size=1280 - 40 - 48 + 1)
    assert len(fits) == 1240
    assert dp.intercept(memoryview(fits), p(COA)) is not None
    assert dp.intercept(memoryview(too_big), p(COA)) is None
    assert dp.counters == Counter({"tx_tunnelled": 1, "tunnel_packet_too_big": 1})


# ------------------------------------------------------------------ detunnel (515-516)


def reverse(inner: bytes, *, src: str = COA, dst: str = HA) -> bytes:
    return bytes(IPv6(src=src, dst=dst, nh=41) / Raw(inner))


def test_detunnel_from_the_bound_care_of_address() -> None:
    dp = plane()
    inner = packet(src=HOA, dst=CN)
    result = dp.detunnel(memoryview(reverse(inner)))
    assert isinstance(result, memoryview) and result.tobytes() == inner
    assert dp.counters == Counter({"rx_detunnelled": 1})


def test_detunnel_leaves_the_hop_limit_to_the_forwarder() -> None:
    dp = plane()
    result = dp.detunnel(memoryview(reverse(packet(src=HOA, dst=CN, hlim=33))))
    assert result is not None and result[7] == 33


def test_detunnel_drops_padding() -> None:
    dp = plane()
    inner = packet(src=HOA, dst=CN)
    result = dp.detunnel(memoryview(reverse(inner) + bytes(6)))
    assert result is not None and result.tobytes() == inner


def test_detunnel_from_another_care_of_address_is_refused() -> None:
    # HOA is bound to COA; a packet claiming HOA from COA2 is spoofed (RFC 6275 10.4.5).
    dp = plane({p(HOA): p(COA), p(HOA2): p(COA2)})
    assert dp.detunnel(memoryview(reverse(packet(src=HOA, dst=CN), src=COA2))) is None
    assert dp.counters == Counter({"rx_dropped_reverse_tunnel_no_binding": 1})
    assert dp.detunnel(memoryview(reverse(packet(src=HOA2, dst=CN), src=COA2))) is not None


def test_detunnel_for_an_unbound_home_address() -> None:
    dp = plane()
    assert dp.detunnel(memoryview(reverse(packet(src=HOA2, dst=CN)))) is None
    assert dp.counters == Counter({"rx_dropped_reverse_tunnel_no_binding": 1})


@pytest.mark.parametrize("hop_limit", [0, 1])
def test_detunnel_inner_hop_limit_exhausted(hop_limit: int) -> None:
    dp = plane()
    assert dp.detunnel(memoryview(reverse(packet(src=HOA, dst=CN, hlim=hop_limit)))) is None
    assert dp.counters == Counter({"rx_dropped_hop_limit": 1})


@pytest.mark.parametrize("payload_length", [0, 39, 0xFFFF])
def test_detunnel_malformed_payload_length(payload_length: int) -> None:
    dp = plane()
    outer = bytearray(reverse(packet(src=HOA, dst=CN)))
    outer[4:6] = payload_length.to_bytes(2, "big")
    assert dp.detunnel(memoryview(outer)) is None
    assert dp.counters == Counter({"rx_dropped_malformed": 1})


def test_detunnel_inner_not_ipv6() -> None:
    dp = plane()
    inner = bytearray(packet(src=HOA, dst=CN))
    inner[0] = 0x45
    assert dp.detunnel(memoryview(reverse(bytes(inner)))) is None
    assert dp.counters == Counter({"rx_dropped_malformed": 1})


# ------------------------------------------------------------------ frame


def test_frame_without_next_hop() -> None:
    dp = plane()
    assert not dp.next_hop_known
    assert dp.frame(b"\x60" + bytes(39)) is None


def test_frame_with_next_hop() -> None:
    dp = plane()
    dp.set_next_hop(ROUTER_MAC)
    assert dp.next_hop_known
    body = packet()
    assert dp.frame(body) == ROUTER_MAC + HA_MAC + b"\x86\xdd" + body
    assert dp.frame(bytearray(body)) == ROUTER_MAC + HA_MAC + b"\x86\xdd" + body
    dp.set_next_hop(None)
    assert not dp.next_hop_known and dp.frame(body) is None
