"""In-process data-path benchmarks: no I/O, packets per second over bounded loops.

Each case processes one batch of BATCH packets per call; a run is `iterations` calls timed with
time.perf_counter, and the best of `repeats` runs is reported (the least disturbed by the other
core's load). Every case is checked once before timing so a path that silently drops packets
cannot report a flattering rate.
"""

from __future__ import annotations

import importlib
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address

from benchmarks.report import Measurement, Skipped
from guest_agent.dataplane import GuestDataPlane
from netstack.wire import ip6ip6
from netstack.wire.checksum import internet_checksum, pseudo_header_sum
from network.home_agent.forwarding import HomeAgentDataPlane

BATCH = 64
PAYLOAD_SIZES = (100, 1400)
DEFAULT_ITERATIONS = 2000
DEFAULT_REPEATS = 3

HOME_ADDRESS = IPv6Address("2001:db8:6::1000").packed
HOME_AGENT = IPv6Address("2001:db8:6::1").packed
CARE_OF_ADDRESS = IPv6Address("2001:db8:b::1000").packed
CORRESPONDENT = IPv6Address("2001:db8:8::1001").packed
GUEST_MAC = bytes.fromhex("020000000001")
ROUTER_MAC = bytes.fromhex("020000000002")
HA_MAC = bytes.fromhex("020000000003")

IPPROTO_UDP = 17
_IPV6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")


def udp6_packet(src: bytes, dst: bytes, payload_len: int, sport: int = 40000,
                dport: int = 5201, hop_limit: int = 64) -> bytes:
    """An IPv6/UDP packet with a correct UDP checksum (bytes only, no scapy on this path)."""
    payload = bytes((i * 7) & 0xFF for i in range(payload_len))
    udp_len = 8 + payload_len
    header = _UDP.pack(sport, dport, udp_len, 0)
    checksum = internet_checksum(header + payload, pseudo_header_sum(src, dst, udp_len, IPPROTO_UDP))
    udp = _UDP.pack(sport, dport, udp_len, checksum or 0xFFFF) + payload
    return _IPV6.pack(0x60000000, udp_len, IPPROTO_UDP, hop_limit, src, dst) + udp


def udp4_packet(src: bytes, dst: bytes, payload_len: int, sport: int = 40000,
                dport: int = 5201, ttl: int = 64) -> bytes:
    """An IPv4/UDP packet with correct header and UDP checksums."""
    payload = bytes((i * 7) & 0xFF for i in range(payload_len))
    udp_len = 8 + payload_len
    pseudo = src + dst + struct.pack("!BBH", 0, IPPROTO_UDP, udp_len)
    header = _UDP.pack(sport, dport, udp_len, 0)
    checksum = internet_checksum(pseudo + header + payload)
    udp = _UDP.pack(sport, dport, udp_len, checksum or 0xFFFF) + payload
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 1, 0x4000, ttl,
                               IPPROTO_UDP, 0, src, dst))
    ip[10:12] = struct.pack("!H", internet_checksum(ip))
    return bytes(ip) + udp


@dataclass(frozen=True)
class Case:
    """One benchmark: `step()` processes a batch and returns how many packets came out."""

    name: str
    payload: int
    packet_len: int  # length of the packet the step consumes (for Mbit/s)
    step: Callable[[], int]


def time_case(case: Case, iterations: int, repeats: int) -> Measurement:
    expected = case.step()
    if expected != BATCH:
        raise RuntimeError(f"{case.name}: one batch produced {expected} of {BATCH} packets")
    best = float("inf")
    step = case.step
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            step()
        best = min(best, time.perf_counter() - start)
    packets = iterations * BATCH
    pps = packets / best
    return Measurement(
        group="inprocess",
        name=case.name,
        pps=pps,
        mbit_s=pps * case.packet_len * 8 / 1e6,
        packets=packets,
        seconds=best,
        detail={"payload": case.payload, "batch": BATCH, "packet_len": case.packet_len,
                "iterations": iterations, "repeats": repeats},
    )


# ---------------------------------------------------------------------------------- cases


