"""The home agent writes its binding cache at once for one change, and at most once per
interval under churn (a BU flood, a restore of many bindings), issue 15."""

from __future__ import annotations

import time
from pathlib import Path
from unittest import mock

from benchmarks.ha_scale import HA, HA_MAC, ROUTER_MAC, _feed, make_daemon, terminal
from netstack.wire.ethernet import ETH_P_IPV6, build_ethernet
from netstack.wire.mh import BindingUpdate
from netstack.wire.mh_codec import build_mobility_packet
from network.home_agent import daemon as daemon_module
from network.home_agent.persistence import load_bindings


def _bu(i: int) -> bytes:
    hoa, coa = terminal(i)
    packet = build_mobility_packet(coa, HA, BindingUpdate(sequence=1, lifetime=400),
                                   home_address=hoa)
    return build_ethernet(HA_MAC, ROUTER_MAC, ETH_P_IPV6, packet)


def test_fifty_registrations_cost_two_writes(tmp_path: Path) -> None:
    daemon = make_daemon(str(tmp_path))
    real_save = daemon_module.save_bindings
    with mock.patch.object(daemon_module, "save_bindings", side_effect=real_save) as save:
        _feed(daemon, [_bu(i) for i in range(50)], batch=10)
        assert len(daemon.home_agent.binding_cache) == 50
        assert save.call_count == 1  # the first change at once, the rest coalesced
        assert daemon.bindings_writer.due is not None
        daemon.on_timer(daemon.bindings_writer.due)
        assert save.call_count == 2
    saved = load_bindings(daemon.bindings_file, time.monotonic())
    assert len(saved) == 50


def test_single_change_is_written_at_once(tmp_path: Path) -> None:
    daemon = make_daemon(str(tmp_path))
    _feed(daemon, [_bu(7)])
    saved = load_bindings(daemon.bindings_file, time.monotonic())
    assert [e.home_address for e in saved] == [terminal(7)[0]]
    assert daemon.bindings_writer.due is None
