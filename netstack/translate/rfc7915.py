"""Stateless IP/ICMP translation (RFC 7915 sections 4 and 5) on bytes.

The caller decides the outer addresses (table 230 does); this module rewrites headers:
  * `Rfc7915Translator.translate_4to6(packet, src6, dst6) -> list[bytes]` (section 4)
  * `Rfc7915Translator.translate_6to4(packet, src4, dst4) -> list[bytes]` (section 5)
Lists because an IPv4 packet without DF may be fragmented to fit `lowest_ipv6_mtu`; an empty
list means the packet was dropped (the reason is counted in `counters`). When a drop calls
for an ICMP error back to the sender (TTL expired, fragmentation needed, packet too big,
source route, routing header), it is queued and handed out by `icmp_errors_to_send()`: IPv4
packets for drops in translate_4to6, IPv6 packets for drops in translate_6to4.

Addresses inside ICMP errors (the "packet in error") are mapped without asking the caller
when they are the outer addresses swapped (the usual case: the error is about a packet the
destination sent); other addresses go through `map_4to6` / `map_6to4` (default: RFC 6052
well-known prefix), and an unmappable inner address drops the error.

Not implemented (dropped or passed opaque): RFC 4884 ICMP extensions (the length attribute
is cleared and the extension travels as part of the packet in error), DCCP/SCTP checksums
(forwarded unchanged, RFC 7915 4.5 makes them optional), IPv4 fragmentation on the 6->4 path
(an oversized packet gets Packet Too Big instead).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from netstack.translate.icmp_errors import (
    build_icmpv4_error,
    build_icmpv6_error,
    icmpv4_admin_prohibited,
)
from netstack.translate.rfc6052 import Rfc6052Prefix
from netstack.wire.checksum import ones_complement_sum, pseudo_header_sum

AddressMapper = Callable[[bytes], "bytes | None"]

PROTO_HOPOPTS = 0
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ROUTING = 43
PROTO_FRAGMENT = 44
PROTO_ICMPV6 = 58
PROTO_DSTOPTS = 60

IPV4_HEADER_LEN = 20
IPV6_HEADER_LEN = 40
FRAGMENT_HEADER_LEN = 8
ICMPV6_ERROR_MAX = 1280  # RFC 4443 2.4(c): an ICMPv6 error must fit the minimum MTU
ICMPV4_ERROR_MAX = 576  # RFC 1812 4.3.2.3
DF_THRESHOLD = 1260  # RFC 7915 5.1: larger translated IPv4 packets get DF=1

RFC1191_PLATEAUS = (65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_FRAG = struct.Struct("!BxHI")
_H = struct.Struct("!H")

# Extension headers the 6->4 direction skips (RFC 7915 5.1, "Protocol").
_SKIPPED_EXT = frozenset((PROTO_HOPOPTS, PROTO_ROUTING, PROTO_DSTOPTS))
# After a Fragment Header none of these may follow (RFC 7915 5.1.1; ESP is fine).
_EXT_AFTER_FRAGMENT = frozenset((0, 43, 44, 51, 60, 135, 139, 140, 253, 254))

# RFC 7915 4.2, ICMPv4 Destination Unreachable code -> ICMPv6 Destination Unreachable code.
# Code 2 (protocol) becomes a Parameter Problem and code 4 a Packet Too Big (handled apart);
# 14 (host precedence violation) and unknown codes are dropped.
_DU4_TO_DU6 = {0: 0, 1: 0, 3: 4, 5: 0, 6: 0, 7: 0, 8: 0, 9: 1, 10: 1, 11: 0, 12: 0, 13: 1, 15: 1}
# RFC 7915 Figure 3: IPv4 Parameter Problem pointer -> IPv6 pointer (missing = n/a = drop).
_POINTER_4TO6 = {0: 0, 1: 1, 2: 4, 3: 4, 8: 7, 9: 6, 12: 8, 13: 8, 14: 8, 15: 8,
                 16: 24, 17: 24, 18: 24, 19: 24}  # fmt: skip
# RFC 7915 5.2, ICMPv6 Destination Unreachable code -> ICMPv4 Destination Unreachable code.
_DU6_TO_DU4 = {0: 1, 1: 10, 2: 1, 3: 1, 4: 3}
# RFC 7915 Figure 6: IPv6 Parameter Problem pointer -> IPv4 pointer.
_POINTER_6TO4 = {0: 0, 1: 1, 4: 2, 5: 2, 6: 9, 7: 8}
_POINTER_6TO4.update({p: 12 for p in range(8, 24)})
_POINTER_6TO4.update({p: 16 for p in range(24, 40)})

_ICMP4_ECHO_TO_6 = {8: 128, 0: 129}
_ICMP6_ECHO_TO_4 = {128: 8, 129: 0}


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _sum(data: bytes) -> int:
    """Folded ones' complement sum of an even-length field (addresses, 16-bit words)."""
    return _fold(sum(struct.unpack(f"!{len(data) // 2}H", data)))


