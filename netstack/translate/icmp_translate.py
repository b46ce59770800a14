"""ICMP translation for the RFC 7915 translator (sections 4.2, 4.3, 5.2, 5.3).

A mixin of Rfc7915Translator: ICMPv4 <-> ICMPv6 type/code/pointer/MTU mapping, the packet in
error translated with its own (not decremented) TTL/hop limit, and the ICMP errors the
translator itself originates.
"""

from __future__ import annotations

import struct

from netstack.translate.icmp_errors import build_icmpv4_error, build_icmpv6_error
from netstack.translate.xlat_common import (
    _DU4_TO_DU6,
    _DU6_TO_DU4,
    _FRAG,
    _H,
    _ICMP4_ECHO_TO_6,
    _ICMP6_ECHO_TO_4,
    _IPV4,
    _IPV6,
    _POINTER_4TO6,
    _POINTER_6TO4,
    DF_THRESHOLD,
    ICMPV4_ERROR_MAX,
    ICMPV6_ERROR_MAX,
    IPV4_HEADER_LEN,
    IPV6_HEADER_LEN,
    PROTO_FRAGMENT,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    _adjust,
    _checksum,
    _inner_has_fragment_header,
    _ipv4_header_checksum,
    _retype_icmp_4to6,
    _retype_icmp_6to4,
    _sum,
)
from netstack.wire.checksum import ones_complement_sum, pseudo_header_sum


class IcmpTranslation:
    """ICMP parts of Rfc7915Translator (uses its config, counters, maps and error outbox)."""

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
