"""guest_agent.security against network.home_agent.ipsec, with key configs made by
provisioning.nodes.ipsec (sans-IO: bytes in, bytes out, `now` passed in)."""

from __future__ import annotations

import os
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from guest_agent.security import (
    HOME,
    MOBILITY,
    TUNNELLED,
    GuestSecurity,
    IpsecSection,
    carries_esp,
)
from netstack.ipsec.errors import KeyFileError
from netstack.ipsec.keys import build_processor, parse_key_config
from netstack.wire.ip6ip6 import Encapsulator
from netstack.wire.ipv6 import build_ipv6_packet, parse_ipv6_packet
from netstack.wire.mh import BindingAck, BindingUpdate
from netstack.wire.mh_codec import build_mobility_packet, decode_mobility_packet
from network.home_agent.ipsec import FORWARD, HomeAgentIpsecSection, HomeAgentSecurity
from provisioning.nodes import ipsec as keygen

HOA = IPv6Address("2001:db8:6::1000")
HA = IPv6Address("2001:db8:6::1")
CN = IPv6Address("2001:db8:8::1001")
COA_B = IPv6Address("2001:db8:b::10")
COA_A = IPv6Address("2001:db8:a::10")
NOW = 100.0


def _pair(switches: str) -> tuple[GuestSecurity, HomeAgentSecurity]:
    options = keygen.parse_switches(switches)
    guest_cfg, ha_cfg = keygen.mobility_key_configs(options)
    guest = GuestSecurity(
        IpsecSection(key_file=Path("unused"), signalling=options.signalling,
                     tunnel=options.tunnel, require_protection=options.signalling),
        home_address=HOA, home_agent=HA, now=0.0,
        mobility=build_processor("mobility", parse_key_config(guest_cfg)),
    )
    ha = HomeAgentSecurity(
        HomeAgentIpsecSection(key_file=Path("unused"), signalling=options.signalling,
                              tunnel=options.tunnel),
        address=HA, now=0.0, processor=build_processor("mobility", parse_key_config(ha_cfg)),
    )
    return guest, ha


def _bu(coa: IPv6Address = COA_B) -> bytes:
    return build_mobility_packet(coa, HA, BindingUpdate(sequence=7, lifetime=420),
                                 home_address=HOA)


def _ba(coa: IPv6Address = COA_B) -> bytes:
    return build_mobility_packet(HA, coa, BindingAck(status=0, sequence=7, lifetime=420),
                                 routing_type2=HOA)


def _data(src: IPv6Address, dst: IPv6Address, payload: bytes = b"x" * 100) -> bytes:
    return build_ipv6_packet(src, dst, 17, b"\x13\x88\x00\x09" + payload)


def test_signalling_round_trip_keeps_hao_and_rh2_outside_esp() -> None:
    guest, ha = _pair("signalling")
    sealed = guest.protect_signalling(_bu(), NOW)
    assert sealed is not None and carries_esp(sealed)
    parsed = parse_ipv6_packet(sealed)
    assert parsed.home_address == HOA and parsed.upper_protocol == 50
    kind, plain = ha.receive_esp(sealed, NOW)
    assert kind == MOBILITY
    message = decode_mobility_packet(parse_ipv6_packet(plain))
    assert isinstance(message, BindingUpdate) and message.sequence == 7

    ba = ha.protect_signalling(_ba(), NOW)
    assert ba is not None and parse_ipv6_packet(ba).routing_type2 == HOA
    kind, plain = guest.receive_esp(ba, NOW)
    assert kind == MOBILITY
    assert isinstance(decode_mobility_packet(parse_ipv6_packet(plain)), BindingAck)
    assert guest.mobility.counters["in_decrypted"] == 1
    assert ha.processor.counters["in_decrypted"] == 1


def test_replayed_and_corrupted_ba_are_dropped_and_counted() -> None:
    guest, ha = _pair("signalling")
    ba = ha.protect_signalling(_ba(), NOW)
    assert guest.receive_esp(ba, NOW) is not None
    assert guest.receive_esp(ba, NOW) is None
    assert guest.mobility.counters["in_replayed"] == 1
    fresh = bytearray(ha.protect_signalling(_ba(), NOW))
    fresh[-20] ^= 0x01  # one ciphertext bit
    assert guest.receive_esp(bytes(fresh), NOW) is None
    assert guest.mobility.counters["in_icv_failure"] == 1
    # the bad packet did not move the window: the genuine one is still accepted
    fresh[-20] ^= 0x01
    assert guest.receive_esp(bytes(fresh), NOW) is not None


