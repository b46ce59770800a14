"""Issue 14: the [fastpath] switch and the fallback to the Python path (no kernel needed)."""

from __future__ import annotations

import logging
import shutil
from types import SimpleNamespace

import pytest

import guest_agent.fast_path as guest_fast_path
import network.home_agent.fast_path as ha_fast_path
from guest_agent.config import AgentConfig
from netstack.fastpath.build import object_path
from netstack.fastpath.config import FastPathSection
from netstack.fastpath.guest import GuestState
from netstack.fastpath.libbpf import BpfError
from netstack.runtime.configfile import load_config
from network.home_agent.config import HomeAgentConfig


def _agent(**fastpath: object) -> SimpleNamespace:
    config = AgentConfig()
    config.fastpath = FastPathSection(**fastpath)  # type: ignore[arg-type]
    config.host_link.interface = "eth1"
    security = SimpleNamespace(esp_tunnel=False, end_to_end=None)
    return SimpleNamespace(config=config, host_side=object(), security=security, counters={})


@pytest.fixture(autouse=True)
def no_netlink(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    detached: list[str] = []
    monkeypatch.setattr(guest_fast_path, "detach", detached.append)
    monkeypatch.setattr(ha_fast_path, "detach", detached.append)
    monkeypatch.setattr(guest_fast_path.socket, "if_nametoindex", lambda name: 7)
    monkeypatch.setattr(ha_fast_path.socket, "if_nametoindex", lambda name: 7)
    return detached


def test_enabled_by_default_in_both_configs(tmp_path) -> None:
    assert AgentConfig().fastpath.enabled and HomeAgentConfig().fastpath.enabled
    path = tmp_path / "guest.toml"
    path.write_text("[fastpath]\nenabled = false\n")
    assert load_config(AgentConfig, path).fastpath.enabled is False


def test_disabled_in_config_removes_leftover_programs(no_netlink, caplog) -> None:
    fp = guest_fast_path.AgentFastPath(_agent(enabled=False))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        fp.start(0.0)
    assert fp.as_dict() == {"active": False, "reason": "disabled in [fastpath]"}
    assert sorted(no_netlink) == ["eth0", "eth1"]  # a previous run's filters go
    assert [r.message for r in caplog.records] == [
        "fast path off (disabled in [fastpath]): the Python path carries every packet"]


def test_kernel_refusal_falls_back_with_one_line(monkeypatch, caplog) -> None:
    def refuse(**_kwargs: object) -> None:
        raise BpfError(1, "load guest.bpf.o (BPF verifier or permissions): Operation not permitted")

    monkeypatch.setattr(guest_fast_path, "GuestFastPath", refuse)
    agent = _agent()
    fp = guest_fast_path.AgentFastPath(agent)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        fp.start(0.0)
    assert not fp.active and "Operation not permitted" in fp.reason
    assert len(caplog.records) == 1 and "the Python path carries every packet" in caplog.text
    fp.sync()  # no-ops while off
    fp.handle_timer(10.0)
    assert fp.get_timer() is None


def test_ipsec_keeps_the_data_on_the_python_path() -> None:
    agent = _agent()
    agent.security.esp_tunnel = True
    fp = guest_fast_path.AgentFastPath(agent)  # type: ignore[arg-type]
    fp.start(0.0)
    assert not fp.active and "IPsec" in fp.reason


def test_home_agent_falls_back_too(monkeypatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise BpfError(38, "BPF_PROG_LOAD: Function not implemented")

    monkeypatch.setattr(ha_fast_path, "HomeAgentFastPath", refuse)
    daemon = SimpleNamespace(config=HomeAgentConfig(), counters={},
                             security=SimpleNamespace(esp_tunnel=False, refuse_plain_tunnel=lambda: False))
    control = ha_fast_path.HomeAgentFastPathControl(daemon)  # type: ignore[arg-type]
    control.start()
    assert control.as_dict()["active"] is False and "not implemented" in control.as_dict()["reason"]
    control.bind(None, None)  # type: ignore[arg-type]  # ignored while off
    control.close()


def test_state_struct_matches_the_c_layout() -> None:
    assert len(GuestState().pack()) == 132  # sizeof(struct guest_state)
    assert GuestState(local_ifindex=7).pack()[-4:] == (7).to_bytes(4, "little")


def test_home_agent_state_carries_the_super_frames_switch() -> None:
    from ipaddress import IPv6Network

    from netstack.fastpath.home_agent import HomeAgentState

    state = HomeAgentState(bytes(16), IPv6Network("2001:db8:6::/64"), bytes(6), None, 1)
    assert len(state.pack()) == 68  # sizeof(struct ha_state)
    assert state.pack()[-2:] == b"\x01\x00"  # enabled, super_frames off by default
    state.super_frames = True
    assert state.pack()[-1:] == b"\x01"


def test_super_frames_is_off_unless_configured() -> None:
    assert HomeAgentConfig().fastpath.super_frames is False


def test_object_builds_with_clang() -> None:
    if shutil.which("clang") is None:
        pytest.skip("no clang")
    assert object_path("guest").stat().st_size > 0 and object_path("ha").stat().st_size > 0


def test_status_and_demo_show_the_path_of_each_node() -> None:
    from rich.console import Console

    from provisioning.demo import fastpath_carried, fastpath_summary
    from provisioning.status import render_fastpath

    merged = {
        "guest": {"fastpath": {"active": True, "reason": None, "maps": {"xlat_v4": 2},
                               "packets": {"out_translated": 5, "errors": 0}}},
        "ha": {"fastpath": {"active": False, "reason": "disabled in [fastpath]"}},
    }
    console = Console(record=True, width=200)
    render_fastpath(merged, console)
    text = console.export_text()
    assert "eBPF + Python" in text and "out_translated 5" in text
    assert "Python only (disabled in [fastpath])" in text
    assert "super-frames" not in text
    assert fastpath_summary(merged) == {"guest": "eBPF, out_translated 5",
                                        "ha": "off: disabled in [fastpath]"}
    assert fastpath_carried(merged) == {"guest": True}  # the HA's is off: no verdict
    merged["guest"]["fastpath"]["packets"] = {"out_translated": 0, "passed_host_link": 9}
    assert fastpath_carried(merged) == {"guest": False}  # passing on is not carrying
    merged["ha"] = {"fastpath": {"active": True, "super_frames": True, "maps": {}, "packets": {}}}
    console = Console(record=True, width=200)
    render_fastpath(merged, console)
    assert "eBPF + Python, TCP super-frames whole" in console.export_text()

