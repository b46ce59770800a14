"""Nested mobility at the HA (network/home_agent/nesting.py): two tunnel layers, two ESP
processors (claims 21-25), without sockets."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6

from netstack.ipsec.keys import build_processor, load_key_file
from netstack.ipsec.processor import SecurityProcessor
from netstack.mobility.home_agent import HomeAgent
from netstack.mobility.prefix_table import PrefixTable
from netstack.wire.ip6ip6 import Encapsulator
from netstack.wire.mh import BindingUpdate, MobileNetworkPrefix
from network.home_agent.forwarding import HomeAgentDataPlane
from network.home_agent.ipsec import TUNNELLED, HomeAgentIpsecSection
from network.home_agent.nesting import NestedTunnels, SecurityLayers
from provisioning import nemo
from provisioning.nodes import ipsec as ipsec_keys

HOME = IPv6Network("2001:db8:6::/64")
HA = IPv6Address("2001:db8:6::1")
MR = IPv6Address("2001:db8:6::1000")
VMN = IPv6Address("2001:db8:6::2000")
MR_COA = IPv6Address("2001:db8:b::10")
VMN_COA = IPv6Address("2001:db8:6:100::77")
MNP = IPv6Network("2001:db8:6:100::/64")
CN = "2001:db8:8::1001"


def bound_home_agent() -> HomeAgent:
    ha = HomeAgent(HA, home_prefix=HOME, prefix_table=PrefixTable({MR: [MNP]}, home_prefix=HOME))
    for hoa, coa, bu in (
        (MR, MR_COA, BindingUpdate(sequence=1, lifetime=400, ack=True, home_registration=True,
                                   mobile_router=True, options=(MobileNetworkPrefix(MNP),))),
        (VMN, VMN_COA, BindingUpdate(sequence=1, lifetime=400, ack=True, home_registration=True)),
    ):
        ha.receive_binding_update(coa, hoa, bu, 0.0)
        ha.dad_result(hoa, False, 0.0)
    return ha


def tunnels(security: SecurityLayers, ha: HomeAgent, mtu: int = 1500
            ) -> tuple[NestedTunnels, Counter[str], list[tuple[bytes, int]]]:
    counters: Counter[str] = Counter()
    plane = HomeAgentDataPlane(HA.packed, b"\x02" * 6, counters, ha.lookup, link_mtu=mtu)
    too_big: list[tuple[bytes, int]] = []
    nested = NestedTunnels(plane, ha.lookup, security, counters,
                           lambda packet, _now, overhead: too_big.append((bytes(packet), overhead)))
    return nested, counters, too_big


def packet_for(dst: IPv6Address, size: int = 100) -> memoryview:
    return memoryview(bytes(IPv6(src=CN, dst=str(dst), hlim=60) / UDP(dport=9) / (b"p" * size)))


def test_a_node_behind_a_mobile_router_is_encapsulated_twice() -> None:
    ha = bound_home_agent()
    nested, counters, _ = tunnels(SecurityLayers(HomeAgentIpsecSection(), address=HA), ha)
    out, outer_coa = nested.encapsulate(packet_for(VMN), ha.lookup(VMN.packed), 0.0)
    assert out is not None and outer_coa == MR_COA.packed
    outer = IPv6(out)
    middle = outer.payload
    inner = middle.payload
    assert (outer.src, outer.dst, outer.nh) == (str(HA), str(MR_COA), 41)
    assert (middle.src, middle.dst, middle.nh) == (str(HA), str(VMN_COA), 41)
    assert (inner.src, inner.dst, inner.hlim) == (CN, str(VMN), 59)
    assert counters["tx_nested_tunnelled"] == 1
    # the mobile router's own home address: one layer
    out, outer_coa = nested.encapsulate(packet_for(MR), MR_COA.packed, 0.0)
    assert outer_coa == MR_COA.packed and IPv6(out).payload.nh != 41


def test_nested_packet_too_big_goes_to_the_original_source_with_both_overheads() -> None:
    ha = bound_home_agent()
    nested, _counters, too_big = tunnels(SecurityLayers(HomeAgentIpsecSection(), address=HA), ha)
    packet = packet_for(VMN, size=1500 - 40 - 8 - 40 - 20)  # fits one layer, not two
    out, _ = nested.encapsulate(packet, VMN_COA.packed, 0.0)
    assert out is None
    ((original, overhead),) = too_big
    assert original == bytes(packet) and overhead == 80


def _write(path: Path, config: dict) -> Path:
    ipsec_keys.write_key_file(str(path), config)
    return path


@pytest.fixture
def two_processors(tmp_path: Path) -> tuple[SecurityLayers, tuple[SecurityProcessor, SecurityProcessor]]:
    """The HA's layers (MR keys + vmn keys in a second file) and the two far ends."""
    options = ipsec_keys.IpsecOptions(tunnel=ipsec_keys.TUNNEL_ESP)
    guest, ha = ipsec_keys.mobility_key_configs(options)
    vmn, ha_vmn = (nemo._for_vmn(c) for c in ipsec_keys.mobility_key_configs(
        options, home_address=VMN))
    nemo._pin_tunnel_policies(ha, MR)
    nemo._pin_tunnel_policies(ha_vmn, VMN)
    section = HomeAgentIpsecSection(tunnel="esp-tunnel", key_file=_write(tmp_path / "ha", ha),
                                    nested_key_file=_write(tmp_path / "hn", ha_vmn))
    layers = SecurityLayers(section, address=HA)
    return layers, (_far_end(tmp_path / "mr", guest, MR, MR_COA),
                    _far_end(tmp_path / "vmn", vmn, VMN, VMN_COA))