def test_fig21_esp_around_ip6ip6_both_directions_and_handover() -> None:
    guest, ha = _pair("tunnel")
    guest.binding_accepted(COA_B)
    ha.binding_updated(HOA, COA_B)
    inner = _data(HOA, CN)
    sealed = guest.seal_tunnel(inner, Encapsulator(COA_B.packed, HA.packed), NOW)
    assert sealed is not None and sealed[6] == 50
    assert sealed[8:24] == COA_B.packed and sealed[24:40] == HA.packed
    kind, plain = ha.receive_esp(sealed, NOW)
    assert kind == TUNNELLED and plain[6] == 41 and plain[40:] == inner

    down_inner = _data(CN, HOA)
    outer = bytes(Encapsulator(HA.packed, COA_B.packed).encapsulate(down_inner))
    down = ha.seal_tunnel(outer, down_inner, NOW)
    assert down[24:40] == COA_B.packed
    kind, plain = guest.receive_esp(down, NOW)
    assert kind == TUNNELLED and plain[40:] == down_inner

    # handover: the same SAs, new care-of end, sequence numbers continue
    guest.binding_accepted(COA_A)
    ha.binding_updated(HOA, COA_A)
    sealed = guest.seal_tunnel(inner, Encapsulator(COA_A.packed, HA.packed), NOW)
    assert sealed[8:24] == COA_A.packed
    assert ha.receive_esp(sealed, NOW)[0] == TUNNELLED
    down = ha.seal_tunnel(outer, down_inner, NOW)
    assert down[24:40] == COA_A.packed
    assert int.from_bytes(down[44:48], "big") == 2  # ESP sequence number


def test_fig22_tunnel_header_omitted() -> None:
    guest, ha = _pair("tunnel-only")
    guest.binding_accepted(COA_B)
    ha.binding_updated(HOA, COA_B)
    inner = _data(HOA, CN)
    sealed = guest.seal_tunnel(inner, Encapsulator(COA_B.packed, HA.packed), NOW)
    # outer (40) + ESP header (8) + IV (8), then straight the inner packet once decrypted
    kind, plain = ha.receive_esp(sealed, NOW)
    assert kind == FORWARD and plain == inner
    down = ha.seal_tunnel(b"unused", _data(CN, HOA), NOW)
    kind, plain = guest.receive_esp(down, NOW)
    assert kind == HOME and plain == _data(CN, HOA)


def test_tunnel_shape_mismatch_is_counted() -> None:
    """MN configured for Fig. 21, HA for Fig. 22 (same keys): an SPD violation at the HA."""
    same_keys = lambda n: b"k" * n  # noqa: E731
    guest_cfg, _ = keygen.mobility_key_configs(keygen.parse_switches("tunnel"), random=same_keys)
    _, ha_cfg = keygen.mobility_key_configs(keygen.parse_switches("tunnel-only"),
                                            random=same_keys)
    guest = GuestSecurity(IpsecSection(key_file=Path("unused"), tunnel="esp-tunnel"),
                          home_address=HOA, home_agent=HA, now=0.0,
                          mobility=build_processor("mobility", parse_key_config(guest_cfg)))
    ha = HomeAgentSecurity(HomeAgentIpsecSection(key_file=Path("unused"), tunnel="esp-tunnel-only"),
                           address=HA, now=0.0,
                           processor=build_processor("mobility", parse_key_config(ha_cfg)))
    guest.binding_accepted(COA_B)
    sealed = guest.seal_tunnel(_data(HOA, CN), Encapsulator(COA_B.packed, HA.packed), NOW)
    assert ha.receive_esp(sealed, NOW) is None
    # the Fig. 22 policy does not cover an IPv6-in-IPv6 packet: counted, visible in status
    assert ha.as_dict(NOW)["counters"]["in_policy_violation"] == 1


def test_plain_tunnel_refused_only_when_esp_required() -> None:
    guest, _ha = _pair("tunnel")
    assert guest.refuse_plain_tunnel()
    assert guest.mismatch["plain_tunnel_while_esp_required"] == 1
    plain_guest, _ = _pair("signalling")
    assert not plain_guest.refuse_plain_tunnel()


def test_esp_without_a_mobility_sa_is_a_counted_mismatch() -> None:
    guest = GuestSecurity(IpsecSection(), home_address=HOA, home_agent=HA, now=0.0)
    _, ha = _pair("tunnel")
    ha.binding_updated(HOA, COA_B)
    outer = bytes(Encapsulator(HA.packed, COA_B.packed).encapsulate(_data(CN, HOA)))
    down = ha.seal_tunnel(outer, b"", NOW)
    assert guest.receive_esp(down, NOW) is None
    assert guest.as_dict(NOW)["mobility"]["mismatch"] == {"esp_without_mobility_sa": 1}


