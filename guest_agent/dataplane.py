"""The guest's per-packet path: send routine 100 and receive routine 120 (patent Fig. 18, 19).

Bytes only: offsets into the IPv6 header, 16-octet address comparisons, one precomputed outer
header per binding (netstack.wire.ip6ip6.Encapsulator) and one precomputed Ethernet header per
next hop. The control path (BU/BA, ND) never runs through here.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from netstack.wire.ip6ip6 import Encapsulator
from netstack.wire.offload import F_NEEDS_CSUM, GSO_NONE, Offload, SegmentationError, segment

if TYPE_CHECKING:
    from guest_agent.mobile_network import MobileNetwork
    from guest_agent.security import GuestSecurity

IPPROTO_IPV6 = 41
_ETHERTYPE_IPV6 = b"\x86\xdd"


def _link_scope(packet: bytes | memoryview) -> bool:
    """Source in fe80::/10 or destination in a link-local multicast scope (ff02::/16)."""
    return (packet[8] == 0xFE and packet[9] & 0xC0 == 0x80) or (
        packet[24] == 0xFF and packet[25] & 0x0F == 0x02
    )


class GuestDataPlane:
    """IPv6 packet processing unit (24): the IP-in-IP tunnel to the home agent.

    `tunnel` is set by BA routine 60/70 when a binding is accepted (step 506) and cleared when
    it is refused, expires or the terminal returns home.
    """

    def __init__(self, home_address: bytes, own_mac: bytes, counters: Counter[str]) -> None:
        self.home_address = home_address
        self.own_mac = own_mac
        self.counters = counters
        self.at_home = False
        self.care_of_address: bytes | None = None
        # IPsec on the mobile tunnel (Fig. 21 / 22), set by the agent when [ipsec] asks for it
        self.security: GuestSecurity | None = None
        self.home_agent: bytes | None = None
        self._encapsulator: Encapsulator | None = None
        # HMIPv6 (guest_agent/hmip.py): the MN-HA tunnel nested in an LCoA -> MAP tunnel.
        self._local_encapsulator: Encapsulator | None = None
        self._eth_header: bytes | None = None
        # Segments may leave with CHECKSUM_PARTIAL, finished by the kernel further on, when
        # the visited link is written with PACKET_VNET_HDR (the agent sets this).
        self.partial_checksums = False
        # Told of every change of tunnel or next hop (the kernel fast path mirrors them).
        self.on_change: Callable[[], None] | None = None
        # NEMO: tunnelled packets for these prefixes are accepted (guest_agent.mobile_network)
        self.mobile_network: MobileNetwork | None = None

    # ------------------------------------------------------------------ configuration

    def set_tunnel(self, care_of_address: bytes, home_agent: bytes) -> None:
        """Step 506: the mobile tunnel CoA <-> HA."""
        self.care_of_address = care_of_address
        self.home_agent = home_agent
        self._encapsulator = Encapsulator(care_of_address, home_agent)
        self.at_home = False
        if self.on_change is not None:
            self.on_change()

    def set_local_tunnel(self, lcoa: bytes | None, map_address: bytes | None) -> None:
        """HMIPv6: wrap everything the tunnel sends in LCoA -> MAP (None: no MAP)."""
        self._local_encapsulator = Encapsulator(lcoa, map_address) if lcoa and map_address else None
        if self.on_change is not None:
            self.on_change()

    def clear_tunnel(self) -> None:
        self._encapsulator = None
        self.care_of_address = None
        self.home_agent = None
        if self.on_change is not None:
            self.on_change()

    def set_next_hop(self, mac: bytes | None) -> None:
        """The default router's MAC: every packet leaving the visited link goes through it."""
        self._eth_header = (mac + self.own_mac + _ETHERTYPE_IPV6) if mac else None
        if self.on_change is not None:
            self.on_change()

    @property
    def next_hop_mac(self) -> bytes | None:
        return None if self._eth_header is None else self._eth_header[:6]

    @property
    def local_tunnel_up(self) -> bool:
        """HMIPv6's LCoA -> MAP tunnel around the mobile tunnel (the fast path steps aside)."""
        return self._local_encapsulator is not None

    @property
    def next_hop_header(self) -> bytes | None:
        """The Ethernet header towards the default router (None while unresolved)."""
        return self._eth_header

    @property
    def tunnel_up(self) -> bool:
        return self._encapsulator is not None

    # ------------------------------------------------------------------ send routine 100

    def outbound(
        self, packets: list[bytes], *, forwarded: bool = False
    ) -> tuple[list[bytes], list[bytes]]:
        """Packets from `hoa0` (guest applications using the home address), or `forwarded`
        from the mobile network (NEMO: their source is in a mobile network prefix).

        Returns (frames ready for the link, packets that need neighbour resolution first).
        """
        frames: list[bytes] = []
        unresolved: list[bytes] = []
        counters = self.counters
        encap = self._encapsulator
        eth = self._eth_header
        hoa = self.home_address
        security = self.security
        now = time.monotonic() if security is not None else 0.0
        no_binding = encap is None and not self.at_home
        local = self._local_encapsulator if encap is not None else None
        for packet in packets:
            if len(packet) < 40 or packet[0] >> 4 != 6:
                counters["tx_dropped_not_ipv6"] += 1
                continue
            if _link_scope(packet):
                # The guest kernel's own chatter on hoa0 (RS, MLD): there is no link behind it.
                counters["tx_ignored_link_scope"] += 1
                continue
            if no_binding:
                counters["tx_dropped_no_binding"] += 1
                continue
            if packet[8:24] != hoa and not forwarded:
                # Only the home address may leave through the tunnel (RFC 6275 11.3.1).
                counters["tx_dropped_not_home_address"] += 1
                continue
            if encap is None:
                out = packet
            elif security is None:
                out = encap.encapsulate(packet)
            else:
                out = security.seal_tunnel(packet, encap, now)
                if out is None:
                    counters["tx_dropped_ipsec"] += 1  # the processor counts the reason
                    continue
            if local is not None:
                out = local.encapsulate(out)
            if eth is None:
                unresolved.append(bytes(out))
            else:
                frames.append(eth + out)
        counters["tx_tunnelled" if encap is not None else "tx_native"] += len(frames) + len(
            unresolved
        )
        return frames, unresolved

    def tunnel_super_frame(
        self, packet: bytearray, gso_size: int
    ) -> list[tuple[bytearray, Offload]] | None:
        """Send routine 100 for a GSO super-frame of the home address: encapsulate once,
        then cut it into tunnel packets whose transport checksums the kernel finishes.

        None when the per-packet path must do it: no tunnel or next hop yet, IPsec on the
        tunnel, a link without offload metadata, or a packet this cannot cut.
        """
        encap = self._encapsulator
        eth = self._eth_header
        if encap is None or eth is None or self.security is not None or not self.partial_checksums:
            return None
        if self._local_encapsulator is not None:
            return None  # nested HMIPv6 tunnel: the per-packet path
        if len(packet) < 60 or packet[8:24] != self.home_address:
            return None
        whole = bytearray(eth)
        whole += encap.header_for(packet)
        whole += packet
        try:
            frames = segment(whole, gso_size, l3_offset=14, partial=True)
        except SegmentationError:
            return None
        protocol = packet[6]
        offload = Offload(F_NEEDS_CSUM, GSO_NONE, 0, 0, 14 + 80, 16 if protocol == 6 else 6)
        self.counters["tx_tunnelled"] += len(frames)
        self.counters["tx_tunnelled_super_frames"] += 1
        return [(frame, offload) for frame in frames]

    # ------------------------------------------------------------------ receive routine 120

    def inbound(self, packet: memoryview) -> memoryview | None:
        """An IPv6 packet from the visited link that is not ND or Mobility Header.

        Returns the packet for `hoa0`, or None (dropped and counted, or not ours).
        """
        counters = self.counters
        next_header = packet[6]
        if next_header == IPPROTO_IPV6:
            if self.security is not None and self.security.refuse_plain_tunnel():
                return None
            return self.detunnel(packet)
        if self.at_home and packet[24:40] == self.home_address:
            counters["rx_native"] += 1
            return packet
        counters["rx_dropped_not_for_us"] += 1
        return None

    def detunnel(self, packet: memoryview) -> memoryview | None:
        """An IPv6-in-IPv6 packet HA -> CoA (from the link, or out of ESP in Fig. 21)."""
        counters = self.counters
        coa = self.care_of_address
        if coa is None or packet[24:40] != coa:
            counters["rx_dropped_tunnel_not_for_us"] += 1
            return None
        # Step 128: accept tunnelled packets only from the home agent.
        if packet[8:24] != self.home_agent:
            counters["rx_dropped_tunnel_bad_outer_source"] += 1
            return None
        payload_length = (packet[4] << 8) | packet[5]
        if payload_length < 40 or 40 + payload_length > len(packet):
            counters["rx_dropped_malformed"] += 1
            return None
        inner = packet[40 : 40 + payload_length]
        if inner[0] >> 4 != 6 or (
            inner[24:40] != self.home_address
            and (self.mobile_network is None or not self.mobile_network.holds(inner[24:40]))
        ):
            counters["rx_dropped_tunnel_inner_not_home_address"] += 1
            return None
        counters["rx_detunnelled"] += 1
        return inner
