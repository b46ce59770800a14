"""Per-flow ledger of the guest's two ESP terminations (guest_agent/terminations.py)."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address

from guest_agent.terminations import TerminationLedger

CN, HOA = IPv6Address("2001:db8:8::1001").packed, IPv6Address("2001:db8:6::1000").packed


def ipv6(next_header: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB", 0x60000000, len(payload), next_header, 64) + CN + HOA + payload


def udp(sport: int, dport: int) -> bytes:
    return ipv6(17, struct.pack("!HHHH", sport, dport, 8, 0))


def esp(spi: int, seq: int) -> bytes:
    return ipv6(50, struct.pack("!II", spi, seq) + bytes(32))


def test_double_termination_is_counted_once_per_layer_per_flow() -> None:
    ledger = TerminationLedger()
    for seq in range(1, 4):
        ledger.outer(esp(0x2002, seq))  # the tunnel layer handed on inner ESP
        ledger.inner(esp(0x2002, seq), udp(40000, 30000))
    ledger.end_batch()
    ledger.outer(udp(5060, 5062))  # signalling: only the tunnel layer
    ledger.inner(esp(0x2002, 9), udp(40000, 30000))  # at home: only the end-to-end layer
    rows = {(r["sport"], r["dport"]): r for r in ledger.as_list()}
    assert rows[(40000, 30000)]["mobility_terminated"] == 3
    assert rows[(40000, 30000)]["end_to_end_terminated"] == 4
    assert rows[(5060, 5062)]["mobility_terminated"] == 1
    assert rows[(5060, 5062)]["end_to_end_terminated"] == 0
    assert rows[(5060, 5062)]["src"] == "2001:db8:8::1001"


def test_ledger_is_bounded() -> None:
    ledger = TerminationLedger(max_flows=4)
    for port in range(10):
        ledger.outer(udp(port, 1))
    assert [r["sport"] for r in ledger.as_list()] == [6, 7, 8, 9]
