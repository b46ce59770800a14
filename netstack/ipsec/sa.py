"""Security Association: keys, transform, sequence counters, replay window, lifetimes.

An SA is unidirectional (RFC 4301 4.1). The same class serves both directions: the
outbound side uses `seq` (last sequence number sent), the inbound side `replay`.
All times are `now` values passed in by the caller (sans-IO).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import Any

from netstack.ipsec.errors import SaExpired
from netstack.ipsec.replay import ReplayWindow
from netstack.ipsec.transforms import (
    AEAD_ALGORITHMS,
    ALGORITHMS,
    SALT_LEN,
    Transform,
    make_transform,
)

TRANSPORT = "transport"
TUNNEL = "tunnel"
MODES = (TRANSPORT, TUNNEL)

SEQ_MAX_32 = (1 << 32) - 1
SEQ_MAX_64 = (1 << 64) - 1

IvGenerator = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class Lifetime:
    """Soft/hard limits by seconds since creation and by payload bytes; None = unlimited."""

    soft_seconds: float | None = None
    hard_seconds: float | None = None
    soft_bytes: int | None = None
    hard_bytes: int | None = None


LIFETIME_OK = "ok"
LIFETIME_SOFT = "soft"
LIFETIME_HARD = "hard"


@dataclass(eq=False)
class SecurityAssociation:
    """One ESP SA.

    `key` is the encryption key. For the AEAD algorithms the RFC 4106/7634 key material
    (key || 4-byte salt) may be given as `key` with `salt=None`: the last 4 bytes become the
    salt. `src`/`dst` are the addresses of the ESP packets (tunnel endpoints in tunnel mode,
    optional in transport mode; used for the tunnel header and for Wireshark).
    """

    spi: int
    algorithm: str
    key: bytes = b""
    auth_key: bytes | None = None
    salt: bytes | None = None
    mode: str = TRANSPORT
    src: IPv6Address | None = None
    dst: IPv6Address | None = None
    esn: bool = False
    replay_window_size: int = 64
    lifetime: Lifetime = field(default_factory=Lifetime)
    created_at: float = 0.0
    name: str = ""
    # Test hook: IV for a given sequence number. Default: the sequence number for the AEAD
    # algorithms (unique per SA, RFC 4106 3.1), random bytes for CBC (RFC 3602 2.3).
    iv_generator: IvGenerator | None = None

    seq: int = field(default=0, init=False)  # last sequence number sent (64-bit with ESN)
    packet_count: int = field(default=0, init=False)
    byte_count: int = field(default=0, init=False)
    soft_expired: bool = field(default=False, init=False)
    replay: ReplayWindow = field(init=False)
    transform: Transform = field(init=False, repr=False)
    seq_max: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.spi <= 0xFFFFFFFF or self.spi < 256:
            # SPIs 1-255 are reserved by IANA (RFC 4303 2.1), 0 is "no SA".
            raise ValueError(f"SPI {self.spi:#x} outside 256..2^32-1")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown ESP algorithm {self.algorithm!r}; known: {ALGORITHMS}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == TUNNEL and (self.src is None or self.dst is None):
            raise ValueError("a tunnel-mode SA needs src and dst (the tunnel endpoints)")
        if self.algorithm in AEAD_ALGORITHMS:
            if self.salt is None:
                self.key, self.salt = self.key[:-SALT_LEN], self.key[-SALT_LEN:]
        else:
            self.salt = b""
        self.transform = make_transform(self.algorithm, self.key, self.salt, self.auth_key)
        self.replay = ReplayWindow(self.replay_window_size)
        self.seq_max = SEQ_MAX_64 if self.esn else SEQ_MAX_32
        if self.iv_generator is None:
            iv_len = self.transform.iv_len
            if self.algorithm in AEAD_ALGORITHMS:
                self.iv_generator = _counter_iv
            elif iv_len:
                self.iv_generator = lambda _seq: os.urandom(iv_len)
            else:
                self.iv_generator = _no_iv

    # -- lifetimes ---------------------------------------------------------------------
    def lifetime_state(self, now: float) -> str:
        lt = self.lifetime
        age = now - self.created_at
        if (lt.hard_seconds is not None and age >= lt.hard_seconds) or (
            lt.hard_bytes is not None and self.byte_count >= lt.hard_bytes
        ):
            return LIFETIME_HARD
        if (lt.soft_seconds is not None and age >= lt.soft_seconds) or (
            lt.soft_bytes is not None and self.byte_count >= lt.soft_bytes
        ):
            return LIFETIME_SOFT
        return LIFETIME_OK

    def check_usable(self, now: float) -> None:
        """Raise SaExpired past the hard lifetime; flag `soft_expired` past the soft one."""
        state = self.lifetime_state(now)
        if state == LIFETIME_HARD:
            raise SaExpired(f"SA {self.spi:#010x} passed its hard lifetime")
        if state == LIFETIME_SOFT:
            self.soft_expired = True

    def account(self, nbytes: int) -> None:
        self.packet_count += 1
        self.byte_count += nbytes

    def as_dict(self, now: float) -> dict[str, Any]:
        """Status view; never includes key material."""
        return {
            "name": self.name,
            "spi": f"{self.spi:#010x}",
            "algorithm": self.algorithm,
            "mode": self.mode,
            "src": str(self.src) if self.src else None,
            "dst": str(self.dst) if self.dst else None,
            "esn": self.esn,
            "seq": self.seq,
            "packets": self.packet_count,
            "bytes": self.byte_count,
            "lifetime": self.lifetime_state(now),
            "replay": self.replay.as_dict(),
        }


def _counter_iv(seq: int) -> bytes:
    return seq.to_bytes(8, "big")


def _no_iv(_seq: int) -> bytes:
    return b""
