"""load_config / build_dataclass: TOML into the daemons' dataclass trees, one clear error."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from guest_agent.config import AgentConfig, StaticMapping, load_agent_config
from netstack.runtime.configfile import ConfigError, build_dataclass, load_config
from network.home_agent.config import HomeAgentConfig, load_home_agent_config


@dataclass
class Inner:
    address: IPv6Address = IPv6Address("2001:db8::1")
    count: int = 3


@dataclass
class Sample:
    name: str = "x"
    enabled: bool = False
    ratio: float = 1.5
    count: int = 7
    prefix: IPv6Network = IPv6Network("2001:db8::/64")
    v4: IPv4Address = IPv4Address("192.0.2.1")
    v4net: IPv4Network = IPv4Network("192.0.2.0/24")
    path: Path = Path("/tmp/x")
    maybe: IPv6Address | None = None
    addresses: list[IPv6Address] = field(default_factory=list)
    pair: tuple[int, ...] = ()
    inner: Inner = field(default_factory=Inner)
    rows: list[Inner] = field(default_factory=list)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ successes


def test_none_means_all_defaults() -> None:
    assert load_config(Sample, None) == Sample()


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    assert load_config(Sample, write(tmp_path, "")) == Sample()


def test_values_are_converted(tmp_path: Path) -> None:
    text = """
name = "guest-1"
enabled = true
ratio = 2
count = 9
prefix = "2001:db8:6::/64"
v4 = "198.18.0.2"
v4net = "198.18.0.0/24"
path = "/run/x"
maybe = "2001:db8::9"
addresses = ["2001:db8::a", "2001:db8::b"]
pair = [1, 2]

[inner]
address = "2001:db8:1::1"

[[rows]]
address = "2001:db8:2::1"
count = 1

[[rows]]
count = 2
"""
    config = load_config(Sample, write(tmp_path, text))
    assert config.name == "guest-1" and config.enabled is True and config.count == 9
    assert config.ratio == 2.0 and isinstance(config.ratio, float)
    assert config.prefix == IPv6Network("2001:db8:6::/64")
    assert config.v4 == IPv4Address("198.18.0.2") and config.v4net == IPv4Network("198.18.0.0/24")
    assert config.path == Path("/run/x")
    assert config.maybe == IPv6Address("2001:db8::9")
    assert config.addresses == [IPv6Address("2001:db8::a"), IPv6Address("2001:db8::b")]
    assert config.pair == (1, 2)
    assert config.inner == Inner(IPv6Address("2001:db8:1::1"), 3)
    assert config.rows == [Inner(IPv6Address("2001:db8:2::1"), 1), Inner(IPv6Address("2001:db8::1"), 2)]


def test_build_dataclass_directly() -> None:
    assert build_dataclass(Inner, {"count": 4}) == Inner(count=4)


# ------------------------------------------------------------------ errors


def error_of(tmp_path: Path, text: str, cls: type = Sample) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(cls, path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    return message[len(f"{path}: ") :]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    assert error_of(tmp_path, 'nmae = "typo"\n') == "unknown key 'nmae'"


def test_unknown_nested_key_names_the_table(tmp_path: Path) -> None:
    assert error_of(tmp_path, "[inner]\ncuont = 1\n") == "[inner] unknown key 'cuont'"


def test_unknown_key_in_an_array_of_tables(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[[rows]]\ncount = 1\n[[rows]]\nbogus = 2\n")
    assert message == "[rows[1]] unknown key 'bogus'"


def test_bad_ipv6_address(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[inner]\naddress = "2001:db8::zz"\n')
    assert message.startswith("inner.address: ") and "2001:db8::zz" in message


def test_bad_address_in_a_list(tmp_path: Path) -> None:
    message = error_of(tmp_path, 'addresses = ["2001:db8::1", "nope"]\n')
    assert message.startswith("addresses[1]: ") and "nope" in message


def test_network_with_host_bits(tmp_path: Path) -> None:
    assert error_of(tmp_path, 'prefix = "2001:db8::1/64"\n').startswith("prefix: ")


def test_bad_ipv4(tmp_path: Path) -> None:
    assert error_of(tmp_path, 'v4 = "198.18.0.256"\n').startswith("v4: ")


def test_optional_address_reports_the_address_error(tmp_path: Path) -> None:
    message = error_of(tmp_path, 'maybe = "junk"\n')
    assert message.startswith("maybe: ") and "junk" in message


@pytest.mark.parametrize("text", ["maybe = 1\n", "v4 = 3232235777\n", "prefix = 5\n", "path = 3\n"])
def test_integers_are_not_addresses_or_paths(tmp_path: Path, text: str) -> None:
    # ipaddress accepts integers: a bare number must not silently become ::1 or 192.168.1.1.
    key = text.split(" ")[0]
    assert error_of(tmp_path, text).startswith(f"{key}: ")


def test_list_expected(tmp_path: Path) -> None:
    assert error_of(tmp_path, 'addresses = "2001:db8::1"\n') == "addresses: expected a list, got '2001:db8::1'"


def test_table_expected(tmp_path: Path) -> None:
    assert error_of(tmp_path, "inner = 3\n") == "inner: expected a table, got 3"


def test_bool_is_not_an_int(tmp_path: Path) -> None:
    assert error_of(tmp_path, "count = true\n") == "count: expected int, got True"


def test_int_is_not_a_bool(tmp_path: Path) -> None:
    assert error_of(tmp_path, "enabled = 1\n") == "enabled: expected bool, got 1"


def test_string_is_not_an_int(tmp_path: Path) -> None:
    assert error_of(tmp_path, 'count = "3"\n') == "count: expected int, got '3'"


def test_float_is_not_an_int(tmp_path: Path) -> None:
    assert error_of(tmp_path, "count = 3.5\n") == "count: expected int, got 3.5"


def test_float_rejects_bool_and_string(tmp_path: Path) -> None:
    assert error_of(tmp_path, "ratio = true\n") == "ratio: expected a number, got True"
    assert error_of(tmp_path, 'ratio = "1"\n') == "ratio: expected a number, got '1'"


def test_int_is_not_a_string(tmp_path: Path) -> None:
    assert error_of(tmp_path, "name = 5\n") == "name: expected str, got 5"


def test_nested_type_error_has_a_dotted_path(tmp_path: Path) -> None:
    assert error_of(tmp_path, '[[rows]]\ncount = "x"\n') == "rows[0].count: expected int, got 'x'"


def test_invalid_toml(tmp_path: Path) -> None:
    message = error_of(tmp_path, "name = \n")
    assert message.startswith("invalid TOML: ")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_config(Sample, path)
    assert str(info.value) == f"config file not found: {path}"


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(Sample, tmp_path)
    assert str(info.value).startswith(f"{tmp_path}: ")


# ------------------------------------------------------------------ the daemons' real configs


def test_agent_config_defaults() -> None:
    config = load_agent_config(None)
    assert config == AgentConfig()
    assert config.mobility.home_address == IPv6Address("2001:db8:6::1000")
    assert config.node.socket_path == Path("/run/mip6term/m6/guest.sock")
    assert config.translation_state_file == Path("/run/mip6term/m6/translations.json")


def test_agent_config_from_toml(tmp_path: Path) -> None:
    text = """
