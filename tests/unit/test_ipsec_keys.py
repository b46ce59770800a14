"""Manual keying from TOML, permission refusal, and the independent wire check: tshark
decrypts ESP packets made by this engine with the SA strings from tshark_uat()."""

from __future__ import annotations

import os
import shutil
import subprocess
from ipaddress import IPv6Address
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import HAO, MIP6MH_BU, IPv6, IPv6ExtHdrDestOpt
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from netstack.ipsec.errors import KeyFileError
from netstack.ipsec.keys import build_processor, load_key_file, parse_key_config, tshark_uat
from netstack.ipsec.modes import transport_protect, tunnel_protect
from netstack.ipsec.sa import SecurityAssociation
from netstack.ipsec.transforms import (
    AES_CBC_HMAC_SHA256,
    AES_GCM_16,
    CHACHA20_POLY1305,
    NULL_HMAC_SHA256,
)

KEY_FILE = """
[[sa]]
name = "mn-to-ha"
direction = "out"
spi = 0x1001
algorithm = "aes-gcm-16"
key = "000102030405060708090a0b0c0d0e0f10111213"
src = "2001:db8:6::1000"
dst = "2001:db8:6::1"
replay_window = 1024
hard_lifetime_seconds = 3600

[[sa]]
name = "ha-to-mn"
direction = "in"
spi = 0x1002
algorithm = "aes-cbc-hmac-sha256-128"
key = "000102030405060708090a0b0c0d0e0f"
auth_key = "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
esn = true

[[policy]]
name = "bu"
direction = "out"
action = "protect"
sa = "mn-to-ha"
src = "2001:db8:6::1000/128"
dst = "2001:db8:6::1/128"
protocol = "mh"
mh_type = 5

[[policy]]
name = "ba"
direction = "in"
action = "protect"
sa = "ha-to-mn"
mh_type = 6
priority = 5

[[policy]]
name = "sip"
direction = "out"
action = "bypass"
protocol = "udp"
dst_port = 5060
"""


def _write(tmp_path: Path, text: str, mode: int) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path, KEY_FILE, mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key_file(path)


def test_key_file_loads(tmp_path: Path) -> None:
    config = load_key_file(_write(tmp_path, KEY_FILE, 0o600), now=500.0)
    (d1, out), (d2, inbound) = config.sas
    assert (d1, d2) == ("out", "in")
    assert out.spi == 0x1001 and out.salt == bytes.fromhex("10111213") and len(out.key) == 16
    assert out.replay.size == 1024 and out.created_at == 500.0
    assert out.lifetime.hard_seconds == 3600
    assert inbound.esn and inbound.auth_key == bytes(range(32))
    bu, ba, sip = config.policies
    assert bu.selector.protocol == 135 and bu.selector.mh_type == 5
    assert ba.priority == 5 and ba.selector.protocol == 135
    assert sip.selector.dst_ports == (5060, 5060) and sip.selector.protocol == 17
    processor = build_processor("mn", config)
    assert processor.sad.inbound(0x1002) is inbound
    assert len(processor.spd) == 3


@pytest.mark.parametrize(
    "bad",
    [
        KEY_FILE.replace('algorithm = "aes-gcm-16"', 'algorithm = "des"'),
        KEY_FILE.replace('algorithm = "aes-gcm-16"', 'algorithm = "aes-cbc-no-auth"'),
        KEY_FILE.replace('sa = "mn-to-ha"', 'sa = "nope"'),
        KEY_FILE.replace("replay_window = 1024", "replay_windw = 1024"),
        KEY_FILE.replace('key = "000102030405060708090a0b0c0d0e0f"', 'key = "zz"'),
        KEY_FILE + "\n[[policy]]\nname = 'x'\ndirection = 'out'\naction = 'protect'\n",
        "[[sa]\n",
    ],
)
def test_bad_key_files_raise_key_file_error(tmp_path: Path, bad: str) -> None:
    with pytest.raises(KeyFileError):
        load_key_file(_write(tmp_path, bad, 0o600))


def test_parse_without_file() -> None:
    config = parse_key_config({"sa": [], "policy": [{"name": "p", "direction": "in", "action": "bypass"}]})
    assert config.policies[0].action == "bypass"