def guest_cases(payload: int) -> list[Case]:
    inner = udp6_packet(HOME_ADDRESS, CORRESPONDENT, payload)
    outbound_batch = [inner] * BATCH
    sender = GuestDataPlane(HOME_ADDRESS, GUEST_MAC, Counter())
    sender.set_tunnel(CARE_OF_ADDRESS, HOME_AGENT)
    sender.set_next_hop(ROUTER_MAC)

    def send() -> int:
        frames, unresolved = sender.outbound(outbound_batch)
        return len(frames)

    reply = udp6_packet(CORRESPONDENT, HOME_ADDRESS, payload)
    outer = bytes(ip6ip6.encapsulate(reply, HOME_AGENT, CARE_OF_ADDRESS))
    inbound_batch = [memoryview(outer)] * BATCH
    receiver = GuestDataPlane(HOME_ADDRESS, GUEST_MAC, Counter())
    receiver.set_tunnel(CARE_OF_ADDRESS, HOME_AGENT)
    inbound = receiver.inbound

    def receive() -> int:
        n = 0
        for packet in inbound_batch:
            if inbound(packet) is not None:
                n += 1
        return n

    return [
        Case("guest send 100 (outbound)", payload, len(inner), send),
        Case("guest receive 120 (inbound)", payload, len(outer), receive),
    ]


def home_agent_cases(payload: int) -> list[Case]:
    bindings = {HOME_ADDRESS: CARE_OF_ADDRESS}
    dataplane = HomeAgentDataPlane(HOME_AGENT, HA_MAC, Counter(), bindings.get)
    dataplane.set_next_hop(ROUTER_MAC)

    to_mn = udp6_packet(CORRESPONDENT, HOME_ADDRESS, payload)
    intercept_batch = [memoryview(to_mn)] * BATCH
    intercept = dataplane.intercept
    lookup = bindings.get

    def do_intercept() -> int:
        n = 0
        for packet in intercept_batch:
            # the daemon's path: binding lookup on the inner destination, then encapsulation
            coa = lookup(bytes(packet[24:40]))
            if coa is not None and intercept(packet, coa) is not None:
                n += 1
        return n

    reverse = bytes(ip6ip6.encapsulate(udp6_packet(HOME_ADDRESS, CORRESPONDENT, payload),
                                       CARE_OF_ADDRESS, HOME_AGENT))
    detunnel_batch = [memoryview(reverse)] * BATCH
    detunnel = dataplane.detunnel

    def do_detunnel() -> int:
        n = 0
        for packet in detunnel_batch:
            if detunnel(packet) is not None:
                n += 1
        return n

    return [
        Case("HA lookup+intercept (encap)", payload, len(to_mn), do_intercept),
        Case("HA detunnel", payload, len(reverse), do_detunnel),
    ]


def ip6ip6_cases(payload: int) -> list[Case]:
    inner = udp6_packet(HOME_ADDRESS, CORRESPONDENT, payload)
    batch = [inner] * BATCH
    encapsulate = ip6ip6.encapsulate

    def do_encapsulate() -> int:
        n = 0
        for packet in batch:
            encapsulate(packet, CARE_OF_ADDRESS, HOME_AGENT)
            n += 1
        return n

    encapsulator = ip6ip6.Encapsulator(CARE_OF_ADDRESS, HOME_AGENT)
    encapsulate_into = encapsulator.encapsulate_into
    buffer = bytearray(2048)

    def do_encapsulate_into() -> int:
        n = 0
        for packet in batch:
            if encapsulate_into(packet, buffer):
                n += 1
        return n

    outer = bytes(encapsulate(inner, CARE_OF_ADDRESS, HOME_AGENT))
    outer_batch = [outer] * BATCH
    decapsulate = ip6ip6.decapsulate

    def do_decapsulate() -> int:
        n = 0
        for packet in outer_batch:
            decapsulate(packet)
            n += 1
        return n

    return [
        Case("ip6ip6.encapsulate", payload, len(inner), do_encapsulate),
        Case("Encapsulator.encapsulate_into", payload, len(inner),
             do_encapsulate_into),
        Case("ip6ip6.decapsulate", payload, len(outer), do_decapsulate),
    ]


CLIENT_V4 = bytes((192, 0, 2, 2))
SERVER_V4 = bytes((192, 0, 2, 100))
ESP_SPI = 0x1000
ESP_KEY = bytes(range(20))  # AES-128 key || 4-octet salt (RFC 4106)


