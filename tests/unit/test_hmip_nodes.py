"""HMIPv6 pieces around the state machines: RA daemon and MAP configs, RS validation, the HA's
registration type 3 unwrap, the guest's nested tunnel, the bed's config writers."""

from __future__ import annotations

import io
import tomllib
from collections import Counter
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from scapy.layers.inet6 import ICMPv6ND_RS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import Ether

from guest_agent.dataplane import GuestDataPlane
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.runtime.configfile import ConfigError
from netstack.wire.mh import AlternateCareOfAddress, BindingAck, BindingUpdate
from network.home_agent.hmip import DirectRegistrations
from network.map.config import load_map_config
from network.router.config import load_router_config
from network.router.daemon import solicitation_source
from provisioning import status, status_hmip
from provisioning.handover import move_done
from provisioning.nodes import hmip as hmip_bed
from provisioning.nodes.agents import render_toml

HOME = IPv6Network("2001:db8:6::/64")
HA = IPv6Address("2001:db8:6::1")
HOA = IPv6Address("2001:db8:6::1000")
RCOA = IPv6Address("2001:db8:d::5")
LCOA = IPv6Address("2001:db8:a::5")
MAP = IPv6Address("2001:db8:d::1")


def test_router_config_from_the_bed_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    hmip_bed._write(str(path), hmip_bed.router_config(str(tmp_path), "ar-a"))
    config = load_router_config(path)
    ra = config.ra_config()
    assert ra.prefixes[0].prefix == IPv6Network("2001:db8:a::/64")
    assert ra.map_options[0].map_address == MAP and ra.advertisement_interval
    assert ra.min_interval == 0.05


@pytest.mark.parametrize("text", [
    "[router]\nmin_interval = 0.01\n",
    "[router]\nmax_interval = 1\nmin_interval = 2\n",
    "[map]\naddress = \"2001:db8:d::1\"\npreference = 16\n",
    "[router]\nbogus = 1\n",
])
def test_router_config_errors_are_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_router_config(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["[map]\naddress = \"2001:db8:e::1\"\n",
                                  "[map]\nprefix = \"2001:db8:d::/48\"\n"])
def test_map_config_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_map_config(path)


