"""Every parser that sees the network or the user, as fuzz targets with valid seed inputs.

Invariant (house rule): a parser returns a value or raises the project's own error (a
ParseError subclass on the wire, ConfigError / KeyFileError for files); nothing else
escapes. `run_target` applies it; `mutate` derives inputs from the seeds (bit flips,
interesting values in 8/16-bit fields, truncation, insertion, splicing). Shared by
`python -m benchmarks fuzz` (millions of inputs) and tests/unit/test_fuzz_parsers.py
(hypothesis, bounded).
"""

from __future__ import annotations

import asyncio
import random
import tomllib
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path

import dns.message
import dns.rrset

from benchmarks.fuzz_correspondent import CorrespondentTarget, correspondent_seeds
from guest_agent.config import AgentConfig
from guest_agent.dns_proxy import DnsProxy
from netstack.ipsec.errors import KeyFileError
from netstack.ipsec.esp import protect, unprotect
from netstack.ipsec.keys import parse_key_config
from netstack.ipsec.sa import SecurityAssociation
from netstack.ipsec.transforms import AES_GCM_16
from netstack.runtime.configfile import ConfigError, build_dataclass
from netstack.translate.rfc7915 import Rfc7915Translator
from netstack.wire.arp import build_arp, parse_arp
from netstack.wire.errors import ParseError
from netstack.wire.ethernet import ETH_P_IPV6, build_ethernet, parse_ethernet
from netstack.wire.icmpv6 import build_icmpv6_packet, decode_icmpv6
from netstack.wire.icmpv6_types import (
    EchoRequest,
    ICMPv6Error,
    MapOption,
    Mtu,
    NeighborAdvertisement,
    NeighborSolicitation,
    PrefixInformation,
    RouterAdvertisement,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
)
from netstack.wire.ip6ip6 import decapsulate, encapsulate
from netstack.wire.ipv4 import build_ipv4_udp, parse_ipv4_udp
from netstack.wire.ipv6 import build_ipv6_packet, parse_ipv6_packet
from netstack.wire.mh import (
    BindingAck,
    BindingError,
    BindingRefreshAdvice,
    BindingRefreshRequest,
    BindingUpdate,
    HomeTestInit,
    MobileNetworkPrefix,
)
from netstack.wire.mh_codec import (
    build_mobility_packet,
    decode_mobility_header,
    decode_mobility_packet,
    encode_mobility_header,
)
from network.home_agent.config import HomeAgentConfig

HA = IPv6Address("2001:db8:6::1")
HOA = IPv6Address("2001:db8:6::1000")
COA = IPv6Address("2001:db8:b::1234")
CN = IPv6Address("2001:db8:8::1001")
MAC = bytes.fromhex("02000000aa01")
V4_HOST, V4_CN = IPv4Address("198.18.0.2"), IPv4Address("198.18.0.7")


@dataclass(frozen=True)
class Target:
    name: str
    parse: Callable[[bytes], object]
    seeds: tuple[bytes, ...]
    allowed: tuple[type[BaseException], ...] = (ParseError,)


# ---------------------------------------------------------------- seeds


def _mh_seeds() -> list[bytes]:
    messages = [
        BindingUpdate(sequence=7, lifetime=420),
        BindingUpdate(sequence=9, lifetime=420, mobile_router=True,
                      options=(MobileNetworkPrefix(IPv6Network("2001:db8:6:100::/64")),)),
        BindingAck(status=0, sequence=7, lifetime=420, options=(BindingRefreshAdvice(100),)),
        BindingError(status=2, home_address=HOA),
        BindingRefreshRequest(),
        HomeTestInit(home_init_cookie=bytes(range(8))),
    ]
    return [encode_mobility_header(m, HOA, HA) for m in messages]


def _packet_seeds() -> list[bytes]:
    return [
        build_mobility_packet(COA, HA, BindingUpdate(sequence=1, lifetime=420), home_address=HOA),
        build_mobility_packet(HA, COA, BindingAck(status=0, sequence=1, lifetime=420),
                              routing_type2=HOA),
        build_icmpv6_packet(CN, HOA, EchoRequest(1, 2, b"ping")),
        build_ipv6_packet(HOA, CN, 17, bytes.fromhex("d4310035000c0000") + b"dns!"),
        build_ipv6_packet(HOA, CN, 6, bytes.fromhex("c0de0050000000010000000050022000") + bytes(4)),
    ]


