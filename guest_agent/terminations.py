"""Per-flow count of the ESP terminations the guest performs (patent E5, Fig. 26; claims 1-8).

A correspondent's packet for the home address can be terminated twice: first by the mobility
layer (ESP tunnel mode, HA -> CoA), then by the end-to-end layer (ESP transport mode, CN ->
HoA). Each processor counts its own packets; this ledger ties the two to the flow the host
application sees (protocol, source, source port, destination, destination port), so
`status` shows for each flow how many of its packets each layer terminated.

Inputs: `outer(packet)` for every packet the mobility layer decrypted (what it handed on),
`inner(before, after)` for every packet the end-to-end layer decrypted. An end-to-end
packet is matched to its mobility termination by the inner ESP header's (SPI, sequence
number), which both layers see. Pending matches live for one receive batch (`end_batch`).
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from ipaddress import IPv6Address

_ESP, _TCP, _UDP = 50, 6, 17
_PROTOCOLS = {_TCP: "tcp", _UDP: "udp", 58: "icmpv6"}
_SPI_SEQ = struct.Struct("!II")
_PORTS = struct.Struct("!HH")
FlowKey = tuple[int, bytes, int, bytes, int]


def _flow(packet: bytes | bytearray | memoryview) -> FlowKey | None:
    if len(packet) < 40 or packet[0] >> 4 != 6:
        return None
    proto = packet[6]
    sport = dport = 0
    if proto in (_TCP, _UDP) and len(packet) >= 44:
        sport, dport = _PORTS.unpack_from(packet, 40)
    return proto, bytes(packet[8:24]), sport, bytes(packet[24:40]), dport


def _esp_id(packet: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    if len(packet) >= 48 and packet[6] == _ESP:
        spi, seq = _SPI_SEQ.unpack_from(packet, 40)
        return spi, seq
    return None


class TerminationLedger:
    def __init__(self, max_flows: int = 256) -> None:
        self.max_flows = max_flows
        self._flows: OrderedDict[FlowKey, list[int]] = OrderedDict()  # [mobility, end_to_end]
        self._pending: set[tuple[int, int]] = set()

    def _count(self, key: FlowKey, mobility: int, end_to_end: int) -> None:
        counts = self._flows.get(key)
        if counts is None:
            counts = self._flows[key] = [0, 0]
            if len(self._flows) > self.max_flows:
                self._flows.popitem(last=False)
        else:
            self._flows.move_to_end(key)
        counts[0] += mobility
        counts[1] += end_to_end

    def outer(self, packet: bytes | bytearray | memoryview) -> None:
        """The mobility layer terminated a packet; `packet` is what it handed on."""
        esp = _esp_id(packet)
        if esp is not None:
            self._pending.add(esp)  # counted with its flow once the end-to-end layer opens it
            return
        key = _flow(packet)
        if key is not None:
            self._count(key, 1, 0)

    def inner(self, before: bytes | bytearray | memoryview,
              after: bytes | bytearray | memoryview) -> None:
        """The end-to-end layer turned `before` (ESP) into `after` (plain)."""
        key = _flow(after)
        if key is None:
            return
        esp = _esp_id(before)
        outer = 1 if esp is not None and esp in self._pending else 0
        if outer:
            self._pending.discard(esp)  # type: ignore[arg-type]
        self._count(key, outer, 1)

    def end_batch(self) -> None:
        self._pending.clear()

    def as_list(self) -> list[dict[str, object]]:
        rows = []
        for (proto, src, sport, dst, dport), (mobility, end_to_end) in self._flows.items():
            rows.append({
                "protocol": _PROTOCOLS.get(proto, str(proto)),
                "src": str(IPv6Address(src)), "sport": sport,
                "dst": str(IPv6Address(dst)), "dport": dport,
                "mobility_terminated": mobility, "end_to_end_terminated": end_to_end,
            })
        return rows