def _adjust(checksum: int, removed: int, added: int) -> int:
    """RFC 1624 eqn. 3 with precomputed sums: a wrong checksum stays wrong by the same amount."""
    total = (~checksum & 0xFFFF) + (~removed & 0xFFFF) + added
    return ~_fold(total) & 0xFFFF


def _checksum(data: bytes, initial: int = 0) -> int:
    return ~ones_complement_sum(data, initial) & 0xFFFF


def _ipv4_header_checksum(header: bytearray) -> None:
    header[10:12] = b"\x00\x00"
    header[10:12] = _H.pack(_checksum(bytes(header)))


@dataclass(frozen=True)
class TranslatorConfig:
    """RFC 7915 knobs. MTUs are the next-hop MTUs on each side of the translator."""

    lowest_ipv6_mtu: int = 1280
    ipv6_mtu: int = 1500
    ipv4_mtu: int = 1500
    decrement_ttl: bool = True  # RFC 7915 4.1/5.1: the translator is a router
    zeroize_traffic_class: bool = False  # 4.1: IPv6 traffic class 0 instead of the IPv4 TOS
    override_tos: int | None = None  # 5.1: fixed IPv4 TOS instead of the traffic class
    amend_udp_checksum_zero: bool = True  # 4.5: compute a zero UDP checksum (unfragmented)
    generate_icmp_errors: bool = True  # 4.4/5.4
    mtu_plateaus: tuple[int, ...] = RFC1191_PLATEAUS
    icmpv4_error_source: bytes | None = None  # default: the dropped packet's destination
    icmpv6_error_source: bytes | None = None

    def __post_init__(self) -> None:
        if self.lowest_ipv6_mtu < 1280 or self.ipv6_mtu < 1280:
            raise ValueError("IPv6 MTUs cannot be below 1280 (RFC 8200 5)")
        if self.ipv4_mtu < 68:
            raise ValueError("IPv4 MTU cannot be below 68 (RFC 791)")


