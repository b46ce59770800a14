"""Fixtures of the conformance suites: one bed per module, the node under test and testers.

The HA suite (TAHI's HA topology): the bed without agents, then only the home agent started,
a tester "tn" on visited link 5a acting as the mobile node (TAHI's MN on LinkX behind R1 =
ar-a) and a tester "hn" on the home link acting as a correspondent / other home-link node
(TAHI's CN0 / NUT on Link0). Each case uses home addresses of its own, so cases share the
bed and the running HA without seeing each other's bindings.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from scapy.layers.inet6 import (
    HAO,
    MIP6MH_BA,
    MIP6MH_BU,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from netstack.runtime.control import control_request
from provisioning import netns
from provisioning.nodes import agents, host
from provisioning.topology import HOME_ADDRESS, HOME_AGENT
from tests.conformance.tester import LinkTester, same_address
from tests.netns.conftest import BedHandle, _bring_up

HA = str(HOME_AGENT)
REFUSED_HOA = "2001:db8:6::dead"  # refused by the HA's policy (status 129 case)
_hoa_counter = itertools.count(0xC000)

# The testers' kernels own their SLAAC addresses (so routers resolve them) but must not answer
# what the userspace node under test sends them (RH2 BAs, tunnelled packets) with errors.
_QUIET_KERNEL = (
    "table ip6 conformance {\n"
    "  chain out {\n"
    "    type filter hook output priority 0; policy accept;\n"
    "    icmpv6 type { parameter-problem, destination-unreachable } drop\n"
    "  }\n"
    "}\n"
)


def fresh_home_address() -> str:
    """A home address no other case uses (so no binding state is shared)."""
    return f"2001:db8:6::{next(_hoa_counter):x}"


def global_address(bed: BedHandle, node: str, prefix: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = bed.exec(node, "ip", "-6", "addr", "show", "dev", "eth0", "scope", "global").stdout
        found = re.search(rf"inet6 ({prefix}[0-9a-f:]+)/64", out.decode())
        if found and "tentative" not in out.decode():
            return found.group(1)
        time.sleep(0.1)
    raise AssertionError(f"{node}: no SLAAC address in {prefix} within {timeout}s")


def mac_of(bed: BedHandle, node: str, address: str) -> str:
    """The MAC of the interface of `node` that carries `address`."""
    out = bed.exec(node, "ip", "-o", "-6", "addr", "show").stdout.decode()
    for line in out.splitlines():
        if f" {address}/" in line:
            ifname = line.split()[1]
            link = bed.exec(node, "ip", "-j", "link", "show", "dev", ifname).stdout
            return json.loads(link)[0]["address"]
    raise AssertionError(f"{node} has no interface with {address}")


@dataclass
class HaBed:
    """The HA under test and its two testers, with helpers that speak TAHI's packets."""

    bed: BedHandle
    tn: LinkTester  # on visited link 5a: the mobile node
    hn: LinkTester  # on the home link: a correspondent / other node on Link0
    coa: str
    router_mac: str  # ar-a on 5a: the tn's first hop
    ha_mac: str
    hn_address: str
    core_mac: str
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def socket(self) -> str:
        return agents.socket_path(self.bed.state_dir, agents.HOME_AGENT_NODE)

    def status(self) -> dict[str, Any]:
        return control_request(self.socket, {"cmd": "status"}, timeout=10)

    def binding(self, hoa: str) -> dict[str, Any] | None:
        for entry in self.status()["binding_cache"]:
            if same_address(entry["home_address"], hoa):
                return entry
        return None

    def counters(self) -> dict[str, int]:
        return self.status()["counters"]

    def bu_packet(self, hoa: str, seq: int, *, lifetime: int = 100, flags: str = "AH",
                  coa: str | None = None, mh: Packet | None = None) -> Packet:
        """BU from the tn (care-of address) with the HAO (RFC 6275 11.7.1); lifetime in
        4-second units as on the wire."""
        body = mh if mh is not None else MIP6MH_BU(seq=seq, flags=flags, mhtime=lifetime)
        return (Ether(dst=self.router_mac) / IPv6(src=coa or self.coa, dst=HA)
                / IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)]) / body)

    def send_bu(self, hoa: str, seq: int, **kw: Any) -> None:
        self.tn.send(self.bu_packet(hoa, seq, **kw))

    def expect_ba(self, hoa: str, timeout: float = 5.0) -> Packet | None:
        """The BA for `hoa`: from the HA, to the CoA, with a type 2 routing header."""
        return self.tn.expect(lambda f: (
            MIP6MH_BA in f and same_address(f[IPv6].src, HA)
            and IPv6ExtHdrRouting in f and f[IPv6ExtHdrRouting].type == 2
            and same_address(f[IPv6ExtHdrRouting].addresses[0], hoa)), timeout)

    def register(self, hoa: str, seq: int = 10, lifetime: int = 100) -> Packet:
        self.tn.drain()
        self.send_bu(hoa, seq, lifetime=lifetime)
        ba = self.expect_ba(hoa, timeout=8)
        assert ba is not None, "no BA for the registration"
        assert ba[MIP6MH_BA].status == 0, ba[MIP6MH_BA].status
        return ba