def _far_end(path: Path, config: dict, hoa: IPv6Address, coa: IPv6Address) -> SecurityProcessor:
    """The mobile router's / vmn's own processor, its tunnel SAs moved to its CoA."""
    processor = build_processor("far", load_key_file(_write(path, config)))
    for sa in processor.sad:
        sa.src = coa if sa.src == hoa else sa.src
        sa.dst = coa if sa.dst == hoa else sa.dst
    return processor


def test_two_independent_processors_seal_one_layer_each(
    two_processors: tuple[SecurityLayers, tuple[SecurityProcessor, SecurityProcessor]]
) -> None:
    layers, _far = two_processors
    assert [p.name for p in layers.processors] == ["mobility", "mobility-nested"]
    ha = bound_home_agent()
    for hoa, coa in ((MR, MR_COA), (VMN, VMN_COA)):
        layers.binding_updated(hoa, coa)
    nested, counters, _ = tunnels(layers, ha)
    out, _ = nested.encapsulate(packet_for(VMN), VMN_COA.packed, 0.0)
    assert out is not None
    outer = IPv6(out)
    assert (outer.dst, outer.nh) == (str(MR_COA), 50)
    primary, second = layers.processors
    assert primary.counters["out_protected"] == 1 and second.counters["out_protected"] == 1
    assert counters["tx_nested_tunnelled"] == 1


def test_inbound_esp_goes_to_the_processor_that_knows_its_spi(
    two_processors: tuple[SecurityLayers, tuple[SecurityProcessor, SecurityProcessor]]
) -> None:
    layers, (mr_end, vmn_end) = two_processors
    for hoa, coa in ((MR, MR_COA), (VMN, VMN_COA)):
        layers.binding_updated(hoa, coa)
    # vmn -> HA: its tunnel packet sealed with vmn's SA (what vmn sends), then the MR's layer.
    inner = bytes(IPv6(src=str(VMN), dst=CN) / UDP(dport=9) / b"up")
    vmn_tunnel = bytes(Encapsulator(VMN_COA.packed, HA.packed).encapsulate(inner))
    sealed_inner = vmn_end.outbound(vmn_tunnel, 0.0)
    assert sealed_inner is not None
    mr_tunnel = bytes(Encapsulator(MR_COA.packed, HA.packed).encapsulate(sealed_inner))
    sealed_outer = mr_end.outbound(mr_tunnel, 0.0)
    kind, plain = layers.receive_esp(sealed_outer, 0.0)
    assert kind == TUNNELLED and plain[40:] == sealed_inner
    kind, plain = layers.receive_esp(plain[40:], 0.0)
    assert kind == TUNNELLED and plain[40:] == inner
    primary, second = layers.processors
    assert primary.counters["in_decrypted"] == 1 and second.counters["in_decrypted"] == 1
