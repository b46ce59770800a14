"""Manual keying from a TOML file, and Wireshark ESP SA strings for tshark.

File format (hex keys; for the AEAD algorithms `key` is the RFC 4106/7634 key material,
i.e. the cipher key followed by the 4-byte salt):

    [[sa]]
    name = "mn-ha-out"          # referenced by policies
    direction = "out"           # out | in
    spi = 0x1001
    algorithm = "aes-gcm-16"    # see netstack.ipsec.transforms.ALGORITHMS
    key = "..."                 # hex
    auth_key = "..."            # hex, CBC/NULL + HMAC-SHA-256-128 only
    mode = "transport"          # transport | tunnel
    src = "2001:db8:a::10"      # ESP packet source (tunnel: local/remote endpoint)
    dst = "2001:db8:6::1"
    esn = false
    replay_window = 64
    soft_lifetime_seconds = 3000   # also hard_lifetime_seconds, soft/hard_lifetime_bytes

    [[policy]]
    name = "bu-to-ha"
    direction = "out"           # out | in
    action = "protect"          # protect | bypass | discard
    sa = "mn-ha-out"
    priority = 10
    src = "2001:db8:6::1000/128"
    dst = "2001:db8:6::1/128"
    protocol = 135              # number, or tcp | udp | icmpv6 | mh | esp | ipv6 | ipv4
    mh_type = 5
    dst_ports = [5060, 5060]    # or dst_port = 5060; same for src

A key file must not be readable by group or others; `load_key_file` refuses it.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, ip_network
from pathlib import Path
from typing import Any

from netstack.ipsec.errors import KeyFileError
from netstack.ipsec.processor import SecurityProcessor
from netstack.ipsec.sa import Lifetime, SecurityAssociation
from netstack.ipsec.spd import Policy, Selector
from netstack.ipsec.transforms import (
    AES_CBC_HMAC_SHA256,
    AES_CBC_NO_AUTH,
    AES_GCM_16,
    NULL_HMAC_SHA256,
)

PROTOCOL_NAMES = {"tcp": 6, "udp": 17, "icmpv6": 58, "mh": 135, "esp": 50, "ipv6": 41, "ipv4": 4}
_SA_KEYS = {
    "name", "direction", "spi", "algorithm", "key", "auth_key", "salt", "mode", "src", "dst",
    "esn", "replay_window", "soft_lifetime_seconds", "hard_lifetime_seconds",
    "soft_lifetime_bytes", "hard_lifetime_bytes",
}  # fmt: skip
_POLICY_KEYS = {
    "name", "direction", "action", "sa", "priority", "src", "dst", "protocol", "mh_type",
    "src_port", "dst_port", "src_ports", "dst_ports",
}  # fmt: skip


@dataclass
class KeyConfig:
    sas: list[tuple[str, SecurityAssociation]] = field(default_factory=list)  # (direction, SA)
    policies: list[Policy] = field(default_factory=list)


def check_key_file_permissions(path: str | os.PathLike[str]) -> None:
    mode = os.stat(path).st_mode
    if mode & 0o077:
        raise KeyFileError(
            f"key file {os.fspath(path)} is readable or writable by group/others "
            f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {os.fspath(path)}"
        )


def load_key_file(path: str | os.PathLike[str], *, now: float = 0.0) -> KeyConfig:
    """Read a manual-keying TOML file after refusing unsafe permissions."""
    check_key_file_permissions(path)
    try:
        data = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise KeyFileError(f"key file {os.fspath(path)}: {exc}") from None
    return parse_key_config(data, now=now, source=os.fspath(path))


def parse_key_config(data: dict[str, Any], *, now: float = 0.0, source: str = "") -> KeyConfig:
    config = KeyConfig()
    where = source or "key config"
    try:
        for index, entry in enumerate(data.get("sa", [])):
            config.sas.append(_parse_sa(entry, now, f"{where}: sa[{index}]"))
        names = {sa.name for _d, sa in config.sas}
        for index, entry in enumerate(data.get("policy", [])):
            policy = _parse_policy(entry, f"{where}: policy[{index}]")
            if policy.sa is not None and policy.sa not in names:
                raise KeyFileError(f"{where}: policy {policy.name!r} names unknown SA {policy.sa!r}")
            config.policies.append(policy)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # AttributeError: a value of the wrong TOML type (e.g. `sa = ["x"]`), found by fuzzing
        if isinstance(exc, KeyFileError):
            raise
        raise KeyFileError(f"{where}: {exc}") from None
    return config


def _hex(value: str | None) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise KeyFileError(f"key material must be a hex string, not {value!r}")
    return bytes.fromhex(value.removeprefix("0x").replace(":", ""))


def _unknown(entry: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = set(entry) - allowed
    if extra:
        raise KeyFileError(f"{where}: unknown keys {sorted(extra)}")


def _parse_sa(entry: dict[str, Any], now: float, where: str) -> tuple[str, SecurityAssociation]:
    _unknown(entry, _SA_KEYS, where)
    if entry.get("algorithm") == AES_CBC_NO_AUTH:
        # Confidentiality without integrity is open to cut-and-paste attacks and cannot use
        # anti-replay; it exists only to reproduce the RFC 3602 vectors.
        raise KeyFileError(f"{where}: {AES_CBC_NO_AUTH} is for test vectors only")
    sa = SecurityAssociation(
        spi=int(entry["spi"]),
        algorithm=entry["algorithm"],
        key=_hex(entry.get("key", "")) or b"",
        auth_key=_hex(entry.get("auth_key")),
        salt=_hex(entry.get("salt")),
        mode=entry.get("mode", "transport"),
        src=IPv6Address(entry["src"]) if "src" in entry else None,
        dst=IPv6Address(entry["dst"]) if "dst" in entry else None,
        esn=bool(entry.get("esn", False)),
        replay_window_size=int(entry.get("replay_window", 64)),
        lifetime=Lifetime(
            soft_seconds=entry.get("soft_lifetime_seconds"),
            hard_seconds=entry.get("hard_lifetime_seconds"),
            soft_bytes=entry.get("soft_lifetime_bytes"),
            hard_bytes=entry.get("hard_lifetime_bytes"),
        ),
        created_at=now,
        name=entry["name"],
    )
    direction = entry.get("direction", "out")
    if direction not in ("in", "out"):
        raise KeyFileError(f"{where}: direction must be in or out")
    return direction, sa


def _ports(entry: dict[str, Any], prefix: str) -> tuple[int, int] | None:
    if f"{prefix}_port" in entry:
        port = int(entry[f"{prefix}_port"])
        return port, port
    if f"{prefix}_ports" in entry:
        low, high = entry[f"{prefix}_ports"]
        return int(low), int(high)
    return None


def _parse_policy(entry: dict[str, Any], where: str) -> Policy:
    _unknown(entry, _POLICY_KEYS, where)
    protocol = entry.get("protocol")
    if isinstance(protocol, str):
        protocol = PROTOCOL_NAMES[protocol.lower()]
    selector = Selector(
        src=ip_network(entry.get("src", "::/0")),
        dst=ip_network(entry.get("dst", "::/0")),
        protocol=protocol,
        mh_type=entry.get("mh_type"),
        src_ports=_ports(entry, "src"),
        dst_ports=_ports(entry, "dst"),
    )
    return Policy(
        name=entry["name"],
        direction=entry["direction"],
        action=entry["action"],
        selector=selector,
        sa=entry.get("sa"),
        priority=int(entry.get("priority", 100)),
    )


def build_processor(name: str, config: KeyConfig) -> SecurityProcessor:
    processor = SecurityProcessor(name)
    for direction, sa in config.sas:
        processor.sad.add(sa, direction)
    for policy in config.policies:
        processor.spd.add(policy)
    return processor


# Wireshark 4.0 esp_sa UAT: protocol, src, dst, SPI, encryption algorithm, encryption key,
# authentication algorithm, authentication key. Algorithms are given by their menu labels.
_WS_ENCRYPTION = {
    AES_GCM_16: "AES-GCM with 16 octet ICV [RFC4106]",
    AES_CBC_HMAC_SHA256: "AES-CBC [RFC3602]",
    AES_CBC_NO_AUTH: "AES-CBC [RFC3602]",
    NULL_HMAC_SHA256: "NULL",
}
_WS_AUTHENTICATION = {
    AES_GCM_16: "NULL",
    AES_CBC_HMAC_SHA256: "HMAC-SHA-256-128 [RFC4868]",
    AES_CBC_NO_AUTH: "NULL",
    NULL_HMAC_SHA256: "HMAC-SHA-256-128 [RFC4868]",
}


def tshark_uat(sas: Iterable[SecurityAssociation]) -> list[str]:
    """`-o` values that let tshark decrypt these SAs: ["uat:esp_sa:\"IPv6\",...", ...].

    Wireshark 4.0 has no ChaCha20-Poly1305 for ESP (and no ESN): such SAs raise ValueError.
    Addresses not known on the SA are given as the wildcard "*". Wireshark matches a packet
    with a Home Address option by the home address, so a transport-mode SA's `src` should be
    the home address, as in RFC 3776.
    """
    records = []
    for sa in sas:
        if sa.algorithm not in _WS_ENCRYPTION:
            raise ValueError(f"Wireshark 4.0 cannot decrypt ESP {sa.algorithm} (SA {sa.name})")
        key = sa.key + (sa.salt or b"")  # GCM: Wireshark wants key || salt
        fields = [
            "IPv6",
            str(sa.src) if sa.src else "*",
            str(sa.dst) if sa.dst else "*",
            f"0x{sa.spi:08x}",
            _WS_ENCRYPTION[sa.algorithm],
            f"0x{key.hex()}" if key else "",
            _WS_AUTHENTICATION[sa.algorithm],
            f"0x{sa.auth_key.hex()}" if sa.auth_key else "",
        ]
        records.append("uat:esp_sa:" + ",".join(f'"{f}"' for f in fields))
    return records