def _write_ha_config(state_dir: str, extra_toml: str = "") -> None:
    tables = agents.home_agent_config(state_dir)
    tables["home_agent"] = {**tables["home_agent"], "refused_home_addresses": [REFUSED_HOA]}
    with open(agents.config_path(state_dir, agents.HOME_AGENT_NODE), "w") as f:
        f.write(agents.render_toml(tables) + extra_toml)


@pytest.fixture(scope="module")
def ha_bed() -> Iterator[HaBed]:
    yield from ha_bed_with()


def ha_bed_with(extra_toml: str = "") -> Iterator[HaBed]:
    """The HA suite's bed; `extra_toml` is appended to ha.toml (e.g. NEMO's prefix table)."""
    for bed in _bring_up("--no-agents"):
        _write_ha_config(bed.state_dir, extra_toml)
        agents.start_agent(bed.state_dir, agents.HOME_AGENT_NODE, bed.namespace("ha"))
        agents.wait_ready(bed.state_dir, agents.HOME_AGENT_NODE)
        tn_ns = bed.add_probe("a", "tn")
        hn_ns = bed.add_probe("home", "hn")
        for ns in (tn_ns, hn_ns):
            netns.run(ns, ["nft", "-f", "-"], input=_QUIET_KERNEL.encode(), timeout=10)
        coa = global_address(bed, "tn", "2001:db8:a:")
        hn_address = global_address(bed, "hn", "2001:db8:6:")
        status = control_request(agents.socket_path(bed.state_dir, agents.HOME_AGENT_NODE),
                                 {"cmd": "status"}, timeout=10)
        tester = HaBed(
            bed=bed, tn=LinkTester(tn_ns), hn=LinkTester(hn_ns), coa=coa,
            router_mac=mac_of(bed, "ar-a", "2001:db8:a::1"),
            ha_mac=status["neighbor_discovery"]["mac"], hn_address=hn_address,
            core_mac=mac_of(bed, "core", "2001:db8:6::ffff"),
        )
        _wait_ha_ready(tester)
        try:
            yield tester
        finally:
            tester.tn.close()
            tester.hn.close()