def _nd_seeds() -> list[bytes]:
    ra = RouterAdvertisement(options=(
        SourceLinkLayerAddress(MAC), Mtu(1500),
        PrefixInformation(IPv6Network("2001:db8:a::/64"), 86400, 14400),
        MapOption(distance=1, preference=10, valid_lifetime=3600,
                  map_address=IPv6Address("2001:db8:d::1")),
    ))
    messages = [ra, NeighborSolicitation(target=COA, options=(SourceLinkLayerAddress(MAC),)),
                NeighborAdvertisement(target=COA, router=False, solicited=True, override=True,
                                      options=(TargetLinkLayerAddress(MAC),)),
                EchoRequest(1, 1, b"x" * 8)]
    return [build_icmpv6_packet(HA, COA, m)[40:] for m in messages]


def _ipv4_seeds() -> list[bytes]:
    udp = build_ipv4_udp(V4_HOST.packed, V4_CN.packed, 4000, 53, b"query")
    icmp = bytes.fromhex("4500001c00010000400100000a0000010a000002") + bytes.fromhex("0800f7fd00010001")
    tcp = (bytes.fromhex("4500002800020000400600000a0000010a000002")
           + bytes.fromhex("c0de005000000001000000005002200000000000"))
    return [udp, icmp, tcp]


def _icmp_error_seeds() -> list[bytes]:
    inner = build_ipv6_packet(HOA, CN, 17, bytes.fromhex("d4310035000c0000") + b"dns!")
    error = ICMPv6Error(1, 4, 0, inner)
    return [build_icmpv6_packet(CN, HOA, error)]


_SA = SecurityAssociation(spi=0x1001, algorithm=AES_GCM_16, key=bytes(range(20)))


def _esp_seeds() -> list[bytes]:
    sender = SecurityAssociation(spi=0x1001, algorithm=AES_GCM_16, key=bytes(range(20)))
    return [protect(sender, b"inner packet" * 3, 41, now=0.0) for _ in range(2)]


HA_CONFIG = b"""[node]
state_dir = "/run/mip6term/m6"
[link]
interface = "eth0"
[home_agent]
address = "2001:db8:6::1"
home_prefix = "2001:db8:6::/64"
refused_home_addresses = ["2001:db8:6::dead"]
max_lifetime = 420
"""
GUEST_CONFIG = b"""[mobility]
home_address = "2001:db8:6::1000"
home_agent = "2001:db8:6::1"
home_prefix = "2001:db8:6::/64"
[tun]
name = "hoa0"
"""
KEY_FILE = b"""[[sa]]
name = "mn-ha-bu"
direction = "out"
spi = 4097
algorithm = "aes-gcm-16"
key = "000102030405060708090a0b0c0d0e0f10111213"
mode = "transport"
[[policy]]
name = "bu"
direction = "out"
action = "protect"
sa = "mn-ha-bu"
priority = 10
protocol = 135
"""


def _dns_reply_seeds() -> list[bytes]:
    query = dns.message.make_query("cn.example.", "AAAA")
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text("cn.example.", 300, "IN", "AAAA", str(CN)))
    cname = dns.message.make_response(query)
    cname.answer.append(dns.rrset.from_text("cn.example.", 300, "IN", "CNAME", "www.example."))
    cname.answer.append(dns.rrset.from_text("www.example.", 300, "IN", "AAAA", str(CN)))
    return [reply.to_wire(), cname.to_wire()]


# ---------------------------------------------------------------- parse functions


def _mh_packet(data: bytes) -> object:
    return decode_mobility_packet(parse_ipv6_packet(data), verify_checksum=False)


_TRANSLATOR = Rfc7915Translator()


def _translate_4to6(data: bytes) -> object:
    return _TRANSLATOR.translate_4to6(data, HOA.packed, CN.packed)


def _translate_6to4(data: bytes) -> object:
    return _TRANSLATOR.translate_6to4(data, V4_CN.packed, V4_HOST.packed)


