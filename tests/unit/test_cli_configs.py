"""Generated configuration of the test bed: topology, radvd, TOML, nft script, CN content."""

from __future__ import annotations

import tomllib
from ipaddress import IPv6Network, ip_interface

import pytest

from provisioning import nft, radvd, topology
from provisioning.errors import ProvisioningError
from provisioning.nodes import agents, cn


def test_interface_names_fit_ifnamsiz() -> None:
    names = topology.interface_names()
    assert len(names) > 10
    assert all(1 <= len(n) <= 15 for n in names), [n for n in names if len(n) > 15]


def test_switch_port_names_unique() -> None:
    ports = [p.port for p in topology.FIG1.switch_ports]
    assert len(set(ports)) == len(ports)


def test_addresses_are_documentation_prefixes() -> None:
    doc = IPv6Network("2001:db8::/32")
    addrs = [p.address for p in topology.FIG1.switch_ports if p.address]
    for link in topology.FIG1.links:
        addrs += [a for a in (link.address_a, link.address_b) if a]
    assert addrs
    assert all(ip_interface(a).ip in doc for a in addrs)


def test_home_link_addresses() -> None:
    core = next(p for p in topology.FIG1.switch_ports if p.node == "core")
    ha = next(p for p in topology.FIG1.switch_ports if p.node == "ha")
    guest = next(p for p in topology.FIG1.switch_ports if p.node == "guest")
    assert core.address == "2001:db8:6::ffff/64" and core.bridge == "br-home"
    assert ha.address is None and ha.disable_ipv6  # the HA daemon owns 2001:db8:6::1
    assert guest.bridge == "br-b" and guest.disable_ipv6


@pytest.mark.parametrize("prefix", ["m6", "t123", "a"])
def test_valid_prefixes(prefix: str) -> None:
    assert topology.validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["", "M6", "6m", "a-b", "toolongprefix", "a b"])
def test_invalid_prefixes(prefix: str) -> None:
    with pytest.raises(ProvisioningError):
        topology.validate_prefix(prefix)


def test_radvd_config_fast_mipv6_ras() -> None:
    conf = radvd.render_config("eth0", IPv6Network("2001:db8:a::/64"))
    assert conf.startswith("interface eth0\n")
    assert "AdvIntervalOpt on;" in conf
    assert "AdvHomeAgentFlag off;" in conf
    assert "prefix 2001:db8:a::/64" in conf and "AdvAutonomous on;" in conf
    # radvd.conf(5) limits with Mobile IPv6 extensions
    assert 0.03 <= radvd.MIN_RTR_ADV_INTERVAL <= 0.75 * radvd.MAX_RTR_ADV_INTERVAL
    assert radvd.MAX_RTR_ADV_INTERVAL >= 0.07
    assert conf.count("{") == conf.count("}") == 2


def test_radvd_command_stays_in_foreground() -> None:
    p = radvd.paths("/run/mip6term/m6", "ar-a")
    cmd = radvd.command(p)
    assert cmd[0] == "radvd" and "-n" in cmd
    assert cmd[cmd.index("-C") + 1] == "/run/mip6term/m6/radvd-ar-a.conf"


def test_guest_toml_round_trips() -> None:
    doc = tomllib.loads(agents.render_toml(agents.guest_config("/run/mip6term/m6")))
    assert doc["node"]["control_socket"] == "/run/mip6term/m6/guest.sock"
    assert doc["link"]["interface"] == "eth0"
    assert doc["mobility"] == {"home_address": "2001:db8:6::1000", "home_agent": "2001:db8:6::1",
                               "home_prefix": "2001:db8:6::/64"}
    assert doc["tun"]["name"] == "hoa0"


@pytest.mark.parametrize(("refuse", "expected"), [(False, []), (True, ["2001:db8:6::1000"])])
def test_ha_toml_refused_home_addresses(refuse: bool, expected: list[str]) -> None:
    doc = tomllib.loads(agents.render_toml(
        agents.home_agent_config("/run/mip6term/m6", refuse_home_address=refuse)))
    assert doc["home_agent"]["refused_home_addresses"] == expected
    assert doc["home_agent"]["address"] == "2001:db8:6::1"
    assert doc["node"]["control_socket"] == "/run/mip6term/m6/ha.sock"


def test_toml_escapes_strings() -> None:
    doc = tomllib.loads(agents.render_toml({"t": {"s": 'a"b\\c', "n": 3, "b": True}}))
    assert doc == {"t": {"s": 'a"b\\c', "n": 3, "b": True}}


def test_agent_command_uses_this_interpreter() -> None:
    import sys

    spec = agents.agent_spec("/s", "ha", "m6-ha")
    assert spec.argv == [sys.executable, "-m", "network.home_agent", "--config", "/s/ha.toml"]
    assert spec.log == "/s/ha.log"


def test_nft_script_drops_first_n_bus() -> None:
    script = nft.drop_first_bu_script(2)
    assert "hook prerouting" in script
    assert "mh type binding-update numgen inc mod 4294967295 < 2 counter drop" in script
    assert "ip6 daddr 2001:db8:6::1" in script
    with pytest.raises(ProvisioningError):
        nft.drop_first_bu_script(-1)


def test_cn_big_file_is_deterministic_and_self_describing(tmp_path) -> None:
    cn.write_web_root(str(tmp_path), size=1000)
    data = (tmp_path / "big").read_bytes()
    assert len(data) == 1000
    assert data[:16] == b"000000000000000\n"
    assert data[32 * 16:33 * 16] == cn.big_content_line(32 * 16)
    assert (tmp_path / "index.html").read_text().startswith("<!doctype html>")
    assert cn.BIG_FILE_SIZE >= 20 * 1024 * 1024