class Rfc7915Translator:
    """Header translator; holds the config, ICMP error outbox, IPv4 ID counter and counters."""

    def __init__(
        self,
        config: TranslatorConfig | None = None,
        *,
        map_4to6: AddressMapper | None = None,
        map_6to4: AddressMapper | None = None,
    ) -> None:
        self.config = config or TranslatorConfig()
        wkp = Rfc6052Prefix()
        self.map_4to6: AddressMapper = map_4to6 or wkp.embed
        self.map_6to4: AddressMapper = map_6to4 or wkp.extract
        self.counters: dict[str, int] = {}
        self._errors: list[bytes] = []
        self._next_ident = 1

    # -- plumbing -------------------------------------------------------------------------

    def _drop(self, reason: str) -> list[bytes]:
        self.counters[reason] = self.counters.get(reason, 0) + 1
        return []

    def icmp_errors_to_send(self) -> list[bytes]:
        """ICMP errors generated by drops since the last call (IPv4 or IPv6 packets)."""
        errors, self._errors = self._errors, []
        return errors

    def _ident(self) -> int:
        ident = self._next_ident
        self._next_ident = (ident + 1) & 0xFFFF or 1
        return ident

    # =====================================================================================
    # Section 4: IPv4 -> IPv6
    # =====================================================================================

    def translate_4to6(self, packet: bytes | bytearray | memoryview, src6: bytes, dst6: bytes) -> list[bytes]:
        pkt = bytes(packet)
        if len(pkt) < IPV4_HEADER_LEN:
            return self._drop("truncated")
        vihl, tos, total_len, ident, frag, ttl, proto, _csum, src4, dst4 = _IPV4.unpack_from(pkt)
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4:
            return self._drop("bad_version")
        if ihl < IPV4_HEADER_LEN or total_len < ihl or total_len > len(pkt):
            return self._drop("bad_length")
        if ones_complement_sum(pkt[:ihl]) != 0xFFFF:
            return self._drop("bad_ipv4_header_checksum")
        pkt = pkt[:total_len]  # link-layer padding
        cfg = self.config
        if ihl > IPV4_HEADER_LEN and _has_unexpired_source_route(pkt[IPV4_HEADER_LEN:ihl]):
            self._icmp4_error(pkt, 3, 5)  # 4.1: Destination Unreachable, Source Route Failed
            return self._drop("source_route")
        hop_limit = ttl
        if cfg.decrement_ttl:
            if ttl <= 1:
                self._icmp4_error(pkt, 11, 0)
                return self._drop("ttl_expired")
            hop_limit = ttl - 1
        offset = frag & 0x1FFF
        more = frag & 0x2000
        dont_fragment = frag & 0x4000
        is_fragment = bool(more or offset)
        payload = pkt[ihl:]

        if proto == PROTO_ICMP:
            if is_fragment:
                return self._drop("fragmented_icmp")  # RFC 7915 1.2
            translated = self._icmp4_to_icmp6(payload, src4, dst4, src6, dst6)
            if translated is None:
                return []
            payload = translated
            next_header = PROTO_ICMPV6
        else:
            next_header = proto
            if offset == 0 and proto in (PROTO_TCP, PROTO_UDP):
                updated = self._l4_4to6(payload, proto, src4, dst4, src6, dst6, is_fragment)
                if updated is None:
                    return []
                payload = updated

        traffic_class = 0 if cfg.zeroize_traffic_class else tos
        first_word = 0x60000000 | (traffic_class << 20)
        out_len = IPV6_HEADER_LEN + len(payload) + (FRAGMENT_HEADER_LEN if is_fragment else 0)
        if dont_fragment:
            if out_len > cfg.ipv6_mtu:
                overhead = IPV6_HEADER_LEN - IPV4_HEADER_LEN + (8 if is_fragment else 0)
                self._icmp4_error(pkt, 3, 4, mtu=cfg.ipv6_mtu - overhead)
                return self._drop("fragmentation_needed")
            limit = cfg.ipv6_mtu
        else:
            limit = min(cfg.lowest_ipv6_mtu, cfg.ipv6_mtu)
        if out_len <= limit:
            if not is_fragment:
                header = _IPV6.pack(first_word, len(payload), next_header, hop_limit, src6, dst6)
                return [header + payload]
            return [
                _IPV6.pack(first_word, len(payload) + 8, PROTO_FRAGMENT, hop_limit, src6, dst6)
                + _FRAG.pack(next_header, (offset << 3) | (1 if more else 0), ident)
                + payload
            ]
        # DF=0 and too big for lowest-ipv6-mtu: fragment (4.1), keeping the IPv4 ID.
        chunk = (limit - IPV6_HEADER_LEN - FRAGMENT_HEADER_LEN) & ~7
        out = []
        base = offset * 8
        for start in range(0, len(payload), chunk):
            piece = payload[start : start + chunk]
            last = start + chunk >= len(payload)
            m_flag = 0 if last and not more else 1
            out.append(
                _IPV6.pack(first_word, len(piece) + 8, PROTO_FRAGMENT, hop_limit, src6, dst6)
                + _FRAG.pack(next_header, (base + start) | m_flag, ident)
                + piece
            )
        self.counters["fragmented"] = self.counters.get("fragmented", 0) + 1
        return out

    def _l4_4to6(
        self,
        segment: bytes,
        proto: int,
        src4: bytes,
        dst4: bytes,
        src6: bytes,
        dst6: bytes,
        is_fragment: bool,
        *,
        inner: bool = False,
    ) -> bytes | None:
        """Rewrite the TCP/UDP checksum for the IPv6 pseudo-header (4.5)."""
        at = 16 if proto == PROTO_TCP else 6
        if len(segment) < at + 2:
            if inner:
                return segment  # truncated packet in error: nothing to fix
            self._drop("truncated")
            return None
        checksum = _H.unpack_from(segment, at)[0]
        if proto == PROTO_UDP and checksum == 0:
            if inner:
                return segment  # cannot compute over a truncated datagram
            if is_fragment:
                self._drop("udp_zero_checksum_fragment")
                return None
            if not self.config.amend_udp_checksum_zero:
                self._drop("udp_zero_checksum")
                return None
            buf = bytearray(segment)
            new = _checksum(bytes(buf), pseudo_header_sum(src6, dst6, len(buf), PROTO_UDP))
            _H.pack_into(buf, at, new or 0xFFFF)
            self.counters["udp_checksum_computed"] = self.counters.get("udp_checksum_computed", 0) + 1
            return bytes(buf)
        new = _adjust(checksum, _sum(src4 + dst4), _sum(src6 + dst6))
        if proto == PROTO_UDP and new == 0:
            new = 0xFFFF
        return segment[:at] + _H.pack(new) + segment[at + 2 :]

    def _icmp4_to_icmp6(
        self, icmp: bytes, src4: bytes, dst4: bytes, src6: bytes, dst6: bytes
    ) -> bytes | None:
        """Section 4.2/4.3: type/code mapping, packet in error, ICMPv6 checksum."""
        if len(icmp) < 8:
            self._drop("truncated")
            return None
        if ones_complement_sum(icmp) != 0xFFFF:
            self._drop("bad_icmp_checksum")
            return None
        icmp_type, code = icmp[0], icmp[1]
        if icmp_type in _ICMP4_ECHO_TO_6:
            body = bytes((_ICMP4_ECHO_TO_6[icmp_type], code, 0, 0)) + icmp[4:]
        else:
            header = self._icmp4_error_header(icmp)
            if header is None:
                self._drop("icmp_untranslatable")
                return None
            inner = self._inner_4to6(icmp[8:], src4, dst4, src6, dst6)
            if inner is None:
                return None
            body = header + inner
            body = body[: ICMPV6_ERROR_MAX - IPV6_HEADER_LEN]
        checksum = _checksum(body, pseudo_header_sum(src6, dst6, len(body), PROTO_ICMPV6))
        return body[:2] + _H.pack(checksum) + body[4:]

    def _icmp4_error_header(self, icmp: bytes) -> bytes | None:
        """The 8-byte ICMPv6 error header (checksum 0) for an ICMPv4 error, None = drop."""
        icmp_type, code = icmp[0], icmp[1]
        if icmp_type == 3:
            if code == 4:  # Fragmentation Needed -> Packet Too Big
                return struct.pack("!BBHI", 2, 0, 0, self._ptb_mtu_4to6(icmp))
            if code == 2:  # Protocol Unreachable -> Parameter Problem, Next Header pointer
                return struct.pack("!BBHI", 4, 1, 0, 6)
            code6 = _DU4_TO_DU6.get(code)
            return None if code6 is None else struct.pack("!BBHI", 1, code6, 0, 0)
        if icmp_type == 11:
            return struct.pack("!BBHI", 3, code, 0, 0)
        if icmp_type == 12 and code in (0, 2):
            pointer = _POINTER_4TO6.get(icmp[4])
            return None if pointer is None else struct.pack("!BBHI", 4, 0, 0, pointer)
        return None  # source quench, redirect, timestamps, info, unknown

    def _ptb_mtu_4to6(self, icmp: bytes) -> int:
        """RFC 7915 4.2: max(1280, min(MTU + 20, IPv6 next-hop MTU, IPv4 next-hop MTU + 20))."""
        cfg = self.config
        mtu = _H.unpack_from(icmp, 6)[0]
        if mtu == 0 and len(icmp) >= 12:
            # RFC 1191 router: use the largest plateau below the returned Total Length.
            total_len = _H.unpack_from(icmp, 10)[0]
            mtu = next((p for p in cfg.mtu_plateaus if p < total_len), cfg.mtu_plateaus[-1])
        return max(1280, min(mtu + 20, cfg.ipv6_mtu, cfg.ipv4_mtu + 20))

    def _inner_4to6(
        self, data: bytes, outer_src4: bytes, outer_dst4: bytes, src6: bytes, dst6: bytes
    ) -> bytes | None:
        """The IPv4 packet in error -> IPv6 (4.3): TTL kept, checksums fixed when present."""
        if len(data) < IPV4_HEADER_LEN or data[0] >> 4 != 4:
            self._drop("icmp_inner_malformed")
            return None
        vihl, tos, total_len, ident, frag, ttl, proto, _c, isrc4, idst4 = _IPV4.unpack_from(data)
        ihl = (vihl & 0x0F) * 4
        if ihl < IPV4_HEADER_LEN or len(data) < ihl or total_len < ihl:
            self._drop("icmp_inner_malformed")
            return None
        isrc6 = self._inner_address_4to6(isrc4, outer_src4, outer_dst4, src6, dst6)
        idst6 = self._inner_address_4to6(idst4, outer_src4, outer_dst4, src6, dst6)
        if isrc6 is None or idst6 is None:
            self._drop("icmp_inner_unmappable")
            return None
        offset = frag & 0x1FFF
        more = frag & 0x2000
        is_fragment = bool(more or offset)
        payload = data[ihl:]
        upper_len = total_len - ihl  # the original length, not what survived truncation
        next_header = proto
        if proto == PROTO_ICMP:
            next_header = PROTO_ICMPV6
            if offset == 0 and payload:
                if payload[0] not in _ICMP4_ECHO_TO_6:
                    self._drop("icmp_error_in_error")  # 4.3: one embedded header only
                    return None
                if len(payload) >= 4:
                    payload = _retype_icmp_4to6(payload, isrc6, idst6, upper_len)
        elif offset == 0 and proto in (PROTO_TCP, PROTO_UDP):
            payload = self._l4_4to6(payload, proto, isrc4, idst4, isrc6, idst6, is_fragment, inner=True)  # type: ignore[assignment]
        traffic_class = 0 if self.config.zeroize_traffic_class else tos
        first_word = 0x60000000 | (traffic_class << 20)
        if is_fragment:
            return (
                _IPV6.pack(first_word, upper_len + 8, PROTO_FRAGMENT, ttl, isrc6, idst6)
                + _FRAG.pack(next_header, (offset << 3) | (1 if more else 0), ident)
                + payload
            )
        return _IPV6.pack(first_word, upper_len, next_header, ttl, isrc6, idst6) + payload

    def _inner_address_4to6(
        self, addr: bytes, outer_src4: bytes, outer_dst4: bytes, src6: bytes, dst6: bytes
    ) -> bytes | None:
        if addr == outer_dst4:
            return dst6
        if addr == outer_src4:
            return src6
        return self.map_4to6(addr)

    def _icmp4_error(self, original: bytes, icmp_type: int, code: int, *, mtu: int = 0) -> None:
        if not self.config.generate_icmp_errors:
            return
        src4 = self.config.icmpv4_error_source or original[16:20]
        error = build_icmpv4_error(original, src4, icmp_type, code, rest=mtu)
        if error is not None:
            self._errors.append(error)

    # =====================================================================================
    # Section 5: IPv6 -> IPv4
    # =====================================================================================

    def translate_6to4(self, packet: bytes | bytearray | memoryview, src4: bytes, dst4: bytes) -> list[bytes]:
        pkt = bytes(packet)
        if len(pkt) < IPV6_HEADER_LEN:
            return self._drop("truncated")
        first_word, payload_len, next_header, hop_limit, src6, dst6 = _IPV6.unpack_from(pkt)
        if first_word >> 28 != 6:
            return self._drop("bad_version")
        end = IPV6_HEADER_LEN + payload_len
        if end > len(pkt):
            return self._drop("bad_length")
        pkt = pkt[:end]
        walked = self._walk_extensions(pkt, IPV6_HEADER_LEN, next_header)
        if walked is None:
            return []
        offset, next_header, fragment = walked
        cfg = self.config
        ttl = hop_limit
        if cfg.decrement_ttl:
            if hop_limit <= 1:
                self._icmp6_error(pkt, 3, 0)
                return self._drop("ttl_expired")
            ttl = hop_limit - 1
        payload = pkt[offset:]
        frag_offset = more = 0
        if fragment is not None:
            frag_offset, more, frag_id = fragment
        is_fragment = bool(frag_offset or more)

        if next_header == PROTO_ICMPV6:
            if is_fragment:
                return self._drop("fragmented_icmp")
            translated = self._icmp6_to_icmp4(payload, src6, dst6, src4, dst4)
            if translated is None:
                return []
            payload = translated
            protocol = PROTO_ICMP
        else:
            protocol = next_header
            if frag_offset == 0 and next_header in (PROTO_TCP, PROTO_UDP):
                at = 16 if next_header == PROTO_TCP else 6
                if len(payload) < at + 2:
                    return self._drop("truncated")
                checksum = _H.unpack_from(payload, at)[0]
                if checksum or next_header == PROTO_TCP:
                    new = _adjust(checksum, _sum(src6 + dst6), _sum(src4 + dst4))
                    if next_header == PROTO_UDP and new == 0:
                        new = 0xFFFF
                    payload = payload[:at] + _H.pack(new) + payload[at + 2 :]

        total_len = IPV4_HEADER_LEN + len(payload)
        if total_len > cfg.ipv4_mtu:
            # No IPv4 fragmentation here: tell the IPv6 source the size that fits (5.1).
            extra = IPV6_HEADER_LEN - IPV4_HEADER_LEN + (offset - IPV6_HEADER_LEN)
            self._icmp6_error(pkt, 2, 0, value=max(1280, cfg.ipv4_mtu + extra))
            return self._drop("packet_too_big")
        if fragment is not None:
            ident = frag_id & 0xFFFF
            flags = (0x2000 if more else 0) | frag_offset
        elif total_len <= DF_THRESHOLD:
            ident = self._ident()
            flags = 0
        else:
            ident = 0  # atomic datagram (RFC 6864): the ID is not used
            flags = 0x4000
        tos = cfg.override_tos if cfg.override_tos is not None else (first_word >> 20) & 0xFF
        header = bytearray(
            _IPV4.pack(0x45, tos, total_len, ident, flags, ttl, protocol, 0, src4, dst4)
        )
        _ipv4_header_checksum(header)
        return [bytes(header) + payload]

    def _walk_extensions(
        self, pkt: bytes, offset: int, next_header: int, *, inner: bool = False
    ) -> tuple[int, int, tuple[int, int, int] | None] | None:
        """Skip HBH/Routing/DestOpt/Fragment (5.1); returns (upper offset, protocol, fragment)."""
        fragment = None
        while True:
            if next_header == PROTO_FRAGMENT:
                if offset + FRAGMENT_HEADER_LEN > len(pkt):
                    self._drop("truncated")
                    return None
                next_header, off_m, frag_id = _FRAG.unpack_from(pkt, offset)
                fragment = (off_m >> 3, off_m & 1, frag_id)
                offset += FRAGMENT_HEADER_LEN
                if next_header in _EXT_AFTER_FRAGMENT:
                    self._drop("extension_after_fragment")
                    return None
                return offset, next_header, fragment
            if next_header not in _SKIPPED_EXT:
                return offset, next_header, fragment
            if offset + 8 > len(pkt):
                self._drop("truncated")
                return None
            if next_header == PROTO_ROUTING and pkt[offset + 3] != 0 and not inner:
                # 5.1: a routing header with segments left is not ours to finish.
                self._icmp6_error(pkt, 4, 0, value=offset + 3)
                self._drop("routing_segments_left")
                return None
            next_header, ext_len = pkt[offset], (pkt[offset + 1] + 1) * 8
            offset += ext_len

    def _icmp6_to_icmp4(
        self, icmp: bytes, src6: bytes, dst6: bytes, src4: bytes, dst4: bytes
    ) -> bytes | None:
        """Section 5.2/5.3: type/code mapping, packet in error, checksum without pseudo-header."""
        if len(icmp) < 8:
            self._drop("truncated")
            return None
        if ones_complement_sum(icmp, pseudo_header_sum(src6, dst6, len(icmp), PROTO_ICMPV6)) != 0xFFFF:
            self._drop("bad_icmp_checksum")
            return None
        icmp_type = icmp[0]
        if icmp_type in _ICMP6_ECHO_TO_4:
            body = bytes((_ICMP6_ECHO_TO_4[icmp_type], icmp[1], 0, 0)) + icmp[4:]
        else:
            inner_has_fragment = _inner_has_fragment_header(icmp[8:])
            header = self._icmp6_error_header(icmp, inner_has_fragment)
            if header is None:
                self._drop("icmp_untranslatable")
                return None
            inner = self._inner_6to4(icmp[8:], src6, dst6, src4, dst4)
            if inner is None:
                return None
            body = (header + inner)[: ICMPV4_ERROR_MAX - IPV4_HEADER_LEN]
        return body[:2] + _H.pack(_checksum(body)) + body[4:]

    def _icmp6_error_header(self, icmp: bytes, inner_has_fragment: bool) -> bytes | None:
        icmp_type, code = icmp[0], icmp[1]
        if icmp_type == 1:
            code4 = _DU6_TO_DU4.get(code)
            return None if code4 is None else struct.pack("!BBHI", 3, code4, 0, 0)
        if icmp_type == 2:
            cfg = self.config
            overhead = IPV6_HEADER_LEN - IPV4_HEADER_LEN + (8 if inner_has_fragment else 0)
            mtu6 = struct.unpack_from("!I", icmp, 4)[0]
            mtu = min(mtu6 - overhead, cfg.ipv4_mtu, cfg.ipv6_mtu - overhead)
            return struct.pack("!BBHHH", 3, 4, 0, 0, max(0, min(mtu, 0xFFFF)))
        if icmp_type == 3:
            return struct.pack("!BBHI", 11, code, 0, 0)
        if icmp_type == 4:
            if code == 1:  # unrecognized Next Header -> Protocol Unreachable
                return struct.pack("!BBHI", 3, 2, 0, 0)
            if code == 0:
                pointer = _POINTER_6TO4.get(struct.unpack_from("!I", icmp, 4)[0])
                return None if pointer is None else struct.pack("!BBHBxxx", 12, 0, 0, pointer)
        return None  # MLD, ND, unknown informational/error types, option problems

    def _inner_6to4(
        self, data: bytes, outer_src6: bytes, outer_dst6: bytes, src4: bytes, dst4: bytes
    ) -> bytes | None:
        if len(data) < IPV6_HEADER_LEN or data[0] >> 4 != 6:
            self._drop("icmp_inner_malformed")
            return None
        first_word, payload_len, next_header, hop_limit, isrc6, idst6 = _IPV6.unpack_from(data)
        isrc4 = self._inner_address_6to4(isrc6, outer_src6, outer_dst6, src4, dst4)
        idst4 = self._inner_address_6to4(idst6, outer_src6, outer_dst6, src4, dst4)
        if isrc4 is None or idst4 is None:
            self._drop("icmp_inner_unmappable")
            return None
        walked = self._walk_extensions(data, IPV6_HEADER_LEN, next_header, inner=True)
        if walked is None:
            return None
        offset, next_header, fragment = walked
        payload = data[offset:]
        upper_len = payload_len - (offset - IPV6_HEADER_LEN)
        if upper_len < 0:
            self._drop("icmp_inner_malformed")
            return None
        frag_offset = 0
        protocol = next_header
        if next_header == PROTO_ICMPV6:
            protocol = PROTO_ICMP
            if fragment is None or fragment[0] == 0:
                if payload and payload[0] not in _ICMP6_ECHO_TO_4:
                    self._drop("icmp_error_in_error")
                    return None
                if len(payload) >= 4:
                    payload = _retype_icmp_6to4(payload, isrc6, idst6, upper_len)
        if fragment is not None:
            frag_offset = fragment[0]
        if frag_offset == 0 and next_header in (PROTO_TCP, PROTO_UDP):
            at = 16 if next_header == PROTO_TCP else 6
            if len(payload) >= at + 2:
                checksum = _H.unpack_from(payload, at)[0]
                if checksum or next_header == PROTO_TCP:
                    new = _adjust(checksum, _sum(isrc6 + idst6), _sum(isrc4 + idst4))
                    if next_header == PROTO_UDP and new == 0:
                        new = 0xFFFF
                    payload = payload[:at] + _H.pack(new) + payload[at + 2 :]
        total_len = IPV4_HEADER_LEN + upper_len
        if fragment is not None:
            ident = fragment[2] & 0xFFFF
            flags = (0x2000 if fragment[1] else 0) | frag_offset
        else:
            ident = 0  # not a packet anyone reassembles: deterministic
            flags = 0x4000 if total_len > DF_THRESHOLD else 0
        tos = (first_word >> 20) & 0xFF
        if self.config.override_tos is not None:
            tos = self.config.override_tos
        header = bytearray(
            _IPV4.pack(0x45, tos, total_len, ident, flags, hop_limit, protocol, 0, isrc4, idst4)
        )
        _ipv4_header_checksum(header)
        return bytes(header) + payload

    def _inner_address_6to4(
        self, addr: bytes, outer_src6: bytes, outer_dst6: bytes, src4: bytes, dst4: bytes
    ) -> bytes | None:
        if addr == outer_dst6:
            return dst4
        if addr == outer_src6:
            return src4
        return self.map_6to4(addr)

    def _icmp6_error(self, original: bytes, icmp_type: int, code: int, *, value: int = 0) -> None:
        if not self.config.generate_icmp_errors:
            return
        src6 = self.config.icmpv6_error_source or original[24:40]
        error = build_icmpv6_error(original, src6, icmp_type, code, value)
        if error is not None:
            self._errors.append(error)


