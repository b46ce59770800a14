"""Fuzz target: the correspondent daemon's route optimisation stage (issue 9's CN, RFC 6275 9).

What `network.correspondent.daemon` does with a frame from its link, minus the sockets: the
packet as LinkNode hands it over (IPv6, length checked, addressed to the CN) goes through
`CorrespondentRouteOptimisation.inbound` (HoTI/CoTI/BU to the sans-IO Correspondent, HAO
checks and stripping), then timers run and every answer (HoT, CoT, BA, BE, BRR, ICMP
Parameter Problem) is built. Nothing may escape: the daemon does not catch around it.
"""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv6Address

from netstack.mobility.return_routability import sign
from netstack.wire.ipv6 import build_ipv6_packet
from netstack.wire.mh import BindingUpdate, CareOfTestInit, HomeTestInit, NonceIndices
from netstack.wire.mh_codec import build_mobility_packet
from network.correspondent.route_optimisation import CorrespondentRouteOptimisation

CN = IPv6Address("2001:db8:8::1001")
HOA = IPv6Address("2001:db8:6::1000")
COA = IPv6Address("2001:db8:b::1234")


def correspondent_seeds() -> tuple[bytes, ...]:
    bu = sign(BindingUpdate(sequence=3, lifetime=40, home_registration=False,
                            options=(NonceIndices(1, 1),)), bytes(20), COA, CN)
    return (
        build_mobility_packet(HOA, CN, HomeTestInit(b"homecook")),
        build_mobility_packet(COA, CN, CareOfTestInit(b"careofck")),
        build_mobility_packet(COA, CN, bu, home_address=HOA),
        build_ipv6_packet(COA, CN, 58, bytes((128, 0, 0, 0, 0, 1, 0, 1)), home_address=HOA),
    )


class CorrespondentTarget:
    def __init__(self) -> None:
        self.stage = CorrespondentRouteOptimisation(CN, Counter())
        self.now = 0.0

    def __call__(self, data: bytes) -> object:
        if len(data) < 40 or data[0] >> 4 != 6 or 40 + int.from_bytes(data[4:6], "big") > len(data):
            return None  # LinkNode.received_ipv6 drops these before any node sees them
        packet = bytearray(data)
        packet[24:40] = CN.packed  # the daemon passes only packets for its own addresses
        self.now += 1.0
        delivered = self.stage.inbound(memoryview(packet), self.now)
        self.stage.correspondent.handle_timer(self.now)
        sent = self.stage.packets_to_send()
        if delivered is not None:  # the servers' answer goes back through the RO stage
            reply = bytearray(delivered)
            reply[8:24], reply[24:40] = bytes(delivered[24:40]), bytes(delivered[8:24])
            self.stage.outbound(reply, self.now)
        return sent
