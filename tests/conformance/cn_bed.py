"""The CN suite's bed and testers (TAHI mip6-cn-20 topology on our bed).

NUT = the correspondent daemon (`testbed up --ro --no-agents`: no HA, no terminal). TAHI's
"MN" (at home, LinkX) is the tester "mn" on the home link: it owns each case's home address
(added to its kernel without DAD, so core resolves it) and sends HoTIs, BUs from home and
receives HoTs. TAHI's "MN'" / "MN''" (foreign links) is the tester "mnp" on visited link 5a
with two care-of addresses. Packets are built with our codec (the authenticator covers the
exact octets; scapy's option lengths are wrong for Nonce Indices and BAD) and judged by what
comes back on the wire, decoded by our codec; Echo Requests are scapy's.
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any

from scapy.layers.inet6 import HAO, ICMPv6EchoReply, ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from netstack.mobility.return_routability import binding_management_key, sign, verify
from netstack.runtime.control import control_request
from netstack.wire.checksum import internet_checksum, pseudo_header_sum
from netstack.wire.errors import ParseError
from netstack.wire.ipv6 import ParsedPacket, build_ipv6_packet, parse_ipv6_packet
from netstack.wire.mh import (
    BindingAck,
    BindingUpdate,
    CareOfTest,
    CareOfTestInit,
    HomeTest,
    HomeTestInit,
    MobilityMessage,
    NonceIndices,
)
from netstack.wire.mh_codec import decode_mobility_packet, encode_mobility_header
from provisioning import netns
from provisioning.nodes import agents
from provisioning.topology import CN_ADDRESS
from tests.conformance.tester import LinkTester
from tests.netns.conftest import BedHandle, _bring_up

CN = str(CN_ADDRESS)
_CN = CN_ADDRESS
_MH = 135


def _mac(text: str) -> bytes:
    return bytes(int(b, 16) for b in text.split(":"))


def decode(frame: Packet) -> tuple[ParsedPacket, MobilityMessage | None] | None:
    """Our codec's view of a received frame: the parsed packet and its MH message (if any)."""
    try:
        parsed = parse_ipv6_packet(bytes(frame)[14:])
    except ParseError:
        return None
    if parsed.upper_protocol != _MH:
        return parsed, None
    try:
        return parsed, decode_mobility_packet(parsed)
    except ParseError:
        return parsed, None


def mh_with(mh: bytes, *, payload_proto: int | None = None, checksum: int | None = None,
            src: IPv6Address, dst: IPv6Address = _CN) -> bytes:
    """A Mobility Header changed the TAHI way: piggybacking (Payload Proto != 59, checksum
    recomputed) or a wrong checksum."""
    out = bytearray(mh)
    if payload_proto is not None:
        out[0] = payload_proto
        out[4:6] = b"\x00\x00"
        out[4:6] = internet_checksum(out, pseudo_header_sum(src.packed, dst.packed, len(out), _MH)
                                     ).to_bytes(2, "big")
    if checksum is not None:
        out[4:6] = checksum.to_bytes(2, "big")
    return bytes(out)


@dataclass
class Keys:
    """What one return routability run gave the tester."""

    hot: HomeTest
    cot: CareOfTest | None

    @property
    def kbm(self) -> bytes:
        return binding_management_key(self.hot.home_keygen_token,
                                      self.cot.care_of_keygen_token if self.cot else None)

    @property
    def indices(self) -> NonceIndices:
        return NonceIndices(self.hot.home_nonce_index,
                            self.cot.care_of_nonce_index if self.cot else 0)