# -- helpers shared by both directions ------------------------------------------------------


def _has_unexpired_source_route(options: bytes) -> bool:
    """LSRR (131) or SSRR (137) whose pointer has not run past the option (RFC 7915 4.1)."""
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:  # end of option list
            return False
        if kind == 1:  # no-operation
            i += 1
            continue
        if i + 1 >= len(options):
            return False
        length = options[i + 1]
        if length < 2:
            return False
        if kind in (131, 137) and i + 2 < len(options) and options[i + 2] <= length:
            return True
        i += length
    return False


def _retype_icmp_4to6(icmp: bytes, src6: bytes, dst6: bytes, upper_len: int) -> bytes:
    """Echo in a packet in error: new type and pseudo-header, checksum updated incrementally."""
    old_word = icmp[0] << 8 | icmp[1]
    new_type = _ICMP4_ECHO_TO_6[icmp[0]]
    new_word = new_type << 8 | icmp[1]
    checksum = _H.unpack_from(icmp, 2)[0]
    added = _fold(new_word + pseudo_header_sum(src6, dst6, upper_len, PROTO_ICMPV6))
    checksum = _adjust(checksum, old_word, added)
    return bytes((new_type, icmp[1])) + _H.pack(checksum) + icmp[4:]


def _retype_icmp_6to4(icmp: bytes, src6: bytes, dst6: bytes, upper_len: int) -> bytes:
    old_word = icmp[0] << 8 | icmp[1]
    new_type = _ICMP6_ECHO_TO_4[icmp[0]]
    new_word = new_type << 8 | icmp[1]
    checksum = _H.unpack_from(icmp, 2)[0]
    removed = _fold(old_word + pseudo_header_sum(src6, dst6, upper_len, PROTO_ICMPV6))
    checksum = _adjust(checksum, removed, new_word)
    return bytes((new_type, icmp[1])) + _H.pack(checksum) + icmp[4:]


def _inner_has_fragment_header(data: bytes) -> bool:
    if len(data) < IPV6_HEADER_LEN:
        return False
    next_header, offset = data[6], IPV6_HEADER_LEN
    while next_header in _SKIPPED_EXT and offset + 2 <= len(data):
        next_header, offset = data[offset], offset + (data[offset + 1] + 1) * 8
    return next_header == PROTO_FRAGMENT


# -- module-level convenience (a shared default translator) ---------------------------------

_default = Rfc7915Translator()


def translate_4to6(packet: bytes | bytearray | memoryview, src6: bytes, dst6: bytes) -> list[bytes]:
    """RFC 7915 section 4 with the default config (see Rfc7915Translator for knobs)."""
    return _default.translate_4to6(packet, src6, dst6)


def translate_6to4(packet: bytes | bytearray | memoryview, src4: bytes, dst4: bytes) -> list[bytes]:
    """RFC 7915 section 5 with the default config."""
    return _default.translate_6to4(packet, src4, dst4)


__all__ = [
    "Rfc7915Translator",
    "TranslatorConfig",
    "build_icmpv4_error",
    "build_icmpv6_error",
    "icmpv4_admin_prohibited",
    "translate_4to6",
    "translate_6to4",
]
