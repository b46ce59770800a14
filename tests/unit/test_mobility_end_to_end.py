"""MobileNode and HomeAgent wired together in pure Python: messages carried with a small
latency, some of them dropped, time advanced from timer to timer (no sleeping)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from ipaddress import IPv6Address, IPv6Network

from netstack.mobility.events import (
    BindingAccepted,
    BindingDeleted,
    BindingDeregistered,
    DadRequested,
    ReturnedHome,
)
from netstack.mobility.home_agent import HomeAgent
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.mobility.mobile_node import MobileNode
from netstack.wire.mh import BindingAck, BindingUpdate

HOME = IPv6Network("2001:db8:6::/64")
HA_ADDR = IPv6Address("2001:db8:6::1")
HOA = IPv6Address("2001:db8:6::1000")
COA_A = IPv6Address("2001:db8:a::10")
COA_B = IPv6Address("2001:db8:b::10")
LATENCY = 0.05
DAD_TIME = 1.0

Drop = Callable[[OutgoingMobilityMessage, float], bool]


class Bed:
    def __init__(self, mn: MobileNode, ha: HomeAgent, drop: Drop | None = None) -> None:
        self.mn, self.ha = mn, ha
        self.now = 0.0
        self.drop = drop or (lambda m, now: False)
        self.in_flight: list[tuple[float, OutgoingMobilityMessage]] = []
        self.dad_due: list[tuple[float, IPv6Address]] = []
        self.mn_events: list[tuple[float, object]] = []
        self.ha_events: list[tuple[float, object]] = []
        self.delivered: list[tuple[float, OutgoingMobilityMessage]] = []
        self.dropped = 0

    def _collect(self) -> None:
        for m in self.mn.messages_to_send() + self.ha.messages_to_send():
            if self.drop(m, self.now):
                self.dropped += 1
            else:
                self.in_flight.append((self.now + LATENCY, m))
        while (e := self.mn.next_event()) is not None:
            self.mn_events.append((self.now, e))
        while (e := self.ha.next_event()) is not None:
            self.ha_events.append((self.now, e))
            if isinstance(e, DadRequested):
                self.dad_due.append((self.now + DAD_TIME, e.home_address))

    def _deliver(self, m: OutgoingMobilityMessage) -> None:
        self.delivered.append((self.now, m))
        if isinstance(m.message, BindingUpdate):
            self.ha.receive_binding_update(m.src, m.home_address, m.message, self.now)
        elif isinstance(m.message, BindingAck):
            # the MN sees the HA address as source
            self.mn.receive_binding_ack(m.src, m.message, self.now)

    def run_until(self, end: float, check: Callable[[Bed], None] | None = None) -> None:
        self._collect()
        while True:
            candidates = [t for t, _ in self.in_flight] + [t for t, _ in self.dad_due]
            for timer in (self.mn.get_timer(), self.ha.get_timer()):
                if timer is not None:
                    candidates.append(timer)
            nxt = min(candidates, default=math.inf)
            if nxt > end:
                self.now = end
                return
            self.now = max(self.now, nxt)
            due = [x for x in self.in_flight if x[0] <= self.now]
            self.in_flight = [x for x in self.in_flight if x[0] > self.now]
            for _, m in due:
                self._deliver(m)
            dads = [x for x in self.dad_due if x[0] <= self.now]
            self.dad_due = [x for x in self.dad_due if x[0] > self.now]
            for _, hoa in dads:
                self.ha.dad_result(hoa, False, self.now)
            self.mn.handle_timer(self.now)
            self.ha.handle_timer(self.now)
            self._collect()
            if check is not None:
                check(self)

    def attach(self, coa: IPv6Address) -> None:
        self.mn.attach(coa, math.inf, self.now)
        self._collect()


def make(start: int = 1000, drop: Drop | None = None) -> Bed:
    mn = MobileNode(HOA, HA_ADDR, home_prefix=HOME, rng=random.Random(start))
    ha = HomeAgent(HA_ADDR, home_prefix=HOME)
    return Bed(mn, ha, drop)


def test_registration_survives_a_lost_ba_refreshes_moves_and_returns_home() -> None:
    lost = {"ba": 0}

    def drop_first_ba(m: OutgoingMobilityMessage, now: float) -> bool:
        if isinstance(m.message, BindingAck) and lost["ba"] == 0:
            lost["ba"] += 1
            return True
        return False

    bed = make(drop=drop_first_ba)
    bed.attach(COA_A)
    bed.run_until(10.0)
    # BU at 0 parked for DAD, BA at 1.05 lost, retransmission at 1.5 updates the binding
    assert bed.dropped == 1
    assert bed.mn.tunnel_endpoint() == (COA_A, HA_ADDR)
    assert bed.ha.lookup(HOA.packed) == COA_A.packed
    accepted = [t for t, e in bed.mn_events if isinstance(e, BindingAccepted)]
    assert accepted == [1.5 + 2 * LATENCY]

    def always_bound(b: Bed) -> None:
        # refreshes keep both sides bound with no gap
        assert b.ha.lookup(HOA.packed) == COA_A.packed
        assert b.mn.tunnel_endpoint() == (COA_A, HA_ADDR)

    bed.run_until(2000.0, always_bound)
    refreshes = [e for _, e in bed.mn_events if isinstance(e, BindingAccepted)]
    assert len(refreshes) >= 2000 // 420 + 1
    assert not any(isinstance(e, BindingDeleted) for _, e in bed.ha_events)

    bed.attach(COA_B)
    bed.run_until(2001.0)
    assert bed.mn.tunnel_endpoint() == (COA_B, HA_ADDR)
    assert bed.ha.lookup(HOA.packed) == COA_B.packed

    bed.attach(HOA)
    bed.run_until(2010.0)
    tail = [e for _, e in bed.mn_events][-2:]
    assert tail == [BindingDeregistered(HA_ADDR), ReturnedHome(HOA)]
    assert bed.ha.lookup(HOA.packed) is None
    assert isinstance(bed.ha_events[-1][1], BindingDeleted)
    assert bed.mn.get_timer() is None and bed.ha.get_timer() is None


def test_heavy_loss_eventually_registers_with_backoff() -> None:
    # everything lost for the first 40 s: the MN backs off (1.5, 3, 6, 12, 24...) then succeeds
    bed = make(drop=lambda m, now: now < 40.0)
    bed.attach(COA_A)
    bed.run_until(200.0)
    bus = [t for t, m in bed.delivered if isinstance(m.message, BindingUpdate)]
    assert bed.mn.tunnel_endpoint() == (COA_A, HA_ADDR)
    assert bus[0] == 46.5 + LATENCY  # first BU sent after the outage (0, 1.5, 4.5, 10.5, 22.5, 46.5)
    assert bed.ha.lookup(HOA.packed) == COA_A.packed


def test_rebooted_mobile_node_resynchronises_with_status_135() -> None:
    bed = make(start=1)
    bed.attach(COA_A)
    bed.run_until(5.0)
    cached = bed.ha.binding_cache.get(HOA).sequence
    # a new MN instance (reboot) whose random start lies "behind" the HA's cached number
    rebooted = MobileNode(
        HOA, HA_ADDR, home_prefix=HOME, rng=_fixed((cached - 100) % 65536)
    )
    bed.mn = rebooted
    bed.attach(COA_B)
    bed.run_until(10.0)
    assert rebooted.counters["ba_resynchronised"] == 1
    assert rebooted.tunnel_endpoint() == (COA_B, HA_ADDR)
    assert bed.ha.binding_cache.get(HOA).sequence == (cached + 1) % 65536


def test_home_agent_restart_recovers_at_next_refresh() -> None:
    bed = make()
    bed.attach(COA_A)
    bed.run_until(100.0)
    bed.ha = HomeAgent(HA_ADDR, home_prefix=HOME)  # state lost
    bed.run_until(400.0)
    assert bed.ha.lookup(HOA.packed) == COA_A.packed  # refresh at 357 re-created it (after DAD)
    assert any(isinstance(e, DadRequested) for _, e in bed.ha_events)


def _fixed(value: int) -> random.Random:
    class Fixed(random.Random):
        def randrange(self, *args: object, **kwargs: object) -> int:  # type: ignore[override]
            return value

    return Fixed(0)
