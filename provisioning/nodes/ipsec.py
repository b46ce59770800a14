"""Manual keying for the test bed: random keys, one key file per node and layer, mode 0600.

Which protections are on is an `IpsecOptions` (from `testbed up --ipsec signalling,tunnel,
tunnel-only,e2e`). Every key file uses the netstack.ipsec.keys TOML format: the SAs this node
uses in each direction, and the policies (SPD) that name them. The two ends of an SA get the
same SPI and key.

SAs (SPIs fixed so captures are easy to read):
    0x1001 mn-ha-signalling  MN -> HA  transport  BU   (RFC 3776 / RFC 4877, MH type 5)
                                                  (AES-CBC + HMAC-SHA-256-128; others AES-GCM)
    0x1002 ha-mn-signalling  HA -> MN  transport  BA   (MH type 6)
    0x1003 mn-ha-tunnel      MN -> HA  tunnel     reverse tunnel (Fig. 21 / Fig. 22)
    0x1004 ha-mn-tunnel      HA -> MN  tunnel     forward tunnel
    0x2001 mn-cn-e2e         MN -> CN  transport  end-to-end (embodiment 5)
    0x2002 cn-mn-e2e         CN -> MN  transport

The care-of end of the tunnel SAs is unknown when keys are made: the file holds the home
address there, and the MN / HA replace it with the care-of address when a binding is
accepted / updated (the SA follows the binding, RFC 4877 section 4.1).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any

from netstack.ipsec.keys import load_key_file, tshark_uat
from netstack.ipsec.sa import TRANSPORT, SecurityAssociation
from provisioning.errors import ProvisioningError
from provisioning.topology import CN_ADDRESS, HOME_ADDRESS, HOME_AGENT

# Data SAs (tunnel, end-to-end): AES-GCM, the fastest here. Signalling SAs: AES-CBC with
# HMAC-SHA-256-128 (RFC 3602 / RFC 4868), so the running system exercises both kinds of
# transform; tshark verifies the ICVs of both (esp.enable_authentication_check).
ALGORITHM = "aes-gcm-16"
KEY_BYTES = 16 + 4  # AES-128 key || 4-byte salt (RFC 4106)
SIGNALLING_ALGORITHM = "aes-cbc-hmac-sha256-128"
CBC_KEY_BYTES = 16
HMAC_KEY_BYTES = 32
SWITCHES = ("signalling", "tunnel", "tunnel-only", "e2e")

TUNNEL_OFF = "off"
TUNNEL_ESP = "esp-tunnel"  # Fig. 21: ESP tunnel mode around the IPv6-in-IPv6 tunnel
TUNNEL_ESP_ONLY = "esp-tunnel-only"  # Fig. 22: the mobile tunnel header omitted

# key file names in the state dir, per node and layer
GUEST_MOBILITY_KEYS = "guest-mobility.keys.toml"
GUEST_E2E_KEYS = "guest-e2e.keys.toml"
HA_KEYS = "ha.keys.toml"
CN_KEYS = "cn.keys.toml"
KEY_FILES = (GUEST_MOBILITY_KEYS, GUEST_E2E_KEYS, HA_KEYS, CN_KEYS)
VMN_MOBILITY_KEYS = "vmn-mobility.keys.toml"  # --nemo: the node behind the mobile router


@dataclass(frozen=True)
class IpsecOptions:
    signalling: bool = False
    tunnel: str = TUNNEL_OFF
    end_to_end: bool = False

    @property
    def mobility(self) -> bool:
        """Whether the MN-HA layer has any SA (signalling or tunnel)."""
        return self.signalling or self.tunnel != TUNNEL_OFF

    @property
    def enabled(self) -> bool:
        return self.mobility or self.end_to_end


def parse_switches(text: str) -> IpsecOptions:
    """`signalling,tunnel,tunnel-only,e2e` (any combination; tunnel-only wins over tunnel)."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    unknown = sorted(set(words) - set(SWITCHES))
    if unknown:
        raise ProvisioningError(
            f"unknown --ipsec switch {unknown[0]!r} (choose from {', '.join(SWITCHES)})")
    tunnel = TUNNEL_OFF
    if "tunnel" in words:
        tunnel = TUNNEL_ESP
    if "tunnel-only" in words:
        tunnel = TUNNEL_ESP_ONLY
    return IpsecOptions(signalling="signalling" in words, tunnel=tunnel,
                        end_to_end="e2e" in words)


