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

import dns.message
import dns.rrset

from benchmarks.fuzz_correspondent import CorrespondentTarget, correspondent_seeds
from benchmarks.fuzz_daemons import (
    GuestReceiveTarget,
    HomeAgentReceiveTarget,
    guest_frames,
    home_agent_frames,
)
from benchmarks.fuzz_seeds import (
    CN,
    COA,
    GUEST_CONFIG,
    HA,
    HA_CONFIG,
    HOA,
    KEY_FILE,
    MAC,
    V4_CN,
    V4_HOST,
    _dns_reply_seeds,
    _esp_seeds,
    _icmp_error_seeds,
    _ipv4_seeds,
    _mh_seeds,
    _nd_seeds,
    _packet_seeds,
)
from guest_agent.config import AgentConfig
from guest_agent.dns_proxy import DnsProxy
from netstack.ipsec.errors import KeyFileError
from netstack.ipsec.esp import unprotect
from netstack.ipsec.keys import parse_key_config
from netstack.ipsec.sa import SecurityAssociation
from netstack.ipsec.transforms import AES_GCM_16
from netstack.runtime.configfile import ConfigError, build_dataclass
from netstack.translate.rfc7915 import Rfc7915Translator
from netstack.wire.arp import build_arp, parse_arp
from netstack.wire.errors import ParseError
from netstack.wire.ethernet import ETH_P_IPV6, build_ethernet, parse_ethernet
from netstack.wire.icmpv6 import decode_icmpv6
from netstack.wire.ip6ip6 import decapsulate, encapsulate
from netstack.wire.ipv4 import parse_ipv4_udp
from netstack.wire.ipv6 import parse_ipv6_packet
from netstack.wire.mh_codec import decode_mobility_header, decode_mobility_packet
from network.home_agent.config import HomeAgentConfig


@dataclass(frozen=True)
class Target:
    name: str
    parse: Callable[[bytes], object]
    seeds: tuple[bytes, ...]
    allowed: tuple[type[BaseException], ...] = (ParseError,)


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


def daemon_targets(state_dir: str) -> list[Target]:
    """Targets that build a daemon (need a writable state directory)."""
    return [Target("ha_receive_loop", HomeAgentReceiveTarget(state_dir),
                   tuple(home_agent_frames()), ()),
            Target("guest_receive_loop", GuestReceiveTarget(state_dir),
                   tuple(guest_frames()), ())]
