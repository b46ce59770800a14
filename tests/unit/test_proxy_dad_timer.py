"""The home agent's DAD timer for a new home address (fake clock).

A home -> visited move waits for the home agent's DAD on the home address (RFC 6275 10.3.1, a
MUST when it has no binding), which lasts DupAddrDetectTransmits x RetransTimer (RFC 4862 5.4).
The bed gives the home agent a 50 ms RetransTimer for it; the DAD itself is kept.
"""

from __future__ import annotations

import tomllib
from ipaddress import IPv6Address
from pathlib import Path

from network.home_agent.config import load_home_agent_config
from network.home_agent.proxy_dad import ProxyDad
from provisioning.nodes import agents

HOME_ADDRESS = IPv6Address("2001:db8:6::1000")


def test_bed_gives_the_home_agent_a_short_dad_timer(tmp_path: Path) -> None:
    text = agents.render_toml(agents.home_agent_config("/run/mip6term/m6"))
    assert tomllib.loads(text)["home_agent"]["dad_retrans_timer"] == agents.PROXY_DAD_RETRANS_TIMER
    assert 0 < agents.PROXY_DAD_RETRANS_TIMER < 1.0
    path = tmp_path / "ha.toml"
    path.write_text(text)
    config = load_home_agent_config(path).home_agent
    assert config.dad_retrans_timer == agents.PROXY_DAD_RETRANS_TIMER and config.proxy_dad
    assert load_home_agent_config(None).home_agent.dad_retrans_timer == 1.0  # RFC 4861 default


def test_proxy_dad_lasts_one_retrans_timer() -> None:
    dad = ProxyDad(retrans_timer=0.05)
    dad.start(HOME_ADDRESS, 10.0)
    assert len(dad.packets_to_send()) == 1  # the probe is still sent (RFC 6275 10.3.1)
    assert dad.get_timer() == 10.05
    dad.handle_timer(10.049)
    assert dad.results() == []
    dad.handle_timer(10.05)
    assert dad.results() == [(HOME_ADDRESS, False)]


def test_an_answer_within_the_short_timer_is_still_a_duplicate() -> None:
    dad = ProxyDad(retrans_timer=0.05)
    dad.start(HOME_ADDRESS, 10.0)
    dad.observe(HOME_ADDRESS, advertisement=True, source=HOME_ADDRESS)
    assert dad.results() == [(HOME_ADDRESS, True)]
