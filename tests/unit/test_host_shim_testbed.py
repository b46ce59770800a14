"""Issue 3's test bed pieces, without root: guest.toml sections, the dnsmasq zone, the host
shim's fallback flags, and the /etc/netns clean-up of `testbed down`."""

from __future__ import annotations

import tomllib
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from host_shim import cli as shim_cli
from host_shim import resolver
from provisioning import netns, topology
from provisioning.errors import ProvisioningError
from provisioning.nodes import agents, dns, host


def test_guest_toml_has_the_issue3_sections() -> None:
    options = agents.TranslationOptions(pool="198.18.0.0/29", idle_timeout=3)
    doc = tomllib.loads(agents.render_toml(agents.guest_config("/run/mip6term/t", options)))
    assert doc["host_link"] == {"interface": "eth1"}
    assert doc["translation"] == {"enabled": True, "pool": "198.18.0.0/29",
                                  "home_ipv4": "198.18.0.2", "gateway_ipv4": "198.18.0.1",
                                  "idle_timeout": 3, "prefix64": "64:ff9b::/96"}
    assert doc["dns"] == {"upstream": ["2001:db8:6::53"]}


def test_guest_toml_loads_in_the_agent(tmp_path: Path) -> None:
    config_module = pytest.importorskip("guest_agent.config")
    path = tmp_path / "guest.toml"
    path.write_text(agents.render_toml(agents.guest_config(str(tmp_path))))
    config_module.load_agent_config(path)  # unknown keys would raise ConfigError


@pytest.mark.parametrize("pool, idle, message", [
    ("198.18.0.0/30", 300, "too small"),
    ("198.18.0.0/33", 300, "invalid --pool"),
    ("nonsense", 300, "invalid --pool"),
    ("198.18.0.0/24", 0, "--idle-timeout"),
])
def test_bad_pool_options(pool: str, idle: int, message: str) -> None:
    with pytest.raises(ProvisioningError, match=message):
        agents.TranslationOptions(pool=pool, idle_timeout=idle).addresses()


def test_dnsmasq_zone_and_config() -> None:
    zone = dns.zone()
    assert zone["cn.example"] == topology.CN_ADDRESS
    assert [zone[f"cn{i}.example"] for i in range(1, 6)] == [
        IPv6Address(f"2001:db8:8::{i}") for i in range(1001, 1006)]
    conf = dns.render_config("/run/mip6term/t").splitlines()
    for line in ("no-resolv", "no-hosts", "listen-address=2001:db8:6::53", "local=/example/",
                 "host-record=cn.example,2001:db8:8::1001", "pid-file=",
                 "log-facility=/run/mip6term/t/dnsmasq.log"):
        assert line in conf
    assert not any(line.startswith(("server=", "address=")) for line in conf)  # AAAA only


def test_dns_node_and_cn_addresses_in_the_topology() -> None:
    port = next(p for p in topology.FIG1.switch_ports if p.node == "dns")
    assert port.bridge == "br-home" and port.address == "2001:db8:6::53/64"
    assert topology.Route("dns", "default", "2001:db8:6::ffff") in topology.FIG1.routes
    assert "dns" in topology.NODES
    assert topology.CN_EXTRA_ADDRESSES[-1] == IPv6Address("2001:db8:8::1005")


def test_fallback_flags_match_guest_toml() -> None:
    flags = host.fallback_flags(agents.TranslationOptions(pool="198.18.0.0/29"))
    assert flags == ["--ipv4", "198.18.0.2/29", "--gateway", "198.18.0.1",
                     "--pool", "198.18.0.0/29", "--dns", "198.18.0.1"]
    args = shim_cli.build_parser().parse_args(["up", *flags])
    assert shim_cli._config_from_flags(args).pool is not None


def test_down_sweeps_only_host_shim_files_of_its_prefix(tmp_path: Path) -> None:
    etc = tmp_path / "netns"
    ours = etc / "t1-host"
    ours.mkdir(parents=True)
    (ours / "resolv.conf").write_text(resolver.render_resolv_conf(["198.18.0.1"]))
    foreign = etc / "t1-other"
    foreign.mkdir()
    (foreign / "resolv.conf").write_text("nameserver 192.0.2.1\n")
    other_bed = etc / "t10-host"
    other_bed.mkdir()
    (other_bed / "resolv.conf").write_text(resolver.render_resolv_conf(["198.18.0.1"]))
    removed = host.remove_resolver_overrides("t1", str(tmp_path / "state"), str(etc))
    assert removed == [str(ours)]
    assert foreign.exists() and other_bed.exists()


def test_no_etc_override_dir_means_no_mount_namespace(tmp_path: Path) -> None:
    # nothing to bind: returns before unshare (which would need root)
    assert netns.bind_etc_overrides("absent", str(tmp_path)) == []


def test_host_shim_unsupported_exit_code_is_distinct() -> None:
    assert shim_cli.EXIT_AGENT_UNSUPPORTED not in (0, 1, 2)
