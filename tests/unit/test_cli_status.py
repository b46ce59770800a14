"""`mip6term status` merge/render and the `move` completion logic (fake clock, no sockets)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from provisioning import handover, status
from provisioning.errors import ProvisioningError

GUEST = {"binding_update_list": [{"destination": "2001:db8:6::1", "home_address": "2001:db8:6::1000",
                                  "care_of_address": "2001:db8:a::5", "lifetime": 420,
                                  "state": "registered", "sequence": 7}],
         "counters": {"rx_packets": 3}, "at_home": False, "scenario": 10000}
HA = {"binding_cache": [{"home_address": "2001:db8:6::1000", "care_of_address": "2001:db8:a::5",
                         "lifetime": 420, "sequence": 7}],
      "counters": {"bu_received": 2}, "address": "2001:db8:6::1"}


def test_merge_puts_tables_on_top_and_the_rest_under_node_names() -> None:
    merged = status.merge(GUEST, HA)
    assert merged["binding_update_list"] == GUEST["binding_update_list"]
    assert merged["binding_cache"] == HA["binding_cache"]
    assert merged["counters"] == {"guest": {"rx_packets": 3}, "ha": {"bu_received": 2}}
    assert merged["guest"] == {"at_home": False, "scenario": 10000}
    assert merged["ha"] == {"address": "2001:db8:6::1"}
    assert "errors" not in merged
    assert "counters" in GUEST  # inputs are not mutated


def test_collect_reports_one_missing_agent_and_fails_on_both() -> None:
    def ha_down(path: str, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        if path.endswith("ha.sock"):
            raise ProvisioningError("daemon not running")
        assert req == {"cmd": "status"}
        return dict(GUEST)

    merged = status.collect("/run/mip6term/x", ask=ha_down)
    assert merged["errors"] == {"ha": "daemon not running"}
    assert merged["binding_cache"] == []
    assert merged["binding_update_list"][0]["state"] == "registered"

    def all_down(path: str, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        raise ProvisioningError("nope")

    with pytest.raises(ProvisioningError, match="no agent answered"):
        status.collect("/run/mip6term/x", ask=all_down)


def test_render_shows_bul_binding_cache_and_counters() -> None:
    out = io.StringIO()
    status.render(status.merge(GUEST, HA), Console(file=out, width=200))
    text = out.getvalue()
    assert "Binding Update List (table 210)" in text
    assert "2001:db8:a::5" in text and "registered" in text
    assert "bu_received" in text and "rx_packets" in text


@pytest.mark.parametrize(("target", "state", "coa", "at_home", "done"), [
    ("a", "registered", "2001:db8:a::5", False, True),
    ("a", "registering", "2001:db8:a::5", False, False),
    ("a", "registered", "2001:db8:b::5", False, False),  # old binding still shown
    ("b", "registered", "2001:db8:b::5", False, True),
    ("home", "registered", "2001:db8:b::5", True, False),
    ("home", "idle", "2001:db8:6::1000", True, True),
    ("home", "idle", "2001:db8:6::1000", False, False),
    ("a", "registered", "not-an-address", False, False),
])
def test_move_done(target: str, state: str, coa: str, at_home: bool, done: bool) -> None:
    st = {"binding_update_list": [{"state": state, "care_of_address": coa}], "at_home": at_home}
    assert handover.move_done(st, target) is done


def test_move_done_home_with_empty_bul() -> None:
    assert handover.move_done({"binding_update_list": [], "at_home": True}, "home")
    assert not handover.move_done({}, "a")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_for_move_returns_elapsed_time_on_fake_clock() -> None:
    clock = FakeClock()
    answers = [{"binding_update_list": [{"state": "registering", "care_of_address": "2001:db8:a::5"}]}] * 5
    answers.append({"binding_update_list": [{"state": "registered", "care_of_address": "2001:db8:a::5"}]})

    def ask(path: str, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        return answers.pop(0)

    elapsed = handover.wait_for_move("/x/guest.sock", "a", 10.0, start=clock.now, clock=clock,
                                     sleep=clock.sleep, ask=ask)
    assert elapsed == pytest.approx(5 * handover.POLL_INTERVAL)


def test_wait_for_move_times_out_with_last_error() -> None:
    clock = FakeClock()

    def ask(path: str, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        raise ProvisioningError("daemon not running")

    with pytest.raises(ProvisioningError, match=r"not completed within 2s.*daemon not running"):
        handover.wait_for_move("/x/guest.sock", "b", 2.0, start=clock.now, clock=clock,
                               sleep=clock.sleep, ask=ask)
    assert clock.now >= 102.0


def test_render_shows_scenario_policy_and_translation_table() -> None:
    guest = {
        **GUEST,
        "scenario_policy": [{"number": 10000, "content": "IPv4 applications", "state": "on",
                             "active": True}],
        "translation_table": [{"ipv6": "2001:db8:8::1001", "ipv4": "198.18.0.3",
                               "lifetime": 300.0, "remaining": 299.6, "static": False,
                               "home": False, "packets": 7}],
    }
    out = io.StringIO()
    status.render(status.merge(guest, HA), Console(file=out, width=200))
    text = out.getvalue()
    assert "Scenario policy (table 220)" in text and "10000" in text
    assert "Translation table (table 230)" in text and "198.18.0.3" in text
    assert " 300 " in text  # remaining lifetime rounded to whole seconds
