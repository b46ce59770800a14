"""NEMO home agent conformance (RFC 3963), on the HA suite's bed with a prefix table.

No TAHI NEMO package was available here: cases are derived from RFC 3963 and named
`rfc3963/<clause>-…`. The tester "tn" on visited link 5a plays the mobile router (BUs with
the R flag, Mobile Network Prefix options, the reverse tunnel), "hn" on the home link a
correspondent sending to the mobile network (the HA is its router for the prefixes here).
Skipped with the reason when the build has no NEMO (netstack.mobility.prefix_table).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from ipaddress import IPv6Address, IPv6Network

import pytest
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether

from netstack.wire.ipv6 import parse_ipv6_packet
from netstack.wire.mh import BindingAck, BindingUpdate, MobileNetworkPrefix
from netstack.wire.mh_codec import build_mobility_packet
from tests.conformance.catalogue import case
from tests.conformance.cn_bed import decode
from tests.conformance.conftest import HA, HaBed, fresh_home_address, ha_bed_with
from tests.conformance.tester import same_address

pytestmark = pytest.mark.netns

NEMO_IN_BUILD = importlib.util.find_spec("netstack.mobility.prefix_table") is not None
NOT_IN_BUILD = "feature not in this build (NEMO, issue 11)"
QUIET = 2.0

# Mobile routers of the prefix table: one per case, so cases share the bed.
ROUTERS = {
    "explicit": ("2001:db8:6::e001", "2001:db8:77::/64"),
    "implicit": ("2001:db8:6::e002", "2001:db8:78::/64"),
    "forward": ("2001:db8:6::e003", "2001:db8:79::/64"),
    "reverse": ("2001:db8:6::e004", "2001:db8:7a::/64"),
    "dereg": ("2001:db8:6::e005", "2001:db8:7b::/64"),
    "refused": ("2001:db8:6::e006", "2001:db8:7c::/64"),
}
UNLISTED = "2001:db8:6::e007"  # a home address with no prefix in the table

_NEMO_TOML = "\n[nemo]\nallow_mobile_routers = true\nmobile_routers = [\n" + "".join(
    f'  {{ home_address = "{hoa}", prefixes = ["{prefix}"] }},\n'
    for hoa, prefix in ROUTERS.values()) + "]\n"


@pytest.fixture(scope="module")
def nemo_bed() -> Iterator[HaBed]:
    if not NEMO_IN_BUILD:
        pytest.skip(NOT_IN_BUILD)
    yield from ha_bed_with(_NEMO_TOML)


def _send_bu(bed: HaBed, hoa: str, seq: int, *, lifetime: int = 400, router: bool = True,
             home: bool = True, prefixes: tuple[str, ...] = ()) -> None:
    """BU from the tn (care-of address, HAO) built by our codec (scapy has no NEMO BU)."""
    message = BindingUpdate(sequence=seq, lifetime=lifetime, ack=True, home_registration=home,
                            mobile_router=router,
                            options=tuple(MobileNetworkPrefix(IPv6Network(p)) for p in prefixes))
    packet = build_mobility_packet(IPv6Address(bed.coa), IPv6Address(HA), message,
                                   home_address=IPv6Address(hoa))
    bed.tn.send(bytes(Ether(dst=bed.router_mac, src=bed.tn.mac, type=0x86DD)) + packet)


def _ba(bed: HaBed, hoa: str, timeout: float = 8.0) -> BindingAck | None:
    found: list[BindingAck] = []

    def match(frame) -> bool:
        got = decode(frame)
        if got is None or not isinstance(got[1], BindingAck):
            return False
        parsed, ba = got
        if parsed.src != IPv6Address(HA) or parsed.routing_type2 != IPv6Address(hoa):
            return False
        found.append(ba)
        return True

    return found[0] if bed.tn.expect(match, timeout) is not None else None


def _register(bed: HaBed, hoa: str, seq: int = 1, **kw) -> BindingAck:
    bed.tn.drain()
    _send_bu(bed, hoa, seq, **kw)
    ba = _ba(bed, hoa)
    assert ba is not None, "no BA"
    return ba


def _tunnelled_to_router(bed: HaBed, inner_dst: str, timeout: float) -> bool:
    """Does the tn receive an IPv6-in-IPv6 packet from the HA whose inner destination is
    `inner_dst` (RFC 3963 6.4: the HA tunnels the mobile network's packets to the CoA)?"""
    def match(frame) -> bool:
        outer = parse_ipv6_packet(bytes(frame)[14:])
        if outer.upper_protocol != 41 or outer.src != IPv6Address(HA):
            return False
        return parse_ipv6_packet(outer.payload).dst == IPv6Address(inner_dst)
    return bed.tn.expect(match, timeout) is not None


def _send_to_mobile_network(bed: HaBed, dst: str, ident: int) -> None:
    bed.hn.send(Ether(dst=bed.ha_mac) / IPv6(src=bed.hn_address, dst=dst)
                / ICMPv6EchoRequest(id=ident, seq=1))


# ---------------------------------------------------------------- registration (6.1, 6.2)


@case("rfc3963/6.1-R-flag", "RFC 3963 6.1, 6.2", "NEMO-1", "BU with R=1 accepted, BA with R=1")
def test_mobile_router_registration_gets_ba_with_r(nemo_bed: HaBed) -> None:
    hoa, prefix = ROUTERS["explicit"]
    ba = _register(nemo_bed, hoa, prefixes=(prefix,))
    assert ba.status == 0 and ba.mobile_router, ba


@case("rfc3963/6.1-explicit", "RFC 3963 6.1.2", "NEMO-1",
      "Explicit mode: Mobile Network Prefix options")
def test_explicit_mode_registers_the_listed_prefix(nemo_bed: HaBed) -> None:
    hoa, prefix = ROUTERS["explicit"]
    ba = _register(nemo_bed, hoa, seq=2, prefixes=(prefix,))
    assert ba.status == 0
    entry = nemo_bed.binding(hoa)
    assert entry is not None and [IPv6Network(p) for p in entry["prefixes"]] == [
        IPv6Network(prefix)]


@case("rfc3963/6.1-implicit", "RFC 3963 6.1.1", "NEMO-1",
      "Implicit mode: prefixes from configuration")
def test_implicit_mode_uses_the_configured_prefixes(nemo_bed: HaBed) -> None:
    hoa, prefix = ROUTERS["implicit"]
    ba = _register(nemo_bed, hoa)
    assert ba.status == 0 and ba.mobile_router
    entry = nemo_bed.binding(hoa)
    assert entry is not None and [IPv6Network(p) for p in entry["prefixes"]] == [
        IPv6Network(prefix)]


@case("rfc3963/6.2-140", "RFC 3963 6.6", "NEMO-1", "Mobile router operation not permitted (140)")
def test_r_flag_without_home_registration_gets_140(nemo_bed: HaBed) -> None:
    hoa = fresh_home_address()
    ba = _register(nemo_bed, hoa, home=False)
    assert ba.status == 140
    assert nemo_bed.binding(hoa) is None


@case("rfc3963/6.2-141", "RFC 3963 6.6", "NEMO-1", "Invalid prefix (141)")
def test_link_local_prefix_gets_141(nemo_bed: HaBed) -> None:
    hoa, _ = ROUTERS["refused"]
    ba = _register(nemo_bed, hoa, seq=10, prefixes=("fe80::/64",))
    assert ba.status == 141
    assert nemo_bed.binding(hoa) is None


@case("rfc3963/6.2-142", "RFC 3963 6.6", "NEMO-1", "Not authorized for prefix (142)")
def test_unlisted_prefix_gets_142(nemo_bed: HaBed) -> None:
    hoa, _ = ROUTERS["refused"]
    ba = _register(nemo_bed, hoa, seq=11, prefixes=("2001:db8:99::/64",))
    assert ba.status == 142
    assert nemo_bed.binding(hoa) is None


@case("rfc3963/6.2-143", "RFC 3963 6.6", "NEMO-1", "Forwarding setup failed (143)")
def test_implicit_mode_without_configured_prefix_gets_143(nemo_bed: HaBed) -> None:
    ba = _register(nemo_bed, UNLISTED)
    assert ba.status == 143
    assert nemo_bed.binding(UNLISTED) is None


@case("rfc3963/6.2-139", "RFC 3963 6.2", "NEMO-1",
      "Registration type change disallowed (139): host binding, then R=1")
def test_type_change_gets_139(nemo_bed: HaBed) -> None:
    hoa = fresh_home_address()
    assert _register(nemo_bed, hoa, seq=1, router=False).status == 0
    ba = _register(nemo_bed, hoa, seq=2)
    assert ba.status == 139
    assert nemo_bed.binding(hoa)["sequence"] == 1


# ---------------------------------------------------------------- forwarding (6.4), de-registration


@case("rfc3963/6.4-forward", "RFC 3963 6.4", "NEMO-1",
      "Packets to the mobile network tunnelled to the MR")
def test_packets_to_the_prefix_are_tunnelled_to_the_router(nemo_bed: HaBed) -> None:
    hoa, prefix = ROUTERS["forward"]
    assert _register(nemo_bed, hoa, prefixes=(prefix,)).status == 0
    node = str(IPv6Network(prefix).network_address + 0x55)
    nemo_bed.tn.drain()
    _send_to_mobile_network(nemo_bed, node, 0x4E01)
    assert _tunnelled_to_router(nemo_bed, node, timeout=5)


@case("rfc3963/6.4-reverse", "RFC 3963 6.4", "NEMO-1",
      "Reverse tunnel from a mobile network node")
def test_reverse_tunnel_from_the_mobile_network(nemo_bed: HaBed) -> None:
    hoa, prefix = ROUTERS["reverse"]
    assert _register(nemo_bed, hoa, prefixes=(prefix,)).status == 0
    node = str(IPv6Network(prefix).network_address + 0x66)
    nemo_bed.hn.drain()
    nemo_bed.tn.send(Ether(dst=nemo_bed.router_mac) / IPv6(src=nemo_bed.coa, dst=HA)
                     / IPv6(src=node, dst=nemo_bed.hn_address)
                     / ICMPv6EchoRequest(id=0x4E02, seq=1))
    got = nemo_bed.hn.expect(lambda f: ICMPv6EchoRequest in f and f[ICMPv6EchoRequest].id == 0x4E02
                             and same_address(f[IPv6].src, node), 5)
    assert got is not None, "the HA did not forward the mobile network node's packet"
    # from a prefix the router did not register: dropped (RFC 3963 6.4 source check)
    stranger = "2001:db8:99::66"
    nemo_bed.tn.send(Ether(dst=nemo_bed.router_mac) / IPv6(src=nemo_bed.coa, dst=HA)
                     / IPv6(src=stranger, dst=nemo_bed.hn_address)
                     / ICMPv6EchoRequest(id=0x4E03, seq=1))
    assert nemo_bed.hn.expect(lambda f: ICMPv6EchoRequest in f
                              and f[ICMPv6EchoRequest].id == 0x4E03, QUIET) is None


@case("rfc3963/6.3-dereg", "RFC 3963 6.3", "NEMO-1", "De-registration removes the prefix routes")
def test_deregistration_removes_prefix_routes(nemo_bed: HaBed) -> None:
    hoa, prefix = ROUTERS["dereg"]
    assert _register(nemo_bed, hoa, seq=1, prefixes=(prefix,)).status == 0
    ba = _register(nemo_bed, hoa, seq=2, lifetime=0, prefixes=(prefix,))
    assert ba.status == 0 and ba.lifetime == 0
    assert nemo_bed.binding(hoa) is None
    node = str(IPv6Network(prefix).network_address + 0x77)
    nemo_bed.tn.drain()
    _send_to_mobile_network(nemo_bed, node, 0x4E04)
    assert not _tunnelled_to_router(nemo_bed, node, timeout=QUIET)
