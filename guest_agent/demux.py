"""Who owns an inbound packet for the home address: hoa0, the host's IPv6 apps or its IPv4 apps.

All three share one home address (patent E1 and E2 at once, plus the guest's own services), so
the receive routine 120 demultiplexes by flow: every outbound packet records its flow key
(protocol, local port or echo identifier, remote address, remote port) with the side it came
from; an inbound packet goes back to the side that owns its flow. A packet of no known flow (a
new inbound connection) goes to the default side: the IPv4 host when translation is on (step
511), else the IPv6 host, else hoa0.

UDP falls back to the local port alone (as a socket bound to a port would receive it): a
peer may send from another address than the one it is sent to, e.g. a SIP phone whose RTP
leaves from its default source address while its SDP named another of its addresses.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

_TCP, _UDP, _ICMPV6 = 6, 17, 58
_ECHO_REQUEST, _ECHO_REPLY = 128, 129


class Side(IntEnum):
    GUEST = 0  # hoa0: the guest's own applications (DNS relay, tests' curl in lite mode)
    HOST_IPV6 = 1  # virtual network 15, IPv6 passthrough (embodiment 2)
    HOST_IPV4 = 2  # virtual network 15, translated (embodiment 1)


FlowKey = tuple[int, int, bytes, int]


def _outbound_key(packet: bytes | memoryview) -> FlowKey | None:
    """Key of a packet leaving from the home address (src = HoA)."""
    proto = packet[6]
    if proto in (_TCP, _UDP) and len(packet) >= 44:
        return proto, (packet[40] << 8) | packet[41], bytes(packet[24:40]), (packet[42] << 8) | packet[43]
    if proto == _ICMPV6 and len(packet) >= 46 and packet[40] in (_ECHO_REQUEST, _ECHO_REPLY):
        return proto, (packet[44] << 8) | packet[45], bytes(packet[24:40]), 0
    return None


def _inbound_key(packet: bytes | memoryview) -> FlowKey | None:
    """Key of a packet arriving for the home address (dst = HoA)."""
    proto = packet[6]
    if proto in (_TCP, _UDP) and len(packet) >= 44:
        return proto, (packet[42] << 8) | packet[43], bytes(packet[8:24]), (packet[40] << 8) | packet[41]
    if proto == _ICMPV6 and len(packet) >= 46:
        icmp_type = packet[40]
        if icmp_type in (_ECHO_REQUEST, _ECHO_REPLY):
            return proto, (packet[44] << 8) | packet[45], bytes(packet[8:24]), 0
        if icmp_type < 128 and len(packet) >= 48 + 40:
            # An error quotes our own packet: its flow is the quoted packet's outbound flow.
            return _outbound_key(packet[48:])
    return None


class FlowDemux:
    def __init__(self, default: Side, *, idle_timeout: float = 600.0, max_flows: int = 65536) -> None:
        self.default = default
        self.idle_timeout = idle_timeout
        self.max_flows = max_flows
        self._flows: dict[FlowKey, tuple[Side, float]] = {}
        self._udp_ports: dict[int, tuple[Side, float]] = {}  # local UDP port -> its side
        self._claimed: dict[int, tuple[Side, float]] = {}  # ports announced in SDP (issue 12)
        # Called with a flow's key when it is new or changes side (the fast path mirrors it).
        self.on_new_flow: Callable[[FlowKey, Side], None] | None = None

    def note_outbound(self, packet: bytes | memoryview, side: Side, now: float) -> None:
        key = _outbound_key(packet)
        if key is None:
            return
        if self.on_new_flow is not None:  # only while a fast path mirrors the table
            known = self._flows.get(key)
            if known is None or known[0] != side:
                self.on_new_flow(key, side)
        self._flows[key] = (side, now)
        if key[0] == _UDP:
            self._udp_ports[key[1]] = (side, now)
        if len(self._flows) > self.max_flows:
            self.prune(now)

    def claim_udp_port(self, port: int, side: Side, now: float) -> None:
        """`side` will receive on this UDP port (e.g. a media port its SDP announced)."""
        self._claimed[port] = (side, now)

    def classify(self, packet: bytes | memoryview, now: float) -> Side:
        key = _inbound_key(packet)
        if key is not None:
            found = self._flows.get(key)
            if found is not None:
                self._flows[key] = (found[0], now)
                return found[0]
            if key[0] == _UDP:
                port = self._udp_ports.get(key[1]) or self._claimed.get(key[1])
                if port is not None and now - port[1] < self.idle_timeout:
                    return port[0]
        return self.default

    def side_of(self, key: FlowKey) -> Side | None:
        """The side that owns flow `key` (protocol, local port, remote address, remote port)."""
        found = self._flows.get(key)
        return None if found is None else found[0]

    def prune(self, now: float) -> int:
        """Forget idle flows; if still too many, the oldest half. Returns how many went."""
        before = len(self._flows)
        self._flows = {k: v for k, v in self._flows.items() if now - v[1] < self.idle_timeout}
        if len(self._flows) > self.max_flows:
            ordered = sorted(self._flows.items(), key=lambda item: item[1][1])
            self._flows = dict(ordered[len(ordered) // 2 :])
        self._claimed = {k: v for k, v in self._claimed.items() if now - v[1] < self.idle_timeout}
        self._udp_ports = {}
        for (proto, port, _peer, _peer_port), (side, seen) in self._flows.items():
            if proto == _UDP and seen >= self._udp_ports.get(port, (side, -1.0))[1]:
                self._udp_ports[port] = (side, seen)
        return before - len(self._flows)

    def __len__(self) -> int:
        return len(self._flows)
