"""The SIP ALG on the translated path: IPv4 datagrams of the host's SIP phones <-> table 230.

Inputs: an IPv4/UDP datagram the host sends (before step 514 translates it) or one the
translator made for the host (after step 511), and `now`. Output: the same datagram, or a
rebuilt one whose SIP message has the addresses the translation changes rewritten
(``guest_agent.sip_alg`` does the text). Everything else passes untouched.

Address mapping, both ways through translation table 230 (so SIP, SDP and the media agree
with what the translator does to the headers):
- host -> IPv6 side: the host's address (home IPv4) -> the home address; a pool address ->
  its row's IPv6 address; another IPv4 address -> RFC 6052 (the translator's own rule);
  0.0.0.0 (SDP hold) -> ``::``;
- IPv6 side -> host: the home address -> the home IPv4; any other IPv6 address -> its pool
  address, allocated now when new: this is how the peer's RTP/RTCP address gets its
  table-230 row before the first media packet; ``::`` -> 0.0.0.0.
Media ports are not touched: the translation keeps ports 1:1.

Only datagrams to or from the configured SIP ports are looked at, only whole (unfragmented)
ones; a datagram that is not SIP we understand is passed on untouched and counted
(``sip_alg_malformed_*``), never dropped: the far end judges it, as it would without us.
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from ipaddress import AddressValueError, IPv4Address, IPv6Address

from guest_agent.sip_alg import SipParseError, rewrite, rewrite_stream, sdp_media_ports
from guest_agent.sip_alg_tcp import TcpSipStreams
from netstack.translate.table import TranslationTable
from netstack.wire.ipv4 import build_ipv4_udp

_TCP, _UDP = 6, 17
_MF_OR_OFFSET = 0x3FFF
_HEADER = struct.Struct("!BBHHHBBH4s4s")
_PORTS = struct.Struct("!HH")
_ANY4, _ANY6 = "0.0.0.0", "::"


class SipAlgPath:
    def __init__(
        self,
        table: TranslationTable,
        *,
        home_address: bytes,
        home_ipv4: bytes,
        ports: tuple[int, ...] = (5060,),
        enabled: bool = True,
        counters: Counter[str],
    ) -> None:
        self.table = table
        self.home_address = IPv6Address(home_address)
        self.home_ipv4 = IPv4Address(home_ipv4)
        self.ports = frozenset(ports)
        self.enabled = enabled
        self.counters = counters
        self._now = 0.0
        self.tcp = TcpSipStreams(counters)
        self.host_ports: set[int] = set()  # the host phones' SIP ports (their Contact)
        self._contact = re.compile(rb"(?im)^(?:contact|m)[ \t]*:[^\r\n]*?"
                                   + re.escape(str(self.home_ipv4).encode()) + rb":(\d{1,5})")

    # ------------------------------------------------------------------ address mappers

    def _to_ipv6(self, text: str) -> str | None:
        try:
            address = IPv4Address(text)
        except AddressValueError:
            return None
        if address == self.home_ipv4:
            return str(self.home_address)
        if text == _ANY4:
            return _ANY6
        packed = address.packed
        if packed in self.table.pool:
            entry = self.table.get_by_v4(packed)
            if entry is None:
                self.counters["sip_alg_unmapped_address"] += 1
                return None
            return str(IPv6Address(entry.ipv6))
        return str(IPv6Address(self.table.prefix.embed(packed)))

    def _to_ipv4(self, text: str) -> str | None:
        try:
            address = IPv6Address(text)
        except AddressValueError:
            return None
        if address == self.home_address:
            return str(self.home_ipv4)
        if address.is_unspecified:
            return _ANY4
        ipv4 = self.table.lookup_or_allocate_v6(address.packed, self._now)
        if ipv4 is None:
            self.counters["sip_alg_pool_exhausted"] += 1
            return None
        return str(IPv4Address(ipv4))

    # ------------------------------------------------------------------ datagrams

    def _is_sip(self, sport: int, dport: int, from_host: bool) -> bool:
        """To or from a SIP port, or to the host phone's own SIP port (a proxy's TCP
        connection to the Contact of a registered phone comes from an ephemeral port)."""
        if sport in self.ports or dport in self.ports:
            return True
        return (sport if from_host else dport) in self.host_ports

    def _sip_payload(self, packet: bytes | bytearray | memoryview, from_host: bool
                     ) -> tuple[int, int] | None:
        """(header length, total length) of an unfragmented IPv4/UDP datagram on a SIP port."""
        if len(packet) < 28 or packet[9] not in (_TCP, _UDP) or packet[0] >> 4 != 4:
            return None
        header_len = (packet[0] & 0x0F) * 4
        _vihl, _tos, total, _id, frag, _ttl, _proto, _sum, _s, _d = _HEADER.unpack_from(packet)
        minimum = 20 if packet[9] == _TCP else 8
        if header_len < 20 or total > len(packet) or total < header_len + minimum:
            return None
        sport, dport = _PORTS.unpack_from(packet, header_len)
        if not self._is_sip(sport, dport, from_host):
            return None
        if frag & _MF_OR_OFFSET:
            self.counters["sip_alg_skipped_fragment"] += 1
            return None
        return header_len, total

    def _process_tcp(self, packet: bytes | bytearray | memoryview, header_len: int, total: int,
                     now: float, to_family: int) -> bytes | bytearray | memoryview:
        direction = "out" if to_family == 6 else "in"
        mapper = self._to_ipv6 if to_family == 6 else self._to_ipv4

        def rewriter(data: bytes) -> bytes:
            if to_family == 6:
                self._learn_host_port(data)
            text, results = rewrite_stream(data, mapper, to_family)
            self.counters[f"sip_alg_tcp_messages_{direction}"] += len(results)
            self.counters[f"sip_alg_sdp_{direction}"] += sum(r.has_sdp for r in results)
            return text

        out = self.tcp.process(packet, header_len, total, rewriter, from_host=to_family == 6,
                               now=now)
        return packet if out is None else out

    def _learn_host_port(self, message: bytes) -> None:
        for match in self._contact.finditer(message):
            port = int(match.group(1))
            if 0 < port < 65536 and port not in self.host_ports and len(self.host_ports) < 64:
                self.host_ports.add(port)
                self.counters["sip_alg_host_ports_learned"] += 1

    def wants(self, packet: bytes | bytearray | memoryview) -> bool:
        """A UDP datagram (or GRO super-frame) to or from a SIP port, with the ALG on."""
        if not self.enabled or len(packet) < 28 or packet[9] not in (_TCP, _UDP) \
                or packet[0] >> 4 != 4:
            return False
        sport, dport = _PORTS.unpack_from(packet, (packet[0] & 0x0F) * 4)
        return self._is_sip(sport, dport, packet[12:16] == self.home_ipv4.packed)

    def outbound(self, packet: bytes | bytearray | memoryview, now: float
                 ) -> bytes | bytearray | memoryview:
        """A host datagram before translation 4 -> 6."""
        return self._process(packet, now, to_family=6)

    def inbound(self, packet: bytes | bytearray | memoryview, now: float
                ) -> bytes | bytearray | memoryview:
        """A translated datagram for the host (after 6 -> 4)."""
        return self._process(packet, now, to_family=4)

    def _process(self, packet: bytes | bytearray | memoryview, now: float, *, to_family: int
                 ) -> bytes | bytearray | memoryview:
        found = self._sip_payload(packet, from_host=to_family == 6)
        if found is None:
            return packet
        direction = "out" if to_family == 6 else "in"
        if not self.enabled:
            self.counters[f"sip_alg_off_passed_{direction}"] += 1
            return packet
        header_len, total = found
        self._now = now
        if packet[9] == _TCP:
            return self._process_tcp(packet, header_len, total, now, to_family)
        payload = bytes(packet[header_len + 8 : total])
        if to_family == 6:
            self._learn_host_port(payload)
        try:
            result = rewrite(payload, self._to_ipv6 if to_family == 6 else self._to_ipv4,
                             to_family)
        except SipParseError as exc:
            self.counters[f"sip_alg_malformed_{exc.reason}"] += 1
            return packet
        self.counters[f"sip_alg_messages_{direction}"] += 1
        if result.has_sdp:
            self.counters[f"sip_alg_sdp_{direction}"] += 1
        if result.message == payload:
            return packet
        self.counters[f"sip_alg_rewritten_{direction}"] += 1
        ttl, ident = packet[8], (packet[4] << 8) | packet[5]
        sport, dport = _PORTS.unpack_from(packet, header_len)
        return build_ipv4_udp(bytes(packet[12:16]), bytes(packet[16:20]), sport, dport,
                              result.message, ttl=ttl, ident=ident)

    def ipv6_media_ports(self, packet: bytes | bytearray | memoryview) -> list[int]:
        """Media ports in the SDP of the host's own IPv6 SIP (E2 passthrough, not rewritten):
        the flow demultiplexer gives them to the IPv6 host before the first RTP arrives."""
        if len(packet) < 48 or packet[0] >> 4 != 6 or packet[6] != _UDP:
            return []
        sport, dport = _PORTS.unpack_from(packet, 40)
        if sport not in self.ports and dport not in self.ports:
            return []
        ports = sdp_media_ports(bytes(packet[48:]))
        if ports:
            self.counters["sip_alg_ipv6_media_ports_noted"] += len(ports)
        return ports

    def as_dict(self) -> dict[str, object]:
        return {"enabled": self.enabled, "ports": sorted(self.ports),
                "host_ports": sorted(self.host_ports), "tcp_connections": len(self.tcp)}