def _esp(data: bytes) -> object:
    sa = SecurityAssociation(spi=0x1001, algorithm=AES_GCM_16, key=bytes(range(20)))
    return unprotect(sa, data, 0.0)


def _toml(data: bytes) -> dict[str, object] | None:
    try:
        return tomllib.loads(data.decode("utf-8", errors="replace"))
    except tomllib.TOMLDecodeError:
        return None  # the loaders turn this into ConfigError / KeyFileError


def _ha_config(data: bytes) -> object:
    parsed = _toml(data)
    return None if parsed is None else build_dataclass(HomeAgentConfig, parsed)


def _guest_config(data: bytes) -> object:
    parsed = _toml(data)
    return None if parsed is None else build_dataclass(AgentConfig, parsed)


def _key_file(data: bytes) -> object:
    parsed = _toml(data)
    return None if parsed is None else parse_key_config(parsed)


class _DnsTarget:
    """The guest's DNS proxy: an A query for the host, answered from a fuzzed AAAA reply."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.reply = b""
        self.proxy = DnsProxy(self._upstream, lambda _v6: V4_CN.packed)
        self.query = dns.message.make_query("cn.example.", "A").to_wire()

    async def _upstream(self, query: bytes) -> bytes:
        return query[:2] + self.reply[2:]  # the fuzzed reply answers this query's id

    def __call__(self, data: bytes) -> object:
        self.reply = data
        answer = self.loop.run_until_complete(self.proxy.answer(self.query))
        if answer is not None:
            dns.message.from_wire(answer)  # what we send the host must itself parse
        return answer


def targets() -> list[Target]:
    ethernet_seed = build_ethernet(b"\xff" * 6, MAC, ETH_P_IPV6, _packet_seeds()[0])
    return [
        Target("ethernet", parse_ethernet, (ethernet_seed,)),
        Target("ipv6", parse_ipv6_packet, tuple(_packet_seeds())),
        Target("mobility_header", lambda d: decode_mobility_header(d, HOA, HA, verify_checksum=False),
               tuple(_mh_seeds())),
        Target("mobility_packet", _mh_packet, tuple(_packet_seeds()[:2])),
        Target("icmpv6_nd", lambda d: decode_icmpv6(d, HA, COA, verify_checksum=False),
               tuple(_nd_seeds())),
        Target("ip6ip6", decapsulate, (bytes(encapsulate(_packet_seeds()[2], COA.packed, HA.packed)),)),
        Target("arp", parse_arp, (build_arp(1, MAC, V4_HOST.packed, bytes(6), V4_CN.packed),)),
        Target("ipv4_udp", parse_ipv4_udp, (_ipv4_seeds()[0],)),
        Target("rfc7915_4to6", _translate_4to6, tuple(_ipv4_seeds())),
        Target("rfc7915_6to4", _translate_6to4, tuple(_packet_seeds()[2:] + _icmp_error_seeds())),
        Target("esp", _esp, tuple(_esp_seeds())),
        Target("dns_proxy", _DnsTarget(), tuple(_dns_reply_seeds())),
        Target("ha_config", _ha_config, (HA_CONFIG,), (ConfigError,)),
        Target("guest_config", _guest_config, (GUEST_CONFIG,), (ConfigError,)),
        Target("key_file", _key_file, (KEY_FILE,), (KeyFileError,)),
        Target("correspondent_ro", CorrespondentTarget(), correspondent_seeds(), ()),
    ]


# ---------------------------------------------------------------- mutation and the invariant

_INTERESTING8 = (0, 1, 2, 7, 8, 0x3F, 0x40, 0x7F, 0x80, 0xFE, 0xFF)
_INTERESTING16 = (0, 1, 8, 40, 0x7FFF, 0x8000, 0xFFFF)


def mutate(rng: random.Random, seed: bytes, max_size: int = 2048) -> bytes:
    if rng.random() < 0.05:
        return rng.randbytes(rng.randrange(0, 96))
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        n = len(data)
        if op == 0 and n:
            data[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            data[rng.randrange(n)] = rng.choice(_INTERESTING8)
        elif op == 2 and n >= 2:
            at = rng.randrange(n - 1)
            data[at:at + 2] = rng.choice(_INTERESTING16).to_bytes(2, "big")
        elif op == 3 and n:
            del data[rng.randrange(n):]
        elif op == 4:
            at = rng.randrange(n + 1)
            data[at:at] = rng.randbytes(rng.randrange(1, 17))
        elif op == 5 and n:
            at = rng.randrange(n)
            del data[at:at + rng.randrange(1, 17)]
        elif op == 6 and n:
            data[rng.randrange(n)] = rng.randrange(256)
        elif op == 7 and n >= 4:
            at, length = rng.randrange(n), rng.randrange(1, 9)
            data[at:at] = data[max(0, at - length):at]  # repeat a field (option storms)
    return bytes(data[:max_size])


@dataclass(frozen=True)
class Crash:
    target: str
    data: bytes
    error: str
    where: str


def run_target(target: Target, data: bytes) -> Crash | None:
    """Apply the invariant: None when the parser behaved, else what escaped."""
    try:
        target.parse(data)
    except target.allowed:
        return None
    except Exception as exc:  # noqa: BLE001 - the point is to see anything that escapes
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        return Crash(target.name, data, f"{type(exc).__name__}: {exc}", where)
    return None


# ---------------------------------------------------------------- a daemon's receive loop


class _FakeLink:
    """Stands in for PacketLink: hands the daemon one frame per read, swallows what it sends."""

    vnet_hdr = False
    mtu = 1500

    def __init__(self, ifname: str, vnet_hdr: bool = False) -> None:
        self.ifname = ifname
        self.mac = bytes.fromhex("02000000ee01")
        self.pending: list[memoryview] = []
        self.sent = 0

    def fileno(self) -> int:
        return -1

    def recv_batch(self, max_packets: int = 64) -> list[memoryview]:
        out, self.pending = self.pending, []
        return out

    def send(self, frame: bytes) -> bool:
        self.sent += 1
        return True

    def send_batch(self, frames: object) -> int:
        count = len(list(frames))  # type: ignore[arg-type]
        self.sent += count
        return count

    def close(self) -> None:
        pass


class HomeAgentReceiveTarget:
    """The home agent daemon's whole receive path (`_on_link_readable`) on one fuzzed frame.

    Nothing may escape it: every bad frame is dropped and counted. Proxy DAD is off so a valid
    BU creates a binding at once and later frames meet a binding cache that is not empty.
    """

    def __init__(self, state_dir: str) -> None:
        from unittest import mock

        import network.home_agent.daemon as daemon_module
        from network.home_agent.config import HomeAgentConfig

        config = HomeAgentConfig()
        config.node.state_dir = Path(state_dir)
        config.link.manage_interface = False
        config.link.tx_thread = False
        config.home_agent.proxy_dad = False
        with mock.patch.object(daemon_module, "PacketLink", _FakeLink), \
                mock.patch.object(daemon_module, "link_is_up", lambda _ifname: True):
            self.daemon = daemon_module.HomeAgentDaemon(config)
        self.link: _FakeLink = self.daemon.link  # type: ignore[assignment]
        self.daemon.nd.link_up(0.0)
        self.daemon.nd.add_static_address(HA, 64, 0.0, dad=False)
        self.daemon._save_bindings = lambda _now: None  # no fsync per fuzzed binding

    def __call__(self, frame: bytes) -> object:
        self.link.pending = [memoryview(frame)]
        self.daemon._on_link_readable()
        return None


def home_agent_frames() -> list[bytes]:
    ha_mac = bytes.fromhex("02000000ee01")
    packets = [
        *_packet_seeds()[:2],
        build_mobility_packet(COA, HA, BindingUpdate(sequence=3, lifetime=0), home_address=HOA),
        bytes(encapsulate(build_ipv6_packet(HOA, CN, 17, bytes(12)), COA.packed, HA.packed)),
        bytes(encapsulate(build_ipv6_packet(HOA, HA, 58, bytes.fromhex("80000000000100017069")),
                          COA.packed, HA.packed)),
        build_icmpv6_packet(CN, HA, EchoRequest(1, 2, b"ping"), hop_limit=64),
        build_icmpv6_packet(IPv6Address("2001:db8:6::ffff"), HA,
                            NeighborSolicitation(target=HA, options=(SourceLinkLayerAddress(MAC),))),
        build_ipv6_packet(CN, HOA, 17, bytes.fromhex("d4310035000c0000") + b"dns!"),
        build_ipv6_packet(COA, HA, 50, bytes.fromhex("0000100100000001") + bytes(40)),
    ]
    return [build_ethernet(ha_mac, MAC, ETH_P_IPV6, p) for p in packets]


def daemon_targets(state_dir: str) -> list[Target]:
    """Targets that build a daemon (need a writable state directory)."""
    return [Target("ha_receive_loop", HomeAgentReceiveTarget(state_dir),
                   tuple(home_agent_frames()), ()),
            Target("guest_receive_loop", GuestReceiveTarget(state_dir),
                   tuple(guest_frames()), ())]


class _FakeTun:
    def __init__(self, name: str, mtu: int = 1460, **_: object) -> None:
        self.written = 0

    def add_address(self, *_: object, **__: object) -> None:
        pass

    def add_route(self, *_: object, **__: object) -> None:
        pass

    def write(self, packet: object) -> bool:
        self.written += 1
        return True

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


class _FakeMonitor:
    def __init__(self, ifname: str) -> None:
        pass

    def poll(self) -> list[bool]:
        return []

    def close(self) -> None:
        pass


class GuestReceiveTarget:
    """The guest agent's receive path (`_on_link_readable`) on one fuzzed frame, with the
    terminal registered (CoA on 5b, tunnel up) so tunnelled packets, BAs, BRRs and BEs reach
    the deep paths. Nothing may escape it."""

    COA = IPv6Address("2001:db8:b::1234")

    def __init__(self, state_dir: str) -> None:
        from unittest import mock

        import guest_agent.agent as agent_module
        from guest_agent.config import AgentConfig
        from netstack.nd.events import AddressReady

        config = AgentConfig()
        config.node.state_dir = Path(state_dir)
        config.link.manage_interface = False
        config.link.tx_thread = False
        config.host_link.interface = ""
        with mock.patch.object(agent_module, "PacketLink", _FakeLink), \
                mock.patch.object(agent_module, "TunDevice", _FakeTun), \
                mock.patch.object(agent_module, "LinkMonitor", _FakeMonitor):
            self.agent = agent_module.GuestAgent(config)
        self.link: _FakeLink = self.agent.link  # type: ignore[assignment]
        self.agent.nd.link_up(0.0)
        self.agent._on_nd_event(AddressReady(self.COA, IPv6Network("2001:db8:b::/64"),
                                             float("inf"), float("inf")), 0.0)
        self.agent._after_input(0.0)
        entry = self.agent.mobile_node.binding_update_list.get(HA)
        if entry is not None:  # answer the BU the MN just sent: registered, tunnel up
            ba = build_mobility_packet(HA, self.COA, BindingAck(0, entry.sequence, 400),
                                       routing_type2=HOA)
            self(build_ethernet(self.link.mac, MAC, ETH_P_IPV6, ba))

    def __call__(self, frame: bytes) -> object:
        self.link.pending = [memoryview(frame)]
        self.agent._on_link_readable()
        return None


def guest_frames() -> list[bytes]:
    coa = GuestReceiveTarget.COA
    guest_mac = bytes.fromhex("02000000ee01")
    packets = [
        bytes(encapsulate(build_ipv6_packet(CN, HOA, 17, bytes.fromhex("0035d431000c0000") + b"dns!"),
                          HA.packed, coa.packed)),
        bytes(encapsulate(build_icmpv6_packet(CN, HOA, EchoRequest(1, 2, b"ping")),
                          HA.packed, coa.packed)),
        build_mobility_packet(HA, coa, BindingAck(status=0, sequence=9, lifetime=400),
                              routing_type2=HOA),
        build_mobility_packet(HA, coa, BindingRefreshRequest(), routing_type2=HOA),
        # status 2 (status 1 would remove the binding and leave the later inputs shallow)
        build_mobility_packet(HA, coa, BindingError(status=2, home_address=HOA)),
        build_ipv6_packet(COA, coa, 50, bytes.fromhex("0000100100000001") + bytes(40)),
    ]
    return [build_ethernet(guest_mac, MAC, ETH_P_IPV6, p) for p in packets]