def _sa(name: str, direction: str, spi: int, key: bytes, mode: str, src: IPv6Address,
        dst: IPv6Address, auth_key: bytes | None = None) -> dict[str, Any]:
    sa: dict[str, Any] = {"name": name, "direction": direction, "spi": spi,
                          "algorithm": ALGORITHM if auth_key is None else SIGNALLING_ALGORITHM,
                          "key": key.hex()}
    if auth_key is not None:
        sa["auth_key"] = auth_key.hex()
    sa.update({"mode": mode, "src": str(src), "dst": str(dst), "replay_window": 64})
    return sa


def _policy(name: str, direction: str, action: str, *, sa: str | None = None, priority: int,
            src: str = "::/0", dst: str = "::/0", protocol: str | None = None,
            mh_type: int | None = None) -> dict[str, Any]:
    policy: dict[str, Any] = {"name": name, "direction": direction, "action": action,
                              "priority": priority, "src": src, "dst": dst}
    if sa is not None:
        policy["sa"] = sa
    if protocol is not None:
        policy["protocol"] = protocol
    if mh_type is not None:
        policy["mh_type"] = mh_type
    return policy


def _host(address: IPv6Address) -> str:
    return f"{address}/128"


def mobility_key_configs(options: IpsecOptions, *, home_address: IPv6Address = HOME_ADDRESS,
                         home_agent: IPv6Address = HOME_AGENT,
                         random: Any = secrets.token_bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(guest mobility key config, HA key config) as TOML-ready dicts."""
    guest: dict[str, Any] = {"sa": [], "policy": []}
    ha: dict[str, Any] = {"sa": [], "policy": []}
    hoa, haa = home_address, home_agent
    if options.signalling:
        bu_key, bu_auth = random(CBC_KEY_BYTES), random(HMAC_KEY_BYTES)
        ba_key, ba_auth = random(CBC_KEY_BYTES), random(HMAC_KEY_BYTES)
        for cfg, out_dir, in_dir in ((guest, "out", "in"), (ha, "in", "out")):
            cfg["sa"] += [
                _sa("mn-ha-signalling", out_dir, 0x1001, bu_key, TRANSPORT, hoa, haa, bu_auth),
                _sa("ha-mn-signalling", in_dir, 0x1002, ba_key, TRANSPORT, haa, hoa, ba_auth),
            ]
        # Selectors use the effective addresses (HAO / type 2 RH), RFC 3776 section 4.
        guest["policy"] += [
            _policy("bu-to-ha", "out", "protect", sa="mn-ha-signalling", priority=10,
                    src=_host(hoa), dst=_host(haa), mh_type=5),
            _policy("ba-from-ha", "in", "protect", sa="ha-mn-signalling", priority=10,
                    src=_host(haa), dst=_host(hoa), mh_type=6),
        ]
        ha["policy"] += [
            _policy("bu-from-mn", "in", "protect", sa="mn-ha-signalling", priority=10,
                    src=_host(hoa), dst=_host(haa), mh_type=5),
            _policy("ba-to-mn", "out", "protect", sa="ha-mn-signalling", priority=10,
                    src=_host(haa), dst=_host(hoa), mh_type=6),
        ]
    if options.tunnel != TUNNEL_OFF:
        up_key, down_key = random(KEY_BYTES), random(KEY_BYTES)
        for cfg, out_dir, in_dir in ((guest, "out", "in"), (ha, "in", "out")):
            # the home address stands for the care-of end until a binding exists
            cfg["sa"] += [
                _sa("mn-ha-tunnel", out_dir, 0x1003, up_key, "tunnel", hoa, haa),
                _sa("ha-mn-tunnel", in_dir, 0x1004, down_key, "tunnel", haa, hoa),
            ]
        if options.tunnel == TUNNEL_ESP:
            # Fig. 21: what ESP carries is the IPv6-in-IPv6 packet between CoA and HA.
            guest["policy"] += [
                _policy("tunnel-to-ha", "out", "protect", sa="mn-ha-tunnel", priority=20,
                        dst=_host(haa), protocol="ipv6"),
                _policy("tunnel-from-ha", "in", "protect", sa="ha-mn-tunnel", priority=20,
                        src=_host(haa), protocol="ipv6"),
            ]
            ha["policy"] += [
                _policy("tunnel-from-mn", "in", "protect", sa="mn-ha-tunnel", priority=20,
                        dst=_host(haa), protocol="ipv6"),
                _policy("tunnel-to-mn", "out", "protect", sa="ha-mn-tunnel", priority=20,
                        src=_host(haa), protocol="ipv6"),
            ]
        else:
            # Fig. 22: ESP carries the home address's own packets.
            guest["policy"] += [
                _policy("tunnel-to-ha", "out", "protect", sa="mn-ha-tunnel", priority=20,
                        src=_host(hoa)),
                _policy("tunnel-from-ha", "in", "protect", sa="ha-mn-tunnel", priority=20,
                        dst=_host(hoa)),
            ]
            ha["policy"] += [
                _policy("tunnel-from-mn", "in", "protect", sa="mn-ha-tunnel", priority=20,
                        src=_host(hoa)),
                _policy("tunnel-to-mn", "out", "protect", sa="ha-mn-tunnel", priority=20,
                        dst=_host(hoa)),
            ]
    return guest, ha


def end_to_end_key_configs(*, home_address: IPv6Address = HOME_ADDRESS,
                           correspondent: IPv6Address = CN_ADDRESS,
                           random: Any = secrets.token_bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(guest end-to-end key config, CN key config): ESP transport mode HoA <-> CN."""
    hoa, cn = home_address, correspondent
    up_key, down_key = random(KEY_BYTES), random(KEY_BYTES)
    guest = {
        "sa": [_sa("mn-cn-e2e", "out", 0x2001, up_key, TRANSPORT, hoa, cn),
               _sa("cn-mn-e2e", "in", 0x2002, down_key, TRANSPORT, cn, hoa)],
        "policy": [
            _policy("to-cn", "out", "protect", sa="mn-cn-e2e", priority=10,
                    src=_host(hoa), dst=_host(cn)),
            _policy("from-cn", "in", "protect", sa="cn-mn-e2e", priority=10,
                    src=_host(cn), dst=_host(hoa)),
            _policy("other-out", "out", "bypass", priority=100),
            _policy("other-in", "in", "bypass", priority=100),
        ],
    }
    cn_config = {
        "sa": [_sa("mn-cn-e2e", "in", 0x2001, up_key, TRANSPORT, hoa, cn),
               _sa("cn-mn-e2e", "out", 0x2002, down_key, TRANSPORT, cn, hoa)],
        "policy": [
            _policy("from-mn", "in", "protect", sa="mn-cn-e2e", priority=10,
                    src=_host(hoa), dst=_host(cn)),
            _policy("to-mn", "out", "protect", sa="cn-mn-e2e", priority=10,
                    src=_host(cn), dst=_host(hoa)),
            _policy("other-out", "out", "bypass", priority=100),
            _policy("other-in", "in", "bypass", priority=100),
        ],
    }
    return guest, cn_config


def _toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"0x{value:x}" if value > 255 else str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_key_file(config: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """A key file: arrays of tables [[sa]] and [[policy]]."""
    lines = ["# mip6term manual keying (netstack.ipsec.keys format). Keep this file mode 0600."]
    for table in ("sa", "policy"):
        for entry in config.get(table, ()):
            lines += ["", f"[[{table}]]"]
            lines += [f"{k} = {_toml_scalar(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def write_key_file(path: str, config: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Create `path` with mode 0600 from the start (never readable by others, not even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(render_key_file(config))
    os.chmod(path, 0o600)  # O_CREAT honours the mode only for new files


def write_key_files(state_dir: str, options: IpsecOptions) -> dict[str, str]:
    """Write the key files the options need; returns {file name: path}."""
    written: dict[str, str] = {}
    if options.mobility:
        guest, ha = mobility_key_configs(options)
        for name, cfg in ((GUEST_MOBILITY_KEYS, guest), (HA_KEYS, ha)):
            written[name] = os.path.join(state_dir, name)
            write_key_file(written[name], cfg)
    if options.end_to_end:
        guest, cn = end_to_end_key_configs()
        for name, cfg in ((GUEST_E2E_KEYS, guest), (CN_KEYS, cn)):
            written[name] = os.path.join(state_dir, name)
            write_key_file(written[name], cfg)
    return written


def _wildcard(sa: SecurityAssociation) -> SecurityAssociation:
    """The SA with its addresses left out: tshark then matches by SPI alone, which survives
    the care-of address changing under a tunnel SA and the HAO / type 2 RH of signalling."""
    return SecurityAssociation(spi=sa.spi, algorithm=sa.algorithm, key=sa.key,
                               auth_key=sa.auth_key, salt=sa.salt, mode=TRANSPORT,
                               name=sa.name)


def tshark_options(paths: Iterable[str]) -> list[str]:
    """`-o uat:esp_sa:...` values for every distinct SA (by SPI) in these key files."""
    seen: dict[int, SecurityAssociation] = {}
    for path in paths:
        for _direction, sa in load_key_file(path).sas:
            seen.setdefault(sa.spi, sa)
    return tshark_uat(_wildcard(sa) for sa in seen.values())


def bed_key_files(state_dir: str) -> list[str]:
    return [p for name in (*KEY_FILES, VMN_MOBILITY_KEYS)
            if os.path.exists(p := os.path.join(state_dir, name))]


def tshark_arguments(options: Iterable[str]) -> list[str]:
    """The argv fragment for tshark: ESP decryption and ICV checking on, one `-o` per SA."""
    argv = ["-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE"]
    for option in options:
        argv += ["-o", option]
    return argv


# hoa0's MTU with IPsec: 1500 - 40 (outer IPv6) - 40 (IPv6-in-IPv6, Fig. 21) - 2 x 37 (ESP
# with AES-GCM: header 8, IV 8, pad <= 3, trailer 2, ICV 16; tunnel and end-to-end), rounded
# down: TCP's MSS then fits every combination of protections.
TUN_MTU = 1320
HOST_MTU = TUN_MTU - 20  # an IPv4 header is 20 octets shorter than the IPv6 one


def apply_to_config(tables: dict[str, dict[str, Any]], node: str, state_dir: str,
                    options: IpsecOptions) -> None:
    """Add `[ipsec]` (and the smaller MTUs) to the guest's or the HA's config tables."""
    if not options.enabled:
        return
    mobility_keys = os.path.join(state_dir, GUEST_MOBILITY_KEYS if node == "guest" else HA_KEYS)
    section: dict[str, Any] = {"signalling": options.signalling, "tunnel": options.tunnel,
                               "require_protection": options.signalling}
    if options.mobility:
        section["key_file"] = mobility_keys
    if node == "guest":
        section["end_to_end"] = options.end_to_end
        if options.end_to_end:
            section["end_to_end_key_file"] = os.path.join(state_dir, GUEST_E2E_KEYS)
        tables.setdefault("tun", {})["mtu"] = TUN_MTU
        if "host_link" in tables:
            tables["host_link"]["host_mtu"] = HOST_MTU
    tables["ipsec"] = section
