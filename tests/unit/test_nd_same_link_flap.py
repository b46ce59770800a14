"""A carrier flap without movement (fake clock): the first RA after the link comes back that
still advertises the care-of address's prefix (RFC 6275 11.5.1: no movement) reports the
care-of address again, so the mobile node resumes a BU the outage stopped."""

from __future__ import annotations

from ipaddress import IPv6Address

from netstack.nd import AddressReady, MovementDetected
from tests.unit.test_nd_support import (
    COA_A,
    COA_B,
    PREFIX_A,
    PREFIX_B,
    ROUTER_A,
    ROUTER_A_MAC,
    ROUTER_B,
    ROUTER_B_MAC,
    deliver,
    events,
    make_host,
    router_advertisement,
    sent,
)

ALL_NODES = IPv6Address("ff02::1")


def _on_link_a():
    host = make_host()
    host.link_up(0.0)
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(), ROUTER_A_MAC, 0.1)
    assert [e.address for e in events(host) if isinstance(e, AddressReady)][-1] == COA_A
    sent(host)
    return host


def test_flap_on_the_same_link_reports_the_care_of_address_again() -> None:
    host = _on_link_a()
    host.link_down(5.0)
    host.link_up(5.1)
    assert events(host) == []  # nothing proven yet
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(), ROUTER_A_MAC, 5.2)
    ready = [e for e in events(host) if isinstance(e, AddressReady)]
    assert [e.address for e in ready] == [COA_A]
    assert host.counters["same_link_confirmed"] == 1
    # only once per re-attachment
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(), ROUTER_A_MAC, 5.3)
    assert [e for e in events(host) if isinstance(e, AddressReady)] == []


def test_flap_onto_another_link_reports_only_the_new_address() -> None:
    host = _on_link_a()
    host.link_down(5.0)
    host.link_up(5.1)
    deliver(host, ROUTER_B, ALL_NODES, router_advertisement((PREFIX_B,), router_mac=ROUTER_B_MAC),
            ROUTER_B_MAC, 5.2)
    got = events(host)
    assert any(isinstance(e, MovementDetected) for e in got)
    assert [e.address for e in got if isinstance(e, AddressReady)] == [COA_B]
    assert PREFIX_A  # the old prefix's address is gone, not reported
    assert COA_A not in host.addresses


def test_first_attachment_is_not_a_flap() -> None:
    host = _on_link_a()
    deliver(host, ROUTER_A, ALL_NODES, router_advertisement(), ROUTER_A_MAC, 0.2)
    assert [e for e in events(host) if isinstance(e, AddressReady)] == []
