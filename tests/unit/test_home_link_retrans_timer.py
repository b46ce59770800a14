"""The home link's RetransTimer (RFC 4861 6.2.1 / 6.3.2), fake clock.

A home -> visited move waits for the home agent's DAD on the home address (RFC 6275 10.3.1),
which lasts DupAddrDetectTransmits x RetransTimer (RFC 4862 5.4). The bed advertises a short
RetransTimer on the home link (radvd AdvRetransTimer) and gives the home agent the same value.
"""

from __future__ import annotations

import tomllib
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

from netstack.nd import AddressReady
from network.home_agent.config import load_home_agent_config
from network.home_agent.proxy_dad import ProxyDad
from provisioning import radvd
from provisioning.nodes import agents
from tests.unit.test_nd_support import (
    ROUTER_A,
    ROUTER_A_MAC,
    deliver,
    events,
    make_host,
    router_advertisement,
)

HOME = IPv6Network("2001:db8:6::/64")
HOME_ADDRESS = IPv6Address("2001:db8:6::1000")


def test_radvd_advertises_retrans_timer_only_when_asked() -> None:
    assert "AdvRetransTimer 0;" in radvd.render_config("eth0", IPv6Network("2001:db8:a::/64"))
    home = radvd.render_config("eth0", HOME, retrans_timer_ms=radvd.HOME_LINK_RETRANS_TIMER_MS)
    assert f"AdvRetransTimer {radvd.HOME_LINK_RETRANS_TIMER_MS};" in home
    assert 0 < radvd.HOME_LINK_RETRANS_TIMER_MS < 1000  # shorter than RFC 4861's 1 s default


def test_home_agent_gets_the_home_links_retrans_timer(tmp_path: Path) -> None:
    text = agents.render_toml(agents.home_agent_config("/run/mip6term/m6"))
    assert tomllib.loads(text)["home_agent"]["retrans_timer"] == 0.05
    path = tmp_path / "ha.toml"
    path.write_text(text)
    assert load_home_agent_config(path).home_agent.retrans_timer == 0.05
    assert load_home_agent_config(None).home_agent.retrans_timer == 1.0  # RFC 4861 default


def test_proxy_dad_lasts_one_retrans_timer() -> None:
    """RFC 6275 10.3.1 DAD is kept (a MUST): it just lasts the advertised RetransTimer."""
    dad = ProxyDad(retrans_timer=radvd.HOME_LINK_RETRANS_TIMER_MS / 1000)
    dad.start(HOME_ADDRESS, 10.0)
    assert len(dad.packets_to_send()) == 1
    dad.handle_timer(10.049)
    assert dad.results() == []
    assert dad.get_timer() == 10.0 + 0.05
    dad.handle_timer(10.05)
    assert dad.results() == [(HOME_ADDRESS, False)]


def test_hosts_on_the_home_link_adopt_the_advertised_retrans_timer() -> None:
    """RFC 4861 6.3.4: a non-zero Retrans Timer in an RA sets the host's RetransTimer, and its
    (non-optimistic) DAD follows it (RFC 4862 5.4)."""
    host = make_host(optimistic_dad=False)
    host.link_up(0.0)
    ra = router_advertisement((HOME,))
    ra = type(ra)(router_lifetime=ra.router_lifetime, retrans_timer=50, options=ra.options)
    deliver(host, ROUTER_A, IPv6Address("ff02::1"), ra, ROUTER_A_MAC, 0.0)
    assert host.neighbors.retrans_timer == 0.05
    host.add_static_address(HOME_ADDRESS, 64, 0.0)
    events(host)
    host.handle_timer(0.05)
    assert any(isinstance(e, AddressReady) and e.address == HOME_ADDRESS for e in events(host))