def test_tshark_uat_strings() -> None:
    sa = SecurityAssociation(
        spi=0x1001,
        algorithm=AES_GCM_16,
        key=bytes(range(20)),
        src=IPv6Address("2001:db8::1"),
        dst=IPv6Address("2001:db8::2"),
    )
    assert tshark_uat([sa]) == [
        'uat:esp_sa:"IPv6","2001:db8::1","2001:db8::2","0x00001001",'
        '"AES-GCM with 16 octet ICV [RFC4106]","0x000102030405060708090a0b0c0d0e0f10111213","NULL",""'
    ]
    cbc = SecurityAssociation(spi=0x2002, algorithm=AES_CBC_HMAC_SHA256, key=bytes(16), auth_key=bytes(32))
    assert tshark_uat([cbc])[0].startswith('uat:esp_sa:"IPv6","*","*","0x00002002","AES-CBC [RFC3602]",')
    assert '"HMAC-SHA-256-128 [RFC4868]"' in tshark_uat([cbc])[0]
    chacha = SecurityAssociation(spi=0x3003, algorithm=CHACHA20_POLY1305, key=bytes(36))
    with pytest.raises(ValueError, match="cannot decrypt"):
        tshark_uat([chacha])


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_decrypts_our_esp(tmp_path: Path) -> None:
    coa, ha, hoa = "2001:db8:a::10", "2001:db8:6::1", "2001:db8:6::1000"
    # Transport SAs are between the home address and the HA (RFC 3776); Wireshark, like
    # us, takes the HAO address as the source. The tunnel SA is between the CoA and the HA.
    endpoints = {"src": IPv6Address(hoa), "dst": IPv6Address(ha)}
    sas = [
        SecurityAssociation(spi=0x1001, algorithm=AES_GCM_16, key=os.urandom(20), **endpoints),
        SecurityAssociation(
            spi=0x1002, algorithm=AES_CBC_HMAC_SHA256, key=os.urandom(32), auth_key=os.urandom(32), **endpoints
        ),
        SecurityAssociation(spi=0x1003, algorithm=NULL_HMAC_SHA256, auth_key=os.urandom(32), **endpoints),
        SecurityAssociation(
            spi=0x1004, algorithm=AES_GCM_16, key=os.urandom(36), mode="tunnel", src=IPv6Address(coa), dst=IPv6Address(ha)
        ),
    ]
    frames = []
    expected = {}
    for index, sa in enumerate(sas):
        marker = f"mip6term-{index}".encode()
        expected[sa.spi] = marker
        if sa.mode == "tunnel":
            inner = IPv6(src="2001:db8:8::1001", dst=hoa) / UDP(sport=7000, dport=7001) / Raw(marker)
            packet = tunnel_protect(sa, bytes(inner), now=0.0)
        else:
            plain = IPv6(src=coa, dst=ha) / IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)]) / UDP(sport=7000, dport=7001) / Raw(marker)
            packet = transport_protect(sa, bytes(plain), now=0.0)
        frames.append(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x86DD) / Raw(packet))
    # and a protected Binding Update: tshark must dissect the MH inside ESP
    bu = IPv6(src=coa, dst=ha) / IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)]) / MIP6MH_BU(seq=42, flags="AH", mhtime=100)
    frames.append(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x86DD) / Raw(transport_protect(sas[0], bytes(bu), now=0.0)))
    pcap = tmp_path / "esp.pcap"
    wrpcap(str(pcap), frames)
    command = [
        "tshark", "-n", "-r", str(pcap),
        "-o", "esp.enable_encryption_decode:TRUE",
        "-o", "esp.enable_authentication_check:TRUE",
    ]  # fmt: skip
    for record in tshark_uat(sas):
        command += ["-o", record]
    command += ["-T", "fields", "-E", "separator=|", "-e", "esp.spi", "-e", "esp.icv_good", "-e", "data.data", "-e", "mip6.bu.seqnr"]
    env = {**os.environ, "HOME": str(tmp_path)}  # no personal Wireshark preferences
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=True)
    rows = [line.split("|") for line in result.stdout.strip().splitlines()]
    assert len(rows) == len(frames)
    for (spi, icv_good, data, _bu_seq), sa in zip(rows, sas, strict=False):
        assert int(spi, 16) == sa.spi
        assert icv_good == "1", f"tshark: ICV not verified for {sa.algorithm}"
        assert bytes.fromhex(data) == expected[sa.spi], f"tshark could not decrypt {sa.algorithm}"
    assert rows[-1][3] == "42"  # BU sequence number decoded from inside ESP
