"""Helpers shared by the ND tests: feed real encoded ND packets to an NdHost and decode what
it sends (the real icmpv6 codec both ways)."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from netstack.nd import NdConfig, NdHost
from netstack.nd.events import NdEvent
from netstack.wire.icmpv6 import build_icmpv6_packet, decode_icmpv6_packet
from netstack.wire.icmpv6_types import (
    ICMPv6Message,
    PrefixInformation,
    RouterAdvertisement,
    SourceLinkLayerAddress,
)
from netstack.wire.ipv6 import ParsedPacket, parse_ipv6_packet

MAC = bytes.fromhex("020000000001")
ROUTER_A = IPv6Address("fe80::a")
ROUTER_A_MAC = bytes.fromhex("02000000000a")
ROUTER_B = IPv6Address("fe80::b")
ROUTER_B_MAC = bytes.fromhex("02000000000b")
PREFIX_A = IPv6Network("2001:db8:a::/64")
PREFIX_B = IPv6Network("2001:db8:b::/64")
# EUI-64 of MAC 02:00:00:00:00:01: U/L bit flipped -> 0000:00ff:fe00:0001
COA_A = IPv6Address("2001:db8:a::ff:fe00:1")
COA_B = IPv6Address("2001:db8:b::ff:fe00:1")
LINK_LOCAL = IPv6Address("fe80::ff:fe00:1")

@dataclass(frozen=True)
class Sent:
    dst_mac: bytes
    packet: ParsedPacket
    message: ICMPv6Message | None


def make_host(**overrides: object) -> NdHost:
    """Deterministic by default: no random RS delay, exact ReachableTime."""
    config = NdConfig(
        **{"max_rtr_solicitation_delay": 0.0, "randomize_reachable_time": False, **overrides}
    )
    return NdHost(MAC, config=config)


def sent(host: NdHost) -> list[Sent]:
    out = []
    for dst_mac, raw in host.frames_to_send():
        packet = parse_ipv6_packet(raw)
        message = decode_icmpv6_packet(packet) if packet.upper_protocol == 58 else None
        out.append(Sent(dst_mac, packet, message))
    return out


def messages_of(items: list[Sent], kind: type) -> list[Sent]:
    return [s for s in items if isinstance(s.message, kind)]


def events(host: NdHost) -> list[NdEvent]:
    out = []
    while (event := host.next_event()) is not None:
        out.append(event)
    return out


def deliver(
    host: NdHost,
    src: IPv6Address,
    dst: IPv6Address,
    message: ICMPv6Message,
    src_mac: bytes,
    now: float,
    *,
    hop_limit: int = 255,
) -> None:
    """Encode with the real codec, parse it back, and feed it to the host."""
    packet = parse_ipv6_packet(build_icmpv6_packet(src, dst, message, hop_limit=hop_limit))
    host.receive(
        packet.src, packet.dst, packet.hop_limit, decode_icmpv6_packet(packet), src_mac, now
    )


def router_advertisement(
    prefixes: tuple[IPv6Network, ...] = (PREFIX_A,),
    *,
    router_mac: bytes | None = ROUTER_A_MAC,
    router_lifetime: int = 1800,
    valid: int = 86400,
    preferred: int = 14400,
    extra: tuple = (),
) -> RouterAdvertisement:
    options: tuple = ()
    if router_mac is not None:
        options += (SourceLinkLayerAddress(router_mac),)
    options += tuple(PrefixInformation(p, valid, preferred) for p in prefixes)
    return RouterAdvertisement(router_lifetime=router_lifetime, options=options + extra)


def run_until(host: NdHost, end: float, start: float = 0.0) -> float:
    """Fire every timer up to `end` (fake clock); returns the time of the last one."""
    now = start
    while (deadline := host.get_timer()) is not None and deadline <= end:
        now = max(now, deadline)
        host.handle_timer(now)
    return now