def test_double_termination_e2e_inside_esp_tunnel() -> None:
    guest, ha = _pair("tunnel-only")
    guest_e2e_cfg, cn_cfg = keygen.end_to_end_key_configs()
    guest.end_to_end = build_processor("end_to_end", parse_key_config(guest_e2e_cfg))
    cn = build_processor("end_to_end", parse_key_config(cn_cfg))
    guest.binding_accepted(COA_B)
    ha.binding_updated(HOA, COA_B)
    # MN -> CN: e2e first, then the tunnel; the HA removes only the tunnel layer
    (e2e,) = guest.from_hoa([_data(HOA, CN)], NOW)
    assert carries_esp(e2e)
    sealed = guest.seal_tunnel(e2e, Encapsulator(COA_B.packed, HA.packed), NOW)
    kind, forwarded = ha.receive_esp(sealed, NOW)
    assert kind == FORWARD and carries_esp(forwarded)
    assert cn.inbound(forwarded, NOW) == _data(HOA, CN)
    # CN -> MN: both layers removed in turn by two processors with their own counters
    reply = cn.outbound(_data(CN, HOA), NOW)
    down = ha.seal_tunnel(b"", reply, NOW)
    kind, inner = guest.receive_esp(down, NOW)
    assert kind == HOME and carries_esp(inner)
    assert guest.to_hoa([inner], NOW) == [_data(CN, HOA)]
    status = guest.as_dict(NOW)
    assert status["mobility"]["counters"]["in_decrypted"] == 1
    assert status["end_to_end"]["counters"]["in_decrypted"] == 1
    assert status["end_to_end"]["counters"]["out_protected"] == 1
    # traffic to anyone else is bypassed by the end-to-end layer
    other = _data(HOA, IPv6Address("2001:db8:8::2"))
    assert guest.from_hoa([other], NOW) == [other]


def test_unprotected_e2e_packet_from_cn_is_dropped() -> None:
    guest = GuestSecurity(IpsecSection(), home_address=HOA, home_agent=HA, now=0.0)
    guest_e2e_cfg, _ = keygen.end_to_end_key_configs()
    guest.end_to_end = build_processor("end_to_end", parse_key_config(guest_e2e_cfg))
    assert guest.to_hoa([_data(CN, HOA)], NOW) == []
    assert guest.end_to_end.counters["in_unprotected"] == 1


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    guest_cfg, _ = keygen.mobility_key_configs(keygen.parse_switches("signalling"))
    path = tmp_path / "keys.toml"
    keygen.write_key_file(str(path), guest_cfg)
    assert os.stat(path).st_mode & 0o777 == 0o600
    section = IpsecSection(key_file=path, signalling=True)
    loaded = GuestSecurity(section, home_address=HOA, home_agent=HA)
    assert len(loaded.mobility.sad) == 2
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        GuestSecurity(section, home_address=HOA, home_agent=HA)


@pytest.mark.parametrize("kwargs", [
    {"tunnel": "gre"},
    {"signalling": True},
    {"end_to_end": True},
    {"require_protection": True, "key_file": Path("k")},
])
def test_ipsec_section_rejects_inconsistent_config(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        IpsecSection(**kwargs)


def test_switches_and_key_files(tmp_path: Path) -> None:
    options = keygen.parse_switches("signalling,tunnel,tunnel-only,e2e")
    assert options.tunnel == keygen.TUNNEL_ESP_ONLY and options.signalling and options.end_to_end
    with pytest.raises(Exception, match="unknown --ipsec switch"):
        keygen.parse_switches("signalling,ah")
    written = keygen.write_key_files(str(tmp_path), options)
    assert set(written) == set(keygen.KEY_FILES)
    for path in written.values():
        assert os.stat(path).st_mode & 0o777 == 0o600
    uat = keygen.tshark_options(keygen.bed_key_files(str(tmp_path)))
    assert len(uat) == 6  # one per SA, both ends of an SA share it
    assert all(u.startswith('uat:esp_sa:"IPv6","*","*","0x0000') for u in uat)
    assert any("0x00001001" in u for u in uat) and any("0x00002002" in u for u in uat)


@pytest.mark.parametrize(("module", "table"), [
    ("network.home_agent", 'signalling = true\nrequire_protection = true'),
    ("network.correspondent", "end_to_end = true"),
])
def test_daemons_refuse_a_key_file_others_can_read(tmp_path: Path, module: str, table: str) -> None:
    import subprocess
    import sys

    keys = tmp_path / "keys.toml"
    keygen.write_key_file(str(keys), keygen.end_to_end_key_configs()[1])
    os.chmod(keys, 0o640)
    config = tmp_path / "node.toml"
    config.write_text(f'[ipsec]\nkey_file = "{keys}"\n{table}\n')
    result = subprocess.run([sys.executable, "-m", module, "--config", str(config)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "chmod 600" in lines[0], result.stderr


def test_keys_cli_prints_one_uat_per_sa(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from provisioning.cli import main

    written = keygen.write_key_files(str(tmp_path), keygen.parse_switches("signalling,e2e"))
    assert main(["keys", "--tshark", "--key-file", written[keygen.GUEST_MOBILITY_KEYS],
                 "--key-file", written[keygen.CN_KEYS]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["-o esp.enable_encryption_decode:TRUE",
                         "-o esp.enable_authentication_check:TRUE"]
    uats = [line for line in lines if "uat:esp_sa" in line]
    assert len(uats) == 4 and any("HMAC-SHA-256-128" in u for u in uats)