def translate_cases(payload: int) -> list[Case]:
    """RFC 7915 translation, alone and followed by the tunnel (the path to compare with TAYGA)."""
    from netstack.translate.rfc7915 import Rfc7915Translator

    translator = Rfc7915Translator()
    v4 = udp4_packet(CLIENT_V4, SERVER_V4, payload)
    batch4 = [v4] * BATCH
    to6 = translator.translate_4to6

    def four_to_six() -> int:
        n = 0
        for packet in batch4:
            n += len(to6(packet, HOME_ADDRESS, CORRESPONDENT))
        return n

    encapsulate = ip6ip6.Encapsulator(CARE_OF_ADDRESS, HOME_AGENT).encapsulate

    def four_to_six_tunnel() -> int:
        n = 0
        for packet in batch4:
            for translated in to6(packet, HOME_ADDRESS, CORRESPONDENT):
                encapsulate(translated)
                n += 1
        return n

    v6 = udp6_packet(CORRESPONDENT, HOME_ADDRESS, payload)
    batch6 = [v6] * BATCH
    to4 = translator.translate_6to4

    def six_to_four() -> int:
        n = 0
        for packet in batch6:
            n += len(to4(packet, SERVER_V4, CLIENT_V4))
        return n

    return [
        Case("RFC 7915 translate_4to6", payload, len(v4), four_to_six),
        Case("translate_4to6 + encapsulate", payload, len(v4), four_to_six_tunnel),
        Case("RFC 7915 translate_6to4", payload, len(v6), six_to_four),
    ]


def esp_cases(payload: int) -> list[Case]:
    """ESP (RFC 4303, AES-GCM-16) around a tunnelled inner packet, both directions."""
    from netstack.ipsec import esp
    from netstack.ipsec.replay import ReplayWindow
    from netstack.ipsec.sa import SecurityAssociation

    inner = udp6_packet(HOME_ADDRESS, CORRESPONDENT, payload)
    batch = [inner] * BATCH
    outbound = SecurityAssociation(spi=ESP_SPI, algorithm="aes-gcm-16", key=ESP_KEY)
    protect = esp.protect

    def do_protect() -> int:
        for packet in batch:
            protect(outbound, packet, ip6ip6.IPPROTO_IPV6, 0.0)
        return BATCH

    # Distinct sequence numbers 1..BATCH; the replay window is renewed for every batch so the
    # same packets can be opened again (one small allocation per 64 packets).
    sender = SecurityAssociation(spi=ESP_SPI, algorithm="aes-gcm-16", key=ESP_KEY)
    sealed = [protect(sender, inner, ip6ip6.IPPROTO_IPV6, 0.0) for _ in range(BATCH)]
    inbound = SecurityAssociation(spi=ESP_SPI, algorithm="aes-gcm-16", key=ESP_KEY)
    unprotect = esp.unprotect
    window = inbound.replay_window_size

    def do_unprotect() -> int:
        inbound.replay = ReplayWindow(window)
        n = 0
        for packet in sealed:
            if unprotect(inbound, packet, 0.0)[1]:
                n += 1
        return n

    return [
        Case("ESP protect (AES-GCM-16)", payload, len(inner), do_protect),
        Case("ESP unprotect (AES-GCM-16)", payload, len(sealed[0]), do_unprotect),
    ]


def optional_factories() -> tuple[list[CaseFactory], list[Skipped]]:
    """Cases for modules still being written (RFC 7915 translation, ESP): skipped when absent."""
    found: list[CaseFactory] = []
    skipped: list[Skipped] = []
    for name, factory, modules in (
        ("RFC 7915 translation", translate_cases, ("netstack.translate.rfc7915",)),
        ("ESP", esp_cases, ("netstack.ipsec.esp", "netstack.ipsec.sa", "netstack.ipsec.replay")),
    ):
        try:
            for module in modules:
                importlib.import_module(module)
            factory(PAYLOAD_SIZES[0])  # builds (and so checks) the cases once
        except Exception as exc:  # noqa: BLE001 - any failure of a module in progress = skip
            skipped.append(Skipped("inprocess", name, f"{type(exc).__name__}: {exc}"))
        else:
            found.append(factory)
    return found, skipped


CaseFactory = Callable[[int], list[Case]]
CORE_FACTORIES: tuple[CaseFactory, ...] = (guest_cases, home_agent_cases, ip6ip6_cases)


def run(iterations: int = DEFAULT_ITERATIONS, repeats: int = DEFAULT_REPEATS,
        optional: bool = True) -> tuple[list[Measurement], list[Skipped]]:
    """All in-process cases for each payload size; optional ones skip when their module is absent."""
    results: list[Measurement] = []
    skipped: list[Skipped] = []
    factories: list[CaseFactory] = list(CORE_FACTORIES)
    if optional:
        found, missing = optional_factories()
        factories.extend(found)
        skipped.extend(missing)
    for payload in PAYLOAD_SIZES:
        for factory in factories:
            for case in factory(payload):
                results.append(time_case(case, iterations, repeats))
    return results, skipped
