"""Scenario policy table 220 and BA routine 60's selection."""

from __future__ import annotations

import pytest

from guest_agent.scenario import CONTENTS, PASSTHROUGH, TRANSLATING, Scenario, ScenarioPolicy

S = Scenario


def states(policy: ScenarioPolicy) -> dict[Scenario, bool]:
    return {number: policy.is_on(number) for number in Scenario}


def test_default_states() -> None:
    on = {n for n, state in states(ScenarioPolicy()).items() if state}
    assert on == {S.TRANSLATION_ON, S.TRANSLATION_ON_IPSEC, S.TRANSLATION_OFF, S.TRANSLATION_OFF_IPSEC}
    assert ScenarioPolicy().active == ()


def test_translation_off_switches_both_translating_home_scenarios() -> None:
    on = {n for n, state in states(ScenarioPolicy(translation=False)).items() if state}
    assert on == {S.TRANSLATION_OFF, S.TRANSLATION_OFF_IPSEC}


def test_passthrough_off_switches_both_ipv6_home_scenarios() -> None:
    on = {n for n, state in states(ScenarioPolicy(ipv6_passthrough=False)).items() if state}
    assert on == {S.TRANSLATION_ON, S.TRANSLATION_ON_IPSEC}


def test_route_optimisation_and_map_start_off() -> None:
    policy = ScenarioPolicy()
    for number in (
        S.TRANSLATION_ON_ROUTE_OPTIMISATION,
        S.TRANSLATION_OFF_ROUTE_OPTIMISATION,
        S.MAP_TYPE_1,
        S.MAP_TYPE_2,
        S.MAP_TYPE_3,
    ):
        assert not policy.is_on(number)


def test_select_from_home_agent_unprotected() -> None:
    policy = ScenarioPolicy()
    assert policy.select(from_home_agent=True, protected=False) == (S.TRANSLATION_ON, S.TRANSLATION_OFF)
    assert policy.active == (S.TRANSLATION_ON, S.TRANSLATION_OFF)
    assert policy.translating and policy.passing_through


def test_select_from_home_agent_protected() -> None:
    policy = ScenarioPolicy()
    selected = policy.select(from_home_agent=True, protected=True)
    assert selected == (S.TRANSLATION_ON_IPSEC, S.TRANSLATION_OFF_IPSEC)
    assert policy.translating and policy.passing_through


def test_select_from_correspondent_is_filtered_while_route_optimisation_is_off() -> None:
    policy = ScenarioPolicy()
    policy.select(from_home_agent=True, protected=False)
    assert policy.select(from_home_agent=False, protected=False) == ()
    assert policy.active == ()  # a new BA replaces the previous selection
    assert not policy.translating and not policy.passing_through


def test_select_from_correspondent_when_switched_on() -> None:
    policy = ScenarioPolicy()
    policy.set(S.TRANSLATION_OFF_ROUTE_OPTIMISATION, True)
    assert policy.select(from_home_agent=False, protected=True) == (S.TRANSLATION_OFF_ROUTE_OPTIMISATION,)
    assert policy.passing_through and not policy.translating


@pytest.mark.parametrize(
    ("translation", "passthrough", "expected"),
    [
        (True, False, (S.TRANSLATION_ON,)),
        (False, True, (S.TRANSLATION_OFF,)),
        (False, False, ()),
    ],
)
def test_off_scenarios_are_filtered(translation: bool, passthrough: bool, expected: tuple) -> None:
    policy = ScenarioPolicy(translation=translation, ipv6_passthrough=passthrough)
    assert policy.select(from_home_agent=True, protected=False) == expected
    assert policy.translating is translation
    assert policy.passing_through is passthrough


def test_set_turns_a_scenario_off() -> None:
    policy = ScenarioPolicy()
    policy.set(S.TRANSLATION_ON, False)
    assert policy.select(from_home_agent=True, protected=False) == (S.TRANSLATION_OFF,)
    assert not policy.translating
    # the protected variant keeps its own state
    assert policy.select(from_home_agent=True, protected=True) == (S.TRANSLATION_ON_IPSEC, S.TRANSLATION_OFF_IPSEC)


def test_translating_and_passthrough_sets_partition_the_translation_scenarios() -> None:
    assert not TRANSLATING & PASSTHROUGH
    assert all(int(n) // 1000 in (10, 11) for n in TRANSLATING | PASSTHROUGH)
    assert set(CONTENTS) == set(Scenario)


def test_as_list_rows() -> None:
    policy = ScenarioPolicy(ipv6_passthrough=False)
    policy.select(from_home_agent=True, protected=False)
    rows = policy.as_list()
    assert len(rows) == len(Scenario)
    assert all(set(row) == {"number", "content", "state", "active"} for row in rows)
    by_number = {row["number"]: row for row in rows}
    assert set(by_number) == {int(n) for n in Scenario}
    assert all(isinstance(row["number"], int) and not isinstance(row["number"], Scenario) for row in rows)
    assert by_number[10000] == {"number": 10000, "content": CONTENTS[S.TRANSLATION_ON], "state": "on", "active": True}
    assert by_number[10001] == {
        "number": 10001,
        "content": CONTENTS[S.TRANSLATION_OFF],
        "state": "off",
        "active": False,
    }
    assert by_number[10010]["state"] == "on" and by_number[10010]["active"] is False
    assert by_number[10300]["state"] == "off"