def _wait_ha_ready(tester: HaBed, timeout: float = 15) -> None:
    """The HA's own address passed DAD and it knows its default router."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nd = tester.status()["neighbor_discovery"]
        ready = [a for a in nd.get("addresses", []) if same_address(a.get("address"), HA)
                 and a.get("state") in ("preferred", "optimistic", "valid")]
        if ready and nd.get("default_routers"):
            return
        time.sleep(0.2)
    pytest.fail(f"HA not ready: {tester.status()['neighbor_discovery']}")




# ---------------------------------------------------------------- the MN suite


@dataclass
class MnBed:
    """The guest agent under test; "ha" = a tester owning the HA's address on the home link
    (TAHI's HA0), "ta"/"tb" = testers on visited links 5a/5b (TAHI's LinkX/LinkY)."""

    bed: BedHandle
    ha: LinkTester
    ta: LinkTester
    tb: LinkTester
    core_mac: str
    home_address: str
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def socket(self) -> str:
        return agents.socket_path(self.bed.state_dir, agents.GUEST)

    def status(self) -> dict[str, Any]:
        return control_request(self.socket, {"cmd": "status"}, timeout=10)

    def bul(self) -> list[dict[str, Any]]:
        return self.status()["binding_update_list"]

    def expect_bu(self, timeout: float = 8.0, *, src_prefix: str | None = None,
                  lifetime_zero: bool | None = None) -> Packet | None:
        """The next BU from the MN to the HA (seen by the HA tester)."""
        def match(f: Packet) -> bool:
            if MIP6MH_BU not in f or not same_address(f[IPv6].dst, HA):
                return False
            if src_prefix is not None and not str(f[IPv6].src).startswith(src_prefix):
                return False
            return lifetime_zero is None or (f[MIP6MH_BU].mhtime == 0) == lifetime_zero
        return self.ha.expect(match, timeout)

    def ba_for(self, bu: Packet, status: int = 0, lifetime: int | None = None,
               seq: int | None = None) -> Packet:
        """TAHI's HA0 answer to `bu` (a type 2 routing header carries the home address)."""
        coa = bu[IPv6].src
        body = MIP6MH_BA(status=status, seq=bu[MIP6MH_BU].seq if seq is None else seq,
                         mhtime=bu[MIP6MH_BU].mhtime if lifetime is None else lifetime)
        if same_address(coa, self.home_address):  # at home: no routing header
            return Ether(dst=self.mn_mac) / IPv6(src=HA, dst=coa) / body
        return (Ether(dst=self.core_mac) / IPv6(src=HA, dst=coa)
                / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[self.home_address]) / body)

    @property
    def mn_mac(self) -> str:
        return self.status()["neighbor_discovery"]["mac"]

    def move(self, target: str) -> None:
        from provisioning import handover

        handover.reattach(self.bed.prefix, target)

    def register(self, target_prefix: str) -> Packet:
        """Answer the MN's next BU from `target_prefix` with an accepted BA."""
        bu = self.expect_bu(15, src_prefix=target_prefix)
        assert bu is not None, "no BU from the mobile node"
        self.ha.send(self.ba_for(bu))
        self.register_wait()
        return bu

    def register_wait(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e["state"] == "registered" for e in self.bul()):
                return
            time.sleep(0.1)
        raise AssertionError(f"the MN did not take the BA: {self.bul()}")


_OWN_HA_ADDRESS = (
    "table ip6 conformance_ha {\n"
    "  chain out {\n"
    "    type filter hook output priority 0; policy accept;\n"
    "    icmpv6 type { parameter-problem, destination-unreachable, echo-reply } drop\n"
    "    meta l4proto 135 drop\n"
    "  }\n"
    "}\n"
)


@pytest.fixture(scope="module")
def mn_bed() -> Iterator[MnBed]:
    for bed in _bring_up("--no-agents"):
        ha_ns = bed.add_probe("home", "tha")
        # the tester owns the HA's address, so core delivers the MN's BUs to it
        netns.run(ha_ns, ["ip", "-6", "addr", "add", f"{HA}/64", "dev", "eth0", "nodad"],
                  timeout=10)
        netns.run(ha_ns, ["nft", "-f", "-"], input=_QUIET_KERNEL.encode(), timeout=10)
        netns.run(ha_ns, ["nft", "-f", "-"], input=_OWN_HA_ADDRESS.encode(), timeout=10)
        ta_ns = bed.add_probe("a", "ta")
        tb_ns = bed.add_probe("b", "tb")
        testers = [LinkTester(ns) for ns in (ha_ns, ta_ns, tb_ns)]
        agents.start_agent(bed.state_dir, agents.GUEST, bed.namespace("guest"))
        agents.wait_ready(bed.state_dir, agents.GUEST)
        # the workstation behind the terminal answers what arrives for the home address
        # (a new inbound flow goes to the host's IPv4 side, translated: step 511)
        host.configure(bed.state_dir, bed.namespace("host"), agents.TranslationOptions())
        tester = MnBed(bed=bed, ha=testers[0], ta=testers[1], tb=testers[2],
                       core_mac=mac_of(bed, "core", "2001:db8:6::ffff"),
                       home_address=str(HOME_ADDRESS))
        try:
            yield tester
        finally:
            for t in testers:
                t.close()