[node]
name = "g1"
state_dir = "/run/mip6term/t1"

[mobility]
home_address = "2001:db8:6::1234"
initial_bindack_timeout = 2

[translation]
pool = "198.18.4.0/24"
static = [{ ipv6 = "2001:db8:5::7", ipv4 = "198.18.4.7" }]

[dns]
upstream = ["2001:db8:5::53", "2001:db8:5::54"]
"""
    config = load_agent_config(write(tmp_path, text))
    assert config.node.socket_path == Path("/run/mip6term/t1/g1.sock")
    assert config.mobility.home_address == IPv6Address("2001:db8:6::1234")
    assert config.mobility.initial_bindack_timeout == 2.0
    assert config.mobility.home_agent == IPv6Address("2001:db8:6::1")  # default kept
    assert config.translation.pool == IPv4Network("198.18.4.0/24")
    assert config.translation.static == [StaticMapping(IPv6Address("2001:db8:5::7"), IPv4Address("198.18.4.7"))]
    assert config.dns.upstream == [IPv6Address("2001:db8:5::53"), IPv6Address("2001:db8:5::54")]


def test_agent_config_unknown_section(tmp_path: Path) -> None:
    assert error_of(tmp_path, "[mobilty]\n", AgentConfig) == "unknown key 'mobilty'"


def test_agent_config_static_mapping_missing_field(tmp_path: Path) -> None:
    text = '[translation]\nstatic = [{ ipv6 = "2001:db8:5::7" }]\n'
    message = error_of(tmp_path, text, AgentConfig)
    assert message.startswith("translation.static[0]: ") and "ipv4" in message


def test_agent_config_post_init_error_is_a_config_error(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[ipsec]\ntunnel = "sideways"\n', AgentConfig)
    assert message.startswith("ipsec: ") and "sideways" in message


def test_home_agent_config_defaults_and_alias(tmp_path: Path) -> None:
    assert load_home_agent_config(None).interface == "eth0"
    text = """
[link]
interface = "ha0"
mtu = 1400

[home_agent]
default_router = "2001:db8:6::fe"
allowed_home_addresses = ["2001:db8:6::1000"]
require_protection = true
"""
    config = load_home_agent_config(write(tmp_path, text))
    assert isinstance(config, HomeAgentConfig)
    assert config.interface == "ha0" and config.link.mtu == 1400
    assert config.home_agent.default_router == IPv6Address("2001:db8:6::fe")
    assert config.home_agent.allowed_home_addresses == [IPv6Address("2001:db8:6::1000")]
    assert config.home_agent.refused_home_addresses == []
    assert config.home_agent.require_protection is True
    aliased = load_home_agent_config(write(tmp_path, '[home_agent]\ninterface = "old0"\n'))
    assert aliased.interface == "old0"


def test_home_agent_config_type_errors(tmp_path: Path) -> None:
    assert error_of(tmp_path, "[home_agent]\nproxy_dad = 0\n", HomeAgentConfig) == (
        "home_agent.proxy_dad: expected bool, got 0"
    )
    message = error_of(tmp_path, '[home_agent]\nrefused_home_addresses = ["2001:db8:6::x"]\n', HomeAgentConfig)
    assert message.startswith("home_agent.refused_home_addresses[0]: ")
