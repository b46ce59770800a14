"""host_shim without root: plan, config, up/down/status against a fake netlink, resolver
files in a temporary /etc, the agent query with a fake control socket, the CLI."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address
from pathlib import Path
from typing import Any

import pytest

from host_shim import cli, resolver, shim
from host_shim import state as state_file
from host_shim.agentlink import fetch_host_config
from host_shim.config import ShimConfig, config_from_agent, config_from_dict
from host_shim.errors import AgentUnsupported, ShimError
from host_shim.state import NetItem
from netstack.runtime.control import ControlError

AGENT_ANSWER = {
    "interface_hint": "eth1", "ipv4_address": "198.18.0.2", "ipv4_prefixlen": 24,
    "ipv4_gateway": "198.18.0.1", "mtu": 1440, "dns": ["198.18.0.1"],
    "home_address": "2001:db8:6::1000", "ipv6_gateway": "fe80::1", "pool": "198.18.0.0/24",
    "scenarios": {"ipv4_translation": True, "ipv6_passthrough": True},
}
V4_ADDR = NetItem("address", 4, "198.18.0.2/24")
V4_DEFAULT = NetItem("route", 4, "0.0.0.0/0", "198.18.0.1")
HOA = NetItem("address", 6, "2001:db8:6::1000/128")
V6_DEFAULT = NetItem("route", 6, "::/0", "fe80::1")


class FakeNetlink:
    """One interface `eth0` with a set of addresses/routes, an MTU and a link state."""

    def __init__(self, world: dict[str, Any]) -> None:
        self.world = world

    def index(self, ifname: str) -> int:
        if ifname not in self.world["links"]:
            raise ShimError(f"interface {ifname} not found")
        return self.world["links"][ifname]

    def mtu(self, index: int) -> int:
        return self.world["mtu"]

    def set_mtu(self, index: int, mtu: int) -> None:
        self.world["mtu"] = mtu

    def is_up(self, index: int) -> bool:
        return self.world["up"]

    def set_up(self, index: int, up: bool) -> None:
        self.world["up"] = up

    def add(self, index: int, item: NetItem) -> bool:
        if item in self.world["items"]:
            return False
        self.world["items"].add(item)
        return True

    def delete(self, index: int, item: NetItem) -> bool:
        if item not in self.world["items"]:
            return False
        self.world["items"].remove(item)
        return True

    def present(self, index: int) -> set[NetItem]:
        return set(self.world["items"])

    def close(self) -> None:
        self.world["closed"] += 1


@pytest.fixture
def world() -> dict[str, Any]:
    return {"links": {"eth0": 2}, "mtu": 1500, "up": True, "items": set(), "closed": 0}


def factory(world: dict[str, Any]) -> Any:
    return lambda: FakeNetlink(world)


def netns_options(tmp_path: Path) -> shim.ResolverOptions:
    return shim.ResolverOptions(netns_name="m6-host", etc_netns_dir=str(tmp_path / "etc-netns"))


# ---------------------------------------------------------------- plan and config

def test_plan_default_config_is_e1_and_e2() -> None:
    assert shim.plan(ShimConfig()) == [V4_ADDR, V4_DEFAULT, HOA, V6_DEFAULT]


def test_plan_adds_pool_route_only_when_the_subnet_does_not_cover_it() -> None:
    narrow = ShimConfig(ipv4=IPv4Interface("198.18.0.2/29"), pool=IPv4Network("198.18.0.0/24"))
    assert NetItem("route", 4, "198.18.0.0/24") in shim.plan(narrow)
    wide = ShimConfig(ipv4=IPv4Interface("198.18.0.2/24"), pool=IPv4Network("198.18.0.0/29"))
    assert all(i.kind == "address" or i.gateway for i in shim.plan(wide))


def test_plan_ipv6_only_and_ipv4_only() -> None:
    assert shim.plan(ShimConfig(ipv4=None, ipv4_gateway=None, pool=None)) == [HOA, V6_DEFAULT]
    assert shim.plan(ShimConfig(home_address=None, ipv6_gateway=None)) == [V4_ADDR, V4_DEFAULT]


@pytest.mark.parametrize("config, message", [
    (ShimConfig(mtu=1000), "MTU 1000"),
    (ShimConfig(ipv4_gateway=IPv4Address("10.0.0.1")), "not on the link"),
    (ShimConfig(ipv4_gateway=IPv4Address("198.18.0.2")), "own address"),
    (ShimConfig(home_address=IPv6Address("fe80::5")), "global unicast"),
    (ShimConfig(interface="a-very-long-interface"), "invalid interface"),
    (ShimConfig(ipv4=IPv4Interface("198.18.0.2/31")), "no room"),
])
def test_invalid_configs_are_one_clear_error(config: ShimConfig, message: str) -> None:
    with pytest.raises(ShimError, match=message):
        config.validate()


def test_config_from_agent_answer() -> None:
    config = config_from_agent(AGENT_ANSWER, "eth0")
    assert config == ShimConfig()  # the documented defaults are the agent's defaults
    assert config_from_agent(AGENT_ANSWER).interface == "eth1"  # no flag: the hint


def test_config_from_agent_scenarios_switch_sides_off() -> None:
    answer = {**AGENT_ANSWER, "scenarios": {"ipv4_translation": False, "ipv6_passthrough": True}}
    config = config_from_agent(answer, "eth0")
    assert config.ipv4 is None and config.ipv4_gateway is None and config.pool is None
    assert config.home_address == IPv6Address("2001:db8:6::1000")
    answer = {**AGENT_ANSWER, "scenarios": {"ipv4_translation": True, "ipv6_passthrough": False}}
    config = config_from_agent(answer, "eth0")
    assert config.home_address is None and config.ipv6_gateway is None


@pytest.mark.parametrize("patch, message", [
    ({"ipv4_address": "198.18.0.300"}, "bad ipv4_address"),
    ({"ipv4_address": None}, "ipv4_address is missing"),
    ({"ipv4_prefixlen": 40}, "bad ipv4_prefixlen"),
    ({"dns": "198.18.0.1"}, "bad dns"),
    ({"dns": ["nonsense"]}, "bad dns"),
    ({"mtu": 100}, "MTU 100"),
    ({"scenarios": []}, "bad scenarios"),
])
def test_bad_agent_answers(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(ShimError, match=message):
        config_from_agent({**AGENT_ANSWER, **patch}, "eth0")


def test_config_round_trips_through_the_state_file_form() -> None:
    config = ShimConfig(dns=(IPv4Address("198.18.0.1"), IPv6Address("2001:db8:6::53")))
    assert config_from_dict(json.loads(json.dumps(config.as_dict()))) == config


# ---------------------------------------------------------------- up / down / status

def test_up_then_down_restores_the_interface_exactly(world: dict[str, Any], tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    result = shim.up(ShimConfig(), path, netns_options(tmp_path), factory(world))
    assert result.added == [V4_ADDR, V4_DEFAULT, HOA, V6_DEFAULT]
    assert world["items"] == {V4_ADDR, V4_DEFAULT, HOA, V6_DEFAULT} and world["mtu"] == 1440
    recorded = state_file.load(path)
    assert recorded is not None and recorded.mtu_before == 1500 and recorded.items == result.added
    messages = shim.down(path, factory(world))
    assert world["items"] == set() and world["mtu"] == 1500 and world["up"]
    assert "MTU restored to 1500" in messages
    assert not Path(path).exists()
    assert world["closed"] == 2  # every netlink socket closed


def test_down_never_removes_what_was_there_before(world: dict[str, Any], tmp_path: Path) -> None:
    world["items"].add(V4_DEFAULT)  # the user's own default route
    path = str(tmp_path / "state.json")
    result = shim.up(ShimConfig(), path, netns_options(tmp_path), factory(world))
    assert V4_DEFAULT not in result.added
    assert any("already there" in m for m in result.messages)
    shim.down(path, factory(world))
    assert world["items"] == {V4_DEFAULT}


def test_up_twice_is_harmless_and_down_still_undoes_all(world: dict[str, Any],
                                                          tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    shim.up(ShimConfig(), path, netns_options(tmp_path), factory(world))
    again = shim.up(ShimConfig(), path, netns_options(tmp_path), factory(world))
    assert again.added == [] and not any("already there" in m for m in again.messages)
    shim.down(path, factory(world))
    assert world["items"] == set() and world["mtu"] == 1500
    assert not (tmp_path / "etc-netns").exists()


def test_down_brings_the_link_down_only_if_up_brought_it_up(world: dict[str, Any],
                                                             tmp_path: Path) -> None:
    world["up"] = False
    path = str(tmp_path / "state.json")
    shim.up(ShimConfig(), path, netns_options(tmp_path), factory(world))
    assert world["up"]
    shim.down(path, factory(world))
    assert not world["up"]


def test_down_leaves_an_mtu_someone_else_changed(world: dict[str, Any], tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    shim.up(ShimConfig(), path, netns_options(tmp_path), factory(world))
    world["mtu"] = 1400
    shim.down(path, factory(world))
    assert world["mtu"] == 1400


def test_down_without_state_and_with_the_interface_gone(world: dict[str, Any],
                                                        tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    assert "nothing to undo" in shim.down(path, factory(world))[0]
    shim.up(ShimConfig(), path, netns_options(tmp_path), factory(world))
    del world["links"]["eth0"]
    assert "interface eth0 is gone" in shim.down(path, factory(world))
    assert not (tmp_path / "etc-netns" / "m6-host").exists()  # files are still cleaned


def test_up_on_a_missing_interface_fails_clearly(world: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ShimError, match="interface eth9 not found"):
        shim.up(ShimConfig(interface="eth9"), str(tmp_path / "s.json"),
                netns_options(tmp_path), factory(world))


def test_status_reports_each_item_against_the_kernel(world: dict[str, Any],
                                                     tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    assert shim.status(path, factory(world)) == {"configured": False, "state_file": path}
    shim.up(ShimConfig(), path, netns_options(tmp_path), factory(world))
    world["items"].discard(V6_DEFAULT)  # something removed the IPv6 default route
    info = shim.status(path, factory(world))
    present = {i["item"]: i["present"] for i in info["items"]}
    assert present == {"address 198.18.0.2/24": True, "route 0.0.0.0/0 via 198.18.0.1": True,
                       "address 2001:db8:6::1000/128": True, "route ::/0 via fe80::1": False}
    assert info["mtu"] == 1440 and info["mtu_before"] == 1500
    assert info["resolver"]["files"] == [str(tmp_path / "etc-netns/m6-host/resolv.conf")]
    json.dumps(info)  # the --json form


# ---------------------------------------------------------------- resolver

def test_netns_resolver_file_and_cleanup(world: dict[str, Any], tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    shim.up(ShimConfig(), path, netns_options(tmp_path), factory(world))
    written = tmp_path / "etc-netns" / "m6-host" / "resolv.conf"
    assert written.read_text() == f"{resolver.MARKER}\nnameserver 198.18.0.1\n"
    assert resolver.is_ours(str(written))
    shim.down(path, factory(world))
    assert not (tmp_path / "etc-netns").exists()


def test_netns_resolver_keeps_other_namespaces_overrides(world: dict[str, Any],
                                                         tmp_path: Path) -> None:
    other = tmp_path / "etc-netns" / "other"
    other.mkdir(parents=True)
    (other / "hosts").write_text("x\n")
    path = str(tmp_path / "state.json")
    shim.up(ShimConfig(), path, netns_options(tmp_path), factory(world))
    shim.down(path, factory(world))
    assert (other / "hosts").read_text() == "x\n"
    assert not (tmp_path / "etc-netns" / "m6-host").exists()


def test_write_resolv_conf_is_restored_by_down(world: dict[str, Any], tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 192.0.2.53\n")
    options = shim.ResolverOptions(write_resolv_conf=True, resolv_conf=str(conf))
    path = str(tmp_path / "state.json")
    shim.up(ShimConfig(), path, options, factory(world))
    assert "nameserver 198.18.0.1" in conf.read_text()
    shim.down(path, factory(world))
    assert conf.read_text() == "nameserver 192.0.2.53\n"


def test_write_resolv_conf_restores_a_symlink(world: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "stub.conf").write_text("nameserver 127.0.0.53\n")
    conf = tmp_path / "resolv.conf"
    conf.symlink_to(tmp_path / "stub.conf")
    options = shim.ResolverOptions(write_resolv_conf=True, resolv_conf=str(conf))
    path = str(tmp_path / "state.json")
    shim.up(ShimConfig(), path, options, factory(world))
    assert not conf.is_symlink()
    shim.down(path, factory(world))
    assert conf.is_symlink() and conf.read_text() == "nameserver 127.0.0.53\n"


def test_a_resolv_conf_changed_since_up_is_left_alone(world: dict[str, Any],
                                                      tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 192.0.2.53\n")
    options = shim.ResolverOptions(write_resolv_conf=True, resolv_conf=str(conf))
    path = str(tmp_path / "state.json")
    shim.up(ShimConfig(), path, options, factory(world))
    conf.write_text("nameserver 192.0.2.99\n")  # the user (or NetworkManager) took over
    messages = shim.down(path, factory(world))
    assert conf.read_text() == "nameserver 192.0.2.99\n"
    assert any("changed since up" in m for m in messages)


def test_without_netns_or_flag_the_resolver_is_only_printed(world: dict[str, Any],
                                                            tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 192.0.2.53\n")
    options = shim.ResolverOptions(resolv_conf=str(conf))
    result = shim.up(ShimConfig(), str(tmp_path / "state.json"), options, factory(world))
    assert conf.read_text() == "nameserver 192.0.2.53\n"
    assert any("nameserver 198.18.0.1" in m and "--write-resolv-conf" in m
               for m in result.messages)


def test_workstation_plan_for_systemd_resolved(tmp_path: Path) -> None:
    resolved = tmp_path / "resolve"
    resolved.mkdir()
    (resolved / "stub-resolv.conf").write_text("nameserver 127.0.0.53\n")
    conf = tmp_path / "resolv.conf"
    conf.symlink_to(resolved / "stub-resolv.conf")
    plan = resolver.workstation_plan("tap0", [IPv4Address("198.18.0.1")],
                                     resolv_conf=str(conf), resolved_dir=str(resolved))
    assert plan == ["resolvectl dns tap0 198.18.0.1", "resolvectl domain tap0 '~.'"]


# ---------------------------------------------------------------- agent query

def test_fetch_retries_until_the_agent_answers() -> None:
    calls: list[float] = []
    now = [0.0]

    def request(path: str, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        calls.append(now[0])
        assert req == {"cmd": "host_config"}
        if len(calls) < 3:
            raise ControlError("connection refused")
        return AGENT_ANSWER

    def sleep(seconds: float) -> None:
        now[0] += seconds

    answer = fetch_host_config("/x.sock", wait=5, request=request, clock=lambda: now[0],
                               sleep=sleep)
    assert answer == AGENT_ANSWER and len(calls) == 3


def test_fetch_gives_up_after_wait() -> None:
    now = [0.0]

    def request(path: str, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        raise ControlError("connection refused")

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(ShimError, match="did not answer within 1s"):
        fetch_host_config("/x.sock", wait=1, request=request, clock=lambda: now[0], sleep=sleep)


def test_fetch_unknown_command_is_unsupported_at_once() -> None:
    def request(path: str, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        return {"error": "unknown command 'host_config'"}

    with pytest.raises(AgentUnsupported):
        fetch_host_config("/x.sock", request=request, sleep=lambda s: pytest.fail("retried"))


# ---------------------------------------------------------------- CLI

def test_cli_flags_build_the_documented_defaults() -> None:
    args = cli.build_parser().parse_args(["up"])
    assert cli._config_from_flags(args) == ShimConfig()
    args = cli.build_parser().parse_args(["up", "--ipv4", "198.18.0.2/29", "--no-ipv6",
                                          "--no-default-route", "--dns", "198.18.0.1",
                                          "--dns", "2001:db8:6::53"])
    config = cli._config_from_flags(args)
    assert config.pool == IPv4Network("198.18.0.0/29") and config.ipv4_gateway is None
    assert config.home_address is None and len(config.dns) == 2


def test_cli_bad_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["up", "--ipv4", "198.18.0.300/24"])
    assert exc.value.code == 2
    assert "198.18.0.300" in capsys.readouterr().err


def test_cli_error_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    code = cli.main(["up", "--mtu", "100", "--state-file", str(tmp_path / "s.json")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and err.startswith("host-shim: error: MTU 100")


def test_cli_unsupported_agent_exit_code(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    code = cli.main(["up", "--agent-socket", str(tmp_path / "none.sock"), "--wait", "0",
                     "--state-file", str(tmp_path / "s.json")])
    assert code == 1 and "did not answer" in capsys.readouterr().err


def test_cli_status_without_state(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["status", "--json", "--state-file", str(tmp_path / "s.json")]) == 0
    assert json.loads(capsys.readouterr().out)["configured"] is False