def test_map_config_maps_onto_the_home_agent_section(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    hmip_bed._write(str(path), hmip_bed.map_config(str(tmp_path)))
    section = load_map_config(path).home_agent
    assert section.address == MAP and section.home_prefix == IPv6Network("2001:db8:d::/64")


def _rs(src: str = "fe80::2", hlim: int = 255, slla: bool = True) -> bytes:
    packet = IPv6(src=src, dst="ff02::2", hlim=hlim) / ICMPv6ND_RS()
    if slla:
        packet = packet / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:02")
    return bytes(Ether(dst="33:33:00:00:00:02", src="02:00:00:00:00:02") / packet)


def test_solicitation_validation() -> None:
    counters: Counter[str] = Counter()
    assert solicitation_source(_rs(), counters) == IPv6Address("fe80::2")
    assert solicitation_source(_rs(slla=False, src="::"), counters) == IPv6Address("::")
    assert solicitation_source(_rs(hlim=64), counters) is None
    assert solicitation_source(_rs(src="::"), counters) is None
    broken = bytearray(_rs())
    broken[14 + 40 + 2] ^= 0xFF  # checksum
    assert solicitation_source(bytes(broken), counters) is None
    assert counters["rx_dropped_rs_hop_limit"] == 1
    assert counters["rx_dropped_rs_unspecified_with_slla"] == 1
    assert sum(v for k, v in counters.items() if k.startswith("rx_dropped")) == 3


def test_type3_unwrap_and_reply_to_the_lcoa() -> None:
    direct = DirectRegistrations(HOME)
    bu = BindingUpdate(sequence=1, lifetime=100, options=(AlternateCareOfAddress(HOA),))
    assert direct.unwrap(LCOA, RCOA, bu) == (RCOA, HOA)
    ba = OutgoingMobilityMessage(HA, RCOA, BindingAck(0, 1, 100), routing_type2=HOA)
    redirected = direct.redirect(ba)
    assert redirected.dst == LCOA and redirected.routing_type2 == HOA
    # types 1/2 (BU from the RCoA with the HoA in the HAO): untouched, and the RCoA is forgotten
    assert direct.unwrap(RCOA, HOA, BindingUpdate(sequence=2, lifetime=100)) == (RCOA, HOA)
    assert direct.redirect(ba).dst == RCOA
    # an alternate CoA outside the home prefix is no type 3: the HA refuses it as usual (132)
    other = BindingUpdate(sequence=3, lifetime=100, options=(AlternateCareOfAddress(LCOA),))
    assert direct.unwrap(LCOA, RCOA, other) == (LCOA, RCOA)


def test_guest_dataplane_nests_the_tunnel_in_the_map_tunnel() -> None:
    counters: Counter[str] = Counter()
    dp = GuestDataPlane(HOA.packed, b"\x02" * 6, counters)
    dp.set_tunnel(RCOA.packed, HA.packed)
    dp.set_next_hop(b"\x04" * 6)
    inner = bytes(IPv6(src=str(HOA), dst="2001:db8:8::1001", nh=59))
    frames, _ = dp.outbound([inner])
    assert frames[0][14 + 8:14 + 40] == RCOA.packed + HA.packed  # single tunnel
    dp.set_local_tunnel(LCOA.packed, MAP.packed)
    frames, _ = dp.outbound([inner])
    outer = frames[0][14:]
    assert outer[8:40] == LCOA.packed + MAP.packed and outer[6] == 41
    assert outer[40 + 8:40 + 40] == RCOA.packed + HA.packed and outer[40 + 6] == 41
    assert outer[80:] == inner
    assert dp.tunnel_super_frame(bytearray(inner * 2), 40) is None  # per-packet path
    dp.set_local_tunnel(None, None)
    frames, _ = dp.outbound([inner])
    assert frames[0][14 + 8:14 + 24] == RCOA.packed


def test_guest_config_gets_hmip_and_smaller_mtus(tmp_path: Path) -> None:
    path = tmp_path / "guest.toml"
    path.write_text(render_toml({"tun": {"name": "hoa0", "mtu": 1320},
                                 "host_link": {"interface": "eth1", "host_mtu": 1300}}))
    hmip_bed.enable_in_guest_config(str(tmp_path), 3)
    hmip_bed.enable_in_guest_config(str(tmp_path), 2)  # again: MTUs not lowered twice
    tables = tomllib.loads(path.read_text())
    assert tables["hmip"] == {"enabled": True, "registration_type": 2}
    assert tables["tun"]["mtu"] == 1300 and tables["host_link"]["host_mtu"] == 1280


def test_map_keys_mirror_each_other() -> None:
    guest, mapc = hmip_bed.map_key_configs(random=lambda n: bytes(n))
    g = {(sa["name"], sa["direction"], sa["spi"]) for sa in guest["sa"]}
    m = {(sa["name"], sa["direction"], sa["spi"]) for sa in mapc["sa"]}
    flip = {"in": "out", "out": "in"}
    assert {(n, flip[d], s) for n, d, s in g} == m
    assert {p["mh_type"] for p in guest["policy"]} == {5, 6}


def test_status_collects_the_map_and_routers_when_their_sockets_exist(tmp_path: Path) -> None:
    for name in ("guest", "ha", "map", "router-ar-a"):
        (tmp_path / f"{name}.sock").touch()
    hmip = {"map": str(MAP), "rcoa": str(RCOA), "lcoa": str(LCOA), "registration_type": 1,
            "scenario": 10100, "local_tunnel_up": True}
    answers: dict[str, dict[str, Any]] = {
        "guest": {"binding_update_list": [
            {"destination": str(MAP), "care_of_address": str(LCOA), "state": "registered"}],
            "counters": {}, "hmip": hmip},
        "ha": {"binding_cache": [], "counters": {}},
        "map": {"binding_cache": [{"rcoa": str(RCOA), "lcoa": str(LCOA)}],
                "counters": {"bu_received": 1}, "role": "map"},
        "router-ar-a": {"interface": "eth0", "prefixes": ["2001:db8:a::/64"],
                        "map": {"address": str(MAP)}, "counters": {"rs_received": 2}},
    }

    def ask(path: str, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        return dict(answers[Path(path).stem])

    merged = status.collect(str(tmp_path), ask)
    assert merged["map_binding_cache"] == [{"rcoa": str(RCOA), "lcoa": str(LCOA)}]
    assert merged["counters"]["map"] == {"bu_received": 1}
    assert merged["counters"]["router-ar-a"] == {"rs_received": 2}
    assert "router-ar-b" not in merged["routers"]  # no socket: not asked
    out = io.StringIO()
    status.render(merged, Console(file=out, width=200))
    text = out.getvalue()
    for title in ("HMIPv6 (guest)", "Binding cache (MAP)", "Router advertisement daemons"):
        assert title in text
    assert str(RCOA) in text
    assert move_done(merged, "a")  # the local binding's LCoA in 5a completes `move a`
    assert status_hmip.MAP_BC_COLUMNS[0] == "rcoa"
