"""Home agent IPsec on BU/BA (RFC 3776 / RFC 4877, RFC 6275 10.3.1 "MUST be protected").

The bed with `--ipsec signalling` and only the home agent: BUs must come in ESP transport
mode (HAO outside ESP, as the MN's own code sends them). The tester seals with the MN's key
file through our ESP engine (the engine itself is checked against RFC vectors and tshark in
tests/unit/test_ipsec_kat.py and tests/netns/test_ipsec.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from ipaddress import IPv6Address
from pathlib import Path

import pytest
from scapy.layers.inet6 import IPv6, IPv6ExtHdrRouting
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import Ether

from netstack.ipsec.keys import build_processor, load_key_file
from netstack.ipsec.mobility_config import MobilityLayerSecurity
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.runtime.control import control_request
from netstack.wire.mh import BindingUpdate
from provisioning import netns
from provisioning.nodes import agents
from provisioning.nodes.ipsec import GUEST_MOBILITY_KEYS
from provisioning.topology import HOME_ADDRESS
from tests.conformance.catalogue import case
from tests.conformance.conftest import _QUIET_KERNEL, HA, global_address, mac_of
from tests.conformance.tester import LinkTester, same_address
from tests.netns.conftest import BedHandle, _bring_up

pytestmark = pytest.mark.netns

HOA = str(HOME_ADDRESS)


class _Sealer:
    """The MN's side of the signalling SAs, for the tester."""

    def __init__(self, key_file: Path) -> None:
        from network.home_agent.ipsec import HomeAgentIpsecSection

        section = HomeAgentIpsecSection(signalling=True, key_file=key_file)
        self.security = MobilityLayerSecurity(
            section, processor=build_processor("tester", load_key_file(key_file)))

    def bu(self, coa: str, seq: int) -> bytes:
        message = OutgoingMobilityMessage(IPv6Address(coa), IPv6Address(HA),
                                          BindingUpdate(sequence=seq, lifetime=100),
                                          home_address=IPv6Address(HOA))
        packet = self.security.seal_mobility_message(message, time.monotonic())
        assert packet is not None
        return packet


@pytest.fixture(scope="module")
def ipsec_bed() -> Iterator[tuple[BedHandle, LinkTester, str, str, _Sealer]]:
    for bed in _bring_up("--no-agents", "--ipsec", "signalling"):
        agents.start_agent(bed.state_dir, agents.HOME_AGENT_NODE, bed.namespace("ha"))
        agents.wait_ready(bed.state_dir, agents.HOME_AGENT_NODE)
        tn_ns = bed.add_probe("a", "tn")
        netns.run(tn_ns, ["nft", "-f", "-"], input=_QUIET_KERNEL.encode(), timeout=10)
        coa = global_address(bed, "tn", "2001:db8:a:")
        tester = LinkTester(tn_ns)
        sealer = _Sealer(Path(bed.state_dir) / GUEST_MOBILITY_KEYS)
        _wait_ready(bed)
        try:
            yield bed, tester, coa, mac_of(bed, "ar-a", "2001:db8:a::1"), sealer
        finally:
            tester.close()


def _wait_ready(bed: BedHandle, timeout: float = 15) -> None:
    """The HA's address passed DAD and it has a default router (as in the HA suite)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nd = _ha_status(bed)["neighbor_discovery"]
        if nd.get("default_routers") and any(
                same_address(a["address"], HA) and a["state"] == "preferred"
                for a in nd["addresses"]):
            return
        time.sleep(0.2)
    pytest.fail("HA not ready")


def _ha_status(bed: BedHandle) -> dict:
    return control_request(agents.socket_path(bed.state_dir, agents.HOME_AGENT_NODE),
                           {"cmd": "status"}, timeout=10)


def _ba_frame(tester: LinkTester, timeout: float = 8):
    return tester.expect(lambda f: same_address(f[IPv6].src, HA) and IPv6ExtHdrRouting in f
                         and same_address(f[IPv6ExtHdrRouting].addresses[0], HOA), timeout)


@case("rfc3776/4.1-protected-BU", "10.3.1; RFC 3776 4.1", "HA-8",
      "ESP-protected BU accepted, BA protected with ESP")
def test_protected_bu_gets_protected_ba(ipsec_bed) -> None:
    bed, tester, coa, router_mac, sealer = ipsec_bed
    tester.drain()
    tester.send(Ether(dst=router_mac, type=0x86DD) / sealer.bu(coa, 100))
    ba = _ba_frame(tester)
    assert ba is not None, "no BA for the protected BU"
    assert ESP in ba or ba[IPv6ExtHdrRouting].nh == 50, "the BA is not in ESP"
    cache = _ha_status(bed)["binding_cache"]
    assert [(b["home_address"], b["care_of_address"]) for b in cache] == [(HOA, coa)]


@case("rfc3776/4.1-unprotected-BU", "10.3.1; RFC 3776 4.1", "HA-8",
      "Unprotected BU silently discarded when protection is required")
def test_unprotected_bu_is_discarded(ipsec_bed) -> None:
    from scapy.layers.inet6 import HAO, MIP6MH_BU, IPv6ExtHdrDestOpt

    bed, tester, coa, router_mac, _ = ipsec_bed
    before = _ha_status(bed)["counters"].get("bu_unprotected_dropped", 0)
    tester.drain()
    tester.send(Ether(dst=router_mac) / IPv6(src=coa, dst=HA)
                / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)]) / MIP6MH_BU(seq=200, flags="AH", mhtime=100))
    assert _ba_frame(tester, 2.0) is None
    after = _ha_status(bed)["counters"].get("bu_unprotected_dropped", 0)
    assert after == before + 1


@case("rfc4303/3.4.4-bad-ICV", "RFC 4303 3.4.4", "HA-8", "BU with a bad ICV is discarded")
def test_bu_with_bad_icv_is_discarded(ipsec_bed) -> None:
    bed, tester, coa, router_mac, sealer = ipsec_bed
    packet = bytearray(sealer.bu(coa, 300))
    packet[-1] ^= 0xFF  # the last octet of the ICV
    tester.drain()
    tester.send(Ether(dst=router_mac, type=0x86DD) / bytes(packet))
    assert _ba_frame(tester, 2.0) is None
    assert _ha_status(bed)["ipsec"]["counters"].get("in_icv_failure", 0) >= 1


@case("rfc4303/3.4.3-replay", "RFC 4303 3.4.3", "HA-8", "Replayed protected BU is discarded")
def test_replayed_protected_bu_is_discarded(ipsec_bed) -> None:
    bed, tester, coa, router_mac, sealer = ipsec_bed
    packet = sealer.bu(coa, 400)
    tester.drain()
    tester.send(Ether(dst=router_mac, type=0x86DD) / packet)
    assert _ba_frame(tester) is not None
    tester.drain()
    tester.send(Ether(dst=router_mac, type=0x86DD) / packet)  # the same ESP sequence number again
    assert _ba_frame(tester, 2.0) is None
    counters = _ha_status(bed)["ipsec"]["counters"]
    assert any("replay" in key and value >= 1 for key, value in counters.items()), counters
