"""The control protocol and counter merging shared by every daemon."""

from __future__ import annotations

from netstack.runtime.daemon import answer_control, merged_counters


def test_counters_of_a_nodes_parts_are_summed_by_key() -> None:
    assert merged_counters({"a": 1, "b": 2}, {"b": 3}, {}) == {"a": 1, "b": 5}


def test_ping_status_and_unknown_commands() -> None:
    commands = {"status": lambda: {"state": "ok"}}
    assert answer_control({"cmd": "ping"}, "ha", commands) == {"ok": True, "node": "ha"}
    assert answer_control({"cmd": "status"}, "ha", commands) == {"state": "ok"}
    assert answer_control({"cmd": "reboot"}, "ha", commands) == {"error": "unknown command 'reboot'"}
    assert answer_control({"cmd": ["status"]}, "ha", commands)["error"].startswith("unknown")
    assert "error" in answer_control({}, "ha", commands)