@dataclass
class CnBed:
    bed: BedHandle
    mn: LinkTester  # home link: the MN at home (HoTI, BU from home)
    mnp: LinkTester  # visited link 5a: MN' / MN'' (CoTI, BU, Echo w/ HAO)
    mn_ns: str
    core_mac: str
    router_mac: str
    coa: str
    coa2: str
    cookies: int = 0

    # ------------------------------------------------------------ node state
    def status(self) -> dict[str, Any]:
        return control_request(agents.socket_path(self.bed.state_dir, "cn"), {"cmd": "status"},
                               timeout=10)

    def counters(self) -> dict[str, int]:
        return self.status()["counters"]

    def own_home_address(self, hoa: str) -> None:
        netns.run(self.mn_ns, ["ip", "-6", "addr", "add", f"{hoa}/128", "dev", "eth0", "nodad"],
                  timeout=10)

    # ------------------------------------------------------------ sending
    def tester_for(self, src: str) -> LinkTester:
        return self.mnp if src in (self.coa, self.coa2) else self.mn

    def send(self, packet: bytes) -> None:
        src = str(IPv6Address(packet[8:24]))
        tester = self.tester_for(src)
        dst_mac = self.router_mac if tester is self.mnp else self.core_mac
        tester.send(_mac(dst_mac) + _mac(tester.mac) + b"\x86\xdd" + packet)

    def send_mh(self, src: str, mh: bytes, *, home_address: str | None = None) -> None:
        self.send(build_ipv6_packet(IPv6Address(src), _CN, _MH, mh,
                                    home_address=IPv6Address(home_address) if home_address else None))

    def cookie(self) -> bytes:
        self.cookies += 1
        return self.cookies.to_bytes(8, "big")

    def hoti_mh(self, hoa: str, cookie: bytes) -> bytes:
        return encode_mobility_header(HomeTestInit(cookie), IPv6Address(hoa), _CN)

    def coti_mh(self, coa: str, cookie: bytes) -> bytes:
        return encode_mobility_header(CareOfTestInit(cookie), IPv6Address(coa), _CN)

    def bu_mh(self, hoa: str, coa: str, seq: int, keys: Keys, *, ack: bool = True,
              lifetime: int = 40, home_registration: bool = False,
              indices: NonceIndices | None = None, kbm: bytes | None = None) -> bytes:
        """A BU signed with Kbm over the care-of address (RFC 6275 5.2.6)."""
        bu = BindingUpdate(sequence=seq, lifetime=lifetime, ack=ack,
                           home_registration=home_registration,
                           options=(indices or keys.indices,))
        signed = sign(bu, kbm if kbm is not None else keys.kbm, IPv6Address(coa), _CN)
        return encode_mobility_header(signed, IPv6Address(hoa), _CN)

    def send_bu(self, hoa: str, coa: str, seq: int, keys: Keys, *, hao: bool = True,
                **kw: Any) -> None:
        self.send_mh(coa, self.bu_mh(hoa, coa, seq, keys, **kw),
                     home_address=hoa if hao else None)

    def send_echo(self, hoa: str, coa: str, ident: int) -> None:
        frame = (Ether(dst=self.router_mac) / IPv6(src=coa, dst=CN)
                 / IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)]) / ICMPv6EchoRequest(id=ident, seq=1))
        self.mnp.send(frame)

    # ------------------------------------------------------------ receiving
    def expect_mh(self, tester: LinkTester, kind: type, timeout: float = 5.0,
                  **fields: Any) -> tuple[ParsedPacket, Any] | None:
        """The next MH message of `kind` from the CN (fields compared by value)."""
        found: list[tuple[ParsedPacket, Any]] = []

        def match(frame: Packet) -> bool:
            got = decode(frame)
            if got is None or got[1] is None or not isinstance(got[1], kind):
                return False
            if got[0].src != _CN:
                return False
            if any(getattr(got[1], k) != v for k, v in fields.items()):
                return False
            found.append(got)
            return True

        return found[0] if tester.expect(match, timeout) is not None else None

    def quiet(self, timeout: float) -> list[tuple[ParsedPacket, Any]]:
        """Everything the CN sent to either tester within `timeout` (both listened to)."""
        out = []
        socks = {self.mn.sock: self.mn, self.mnp.sock: self.mnp}
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(socks), [], [], left)
            for sock in ready:
                frame = socks[sock]._recv(0)
                got = decode(frame) if frame is not None else None
                if got is not None and got[0].src == _CN:
                    out.append(got)
        return out

    def drain(self) -> None:
        self.mn.drain()
        self.mnp.drain()

    # ------------------------------------------------------------ TAHI steps
    def home_test(self, hoa: str) -> HomeTest:
        cookie = self.cookie()
        self.send_mh(hoa, self.hoti_mh(hoa, cookie))
        got = self.expect_mh(self.mn, HomeTest, home_init_cookie=cookie)
        assert got is not None, "no HoT"
        parsed, hot = got
        assert parsed.dst == IPv6Address(hoa) and parsed.routing_type2 is None
        return hot

    def care_of_test(self, coa: str) -> CareOfTest:
        cookie = self.cookie()
        self.send_mh(coa, self.coti_mh(coa, cookie))
        got = self.expect_mh(self.mnp, CareOfTest, care_of_init_cookie=cookie)
        assert got is not None, "no CoT"
        parsed, cot = got
        assert parsed.dst == IPv6Address(coa) and parsed.home_address is None
        return cot

    def return_routability(self, hoa: str, coa: str) -> Keys:
        return Keys(self.home_test(hoa), self.care_of_test(coa))

    def expect_ba(self, hoa: str, coa: str, keys: Keys | None = None, timeout: float = 5.0,
                  kbm: bytes | None = None) -> BindingAck | None:
        """The BA to `coa` (type 2 routing header with `hoa` when coa != hoa); its Binding
        Authorization Data is checked with Kbm when one is given (RFC 6275 6.1.8)."""
        tester = self.tester_for(coa)
        got = self.expect_mh(tester, BindingAck, timeout)
        if got is None:
            return None
        parsed, ba = got
        assert parsed.dst == IPv6Address(coa)
        if coa != hoa:
            assert parsed.routing_type2 == IPv6Address(hoa), "BA without the type 2 RH"
        key = kbm if kbm is not None else (keys.kbm if keys is not None else None)
        if key is not None:
            assert verify(parsed.payload, key, IPv6Address(coa), _CN), "BA authenticator"
        return ba

    def register(self, hoa: str, coa: str, seq: int = 10, *, ack: bool = True,
                 lifetime: int = 40) -> Keys:
        keys = self.return_routability(hoa, coa)
        self.drain()
        self.send_bu(hoa, coa, seq, keys, ack=ack, lifetime=lifetime)
        if ack:
            ba = self.expect_ba(hoa, coa, keys)
            assert ba is not None and ba.status == 0, ba
        else:
            self.wait_binding(hoa, coa)
        return keys

    def binding(self, hoa: str) -> dict[str, Any] | None:
        for entry in self.status()["route_optimisation"]["binding_cache"]:
            if IPv6Address(entry["home_address"]) == IPv6Address(hoa):
                return entry
        return None

    def wait_binding(self, hoa: str, coa: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.binding(hoa)
            if entry and IPv6Address(entry["care_of_address"]) == IPv6Address(coa):
                return
            time.sleep(0.1)
        raise AssertionError(f"no binding {hoa} -> {coa}: {self.binding(hoa)}")

    def echo(self, hoa: str, coa: str, timeout: float = 3.0) -> str:
        """TAHI's judgement step: Echo Request w/ HAO from `coa`. "reply" (an Echo Reply to
        `coa` with a type 2 RH to `hoa`), "be1" (Binding Error status 1 for `hoa`), or
        "none" / what else came back."""
        self.cookies += 1
        ident = self.cookies & 0xFFFF
        self.mnp.drain()
        self.send_echo(hoa, coa, ident)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            frame = self.mnp._recv(left)
            if frame is None:
                continue
            got = decode(frame)
            if got is None or got[0].src != _CN:
                continue
            parsed, message = got
            if ICMPv6EchoReply in frame and frame[ICMPv6EchoReply].id == ident:
                ok = parsed.dst == IPv6Address(coa) and parsed.routing_type2 == IPv6Address(hoa)
                return "reply" if ok else f"reply without RH2 to {parsed.dst}"
            if message is not None and type(message).__name__ == "BindingError":
                ok = message.status == 1 and message.home_address == IPv6Address(hoa)
                return "be1" if ok and parsed.dst == IPv6Address(coa) else f"be {message}"
        return "none"


def bring_up() -> Iterator[CnBed]:
    from tests.conformance.conftest import _QUIET_KERNEL, global_address, mac_of

    for bed in _bring_up("--no-agents", "--ro"):
        mn_ns = bed.add_probe("home", "mn")
        mnp_ns = bed.add_probe("a", "mnp")
        for ns in (mn_ns, mnp_ns):
            netns.run(ns, ["nft", "-f", "-"], input=_QUIET_KERNEL.encode(), timeout=10)
        coa = global_address(bed, "mnp", "2001:db8:a:")
        coa2 = "2001:db8:a::c0a2"
        netns.run(mnp_ns, ["ip", "-6", "addr", "add", f"{coa2}/64", "dev", "eth0", "nodad"],
                  timeout=10)
        cn = CnBed(bed=bed, mn=LinkTester(mn_ns), mnp=LinkTester(mnp_ns), mn_ns=mn_ns,
                   core_mac=mac_of(bed, "core", "2001:db8:6::ffff"),
                   router_mac=mac_of(bed, "ar-a", "2001:db8:a::1"), coa=coa, coa2=coa2)
        try:
            yield cn
        finally:
            cn.mn.close()
            cn.mnp.close()
