"""`testbed up --nemo` configuration files: what the agents will read (no namespaces needed)."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

from guest_agent.config import load_agent_config
from network.home_agent.config import load_home_agent_config
from provisioning import nemo
from provisioning.nodes import agents
from provisioning.nodes import ipsec as ipsec_keys


def configs(tmp_path: Path, switches: str = "") -> tuple[object, object, object]:
    options = ipsec_keys.parse_switches(switches)
    sdir = str(tmp_path)
    ipsec_keys.write_key_files(sdir, options)
    agents.write_configs(sdir, ipsec=options)
    nemo.write_configs(sdir, ipsec=options.tunnel != ipsec_keys.TUNNEL_OFF)
    nemo.write_ipsec(sdir, options)
    return (load_agent_config(tmp_path / "guest.toml"), load_home_agent_config(tmp_path / "ha.toml"),
            load_agent_config(tmp_path / "vmn.toml"))


def test_plain_nemo_configs(tmp_path: Path) -> None:
    guest, ha, vmn = configs(tmp_path)
    assert guest.nemo.prefixes == [nemo.MOBILE_NETWORK_PREFIX]
    (router,) = ha.nemo.mobile_routers
    assert router.home_address == IPv6Address("2001:db8:6::1000")
    assert router.prefixes == [IPv6Network("2001:db8:6:100::/64")]
    assert ha.ipsec.nested_key_file is None
    assert vmn.mobility.home_address == nemo.VMN_HOME_ADDRESS and vmn.host_link.interface == ""
    assert vmn.tun.mtu == nemo.VMN_TUN_MTU and not vmn.nemo.prefixes


def test_nemo_with_the_esp_tunnel(tmp_path: Path) -> None:
    guest, ha, vmn = configs(tmp_path, "tunnel")
    assert ha.ipsec.nested_key_file == tmp_path / nemo.HA_NESTED_KEYS
    assert vmn.ipsec.tunnel == "esp-tunnel" and vmn.ipsec.key_file == tmp_path / nemo.VMN_MOBILITY_KEYS
    assert vmn.tun.mtu == nemo.VMN_TUN_MTU_IPSEC
    nested = (tmp_path / nemo.HA_NESTED_KEYS).read_text()
    assert "0x1103" in nested and "0x1003" not in nested
    assert (tmp_path / nemo.HA_NESTED_KEYS).stat().st_mode & 0o777 == 0o600


def test_nemo_with_the_tunnel_only_mode(tmp_path: Path) -> None:
    """Fig. 22: the mobile router's tunnel SAs also carry what crosses its tunnel."""
    guest, ha, vmn = configs(tmp_path, "tunnel-only")
    assert vmn.ipsec.tunnel == "esp-tunnel-only"
    guest_keys = (tmp_path / ipsec_keys.GUEST_MOBILITY_KEYS).read_text()
    ha_keys = (tmp_path / ipsec_keys.HA_KEYS).read_text()
    assert 'name = "mnet-to-ha"' in guest_keys and 'name = "mnet-to-mr"' in ha_keys
    assert "mnet" not in (tmp_path / nemo.HA_NESTED_KEYS).read_text()
