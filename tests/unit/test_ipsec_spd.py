"""SPD selectors (incl. Mobility Header type), lookup scaling, SAD, SecurityProcessor."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Address, IPv6Network

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import HAO, MIP6MH_BA, MIP6MH_BU, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting
from scapy.packet import Raw

from netstack.ipsec import spd as spd_module
from netstack.ipsec.processor import SecurityProcessor
from netstack.ipsec.sa import SecurityAssociation
from netstack.ipsec.sad import SecurityAssociationDatabase
from netstack.ipsec.spd import (
    BYPASS,
    DISCARD,
    INBOUND,
    OUTBOUND,
    PROTECT,
    Policy,
    SecurityPolicyDatabase,
    Selector,
)
from netstack.ipsec.transforms import AES_GCM_16, NULL_HMAC_SHA256

HOA = IPv6Address("2001:db8:6::1000")
HA = IPv6Address("2001:db8:6::1")
COA = IPv6Address("2001:db8:a::10")
CN = IPv6Address("2001:db8:8::1001")


def key(src: IPv6Address, dst: IPv6Address, proto: int, sport=None, dport=None, mh_type=None):
    return (src.packed, dst.packed, proto, sport, dport, mh_type)


def net(a: IPv6Address) -> IPv6Network:
    return IPv6Network(f"{a}/128")


def test_selector_fields() -> None:
    bu_only = Selector(src=net(HOA), dst=net(HA), mh_type=5)
    assert bu_only.protocol == 135
    assert bu_only.matches(key(HOA, HA, 135, mh_type=5))
    assert not bu_only.matches(key(HOA, HA, 135, mh_type=6))
    assert not bu_only.matches(key(HA, HOA, 135, mh_type=5))
    assert not bu_only.matches(key(HOA, HA, 17))
    sip = Selector(dst=IPv6Network("2001:db8:8::/48"), protocol=17, dst_ports=(5060, 5061))
    assert sip.matches(key(HOA, CN, 17, 40000, 5061))
    assert not sip.matches(key(HOA, CN, 17, 40000, 5062))
    assert not sip.matches(key(HOA, CN, 6, 40000, 5060))
    assert not sip.matches(key(HOA, HA, 17, 40000, 5060))
    anything = Selector()
    assert anything.matches(key(HOA, CN, 58))
    assert not anything.matches((b"\xc0\x00\x02\x01", b"\xc0\x00\x02\x02", 17, 1, 2, None))
    v4 = Selector(src=IPv4Network("192.0.2.0/24"), dst=IPv4Network("0.0.0.0/0"))
    assert v4.matches((b"\xc0\x00\x02\x01", b"\x08\x08\x08\x08", 17, 1, 2, None))
    with pytest.raises(ValueError):
        Selector(protocol=17, mh_type=5)


def test_priority_then_insertion_order_and_cache() -> None:
    spd = SecurityPolicyDatabase()
    spd.add(Policy("all-bypass", OUTBOUND, BYPASS, priority=1000))
    spd.add(Policy("mh-discard", OUTBOUND, DISCARD, Selector(protocol=135), priority=50))
    spd.add(Policy("bu-protect", OUTBOUND, PROTECT, Selector(mh_type=5), sa="x", priority=50))
    spd.add(Policy("bu-first", OUTBOUND, PROTECT, Selector(mh_type=5), sa="y", priority=10))
    assert spd.lookup(OUTBOUND, key(HOA, HA, 135, mh_type=5)).name == "bu-first"
    assert spd.lookup(OUTBOUND, key(HOA, HA, 135, mh_type=6)).name == "mh-discard"
    assert spd.lookup(OUTBOUND, key(HOA, HA, 17, 1, 2)).name == "all-bypass"
    assert spd.lookup(INBOUND, key(HOA, HA, 17, 1, 2)) is None
    hits = spd.cache_hits
    assert spd.lookup(OUTBOUND, key(HOA, HA, 17, 1, 2)).name == "all-bypass"
    assert spd.cache_hits == hits + 1
    spd.remove("bu-first")  # change clears the cache
    # same priority: the policy added first wins (RFC 4301 ordered SPD)
    assert spd.lookup(OUTBOUND, key(HOA, HA, 135, mh_type=5)).name == "mh-discard"
    assert [p.name for p in spd] == ["mh-discard", "bu-protect", "all-bypass"]


def test_lookup_does_not_scan_other_protocols(monkeypatch: pytest.MonkeyPatch) -> None:
    spd = SecurityPolicyDatabase()
    for i in range(5000):
        dst = IPv6Network(f"2001:db8:{i:x}::/48")
        spd.add(Policy(f"udp-{i}", OUTBOUND, BYPASS, Selector(dst=dst, protocol=17)))
    spd.add(Policy("tcp", OUTBOUND, DISCARD, Selector(protocol=6)))
    calls = 0
    original = spd_module.Selector.matches

    def counting(self: Selector, k: tuple) -> bool:
        nonlocal calls
        calls += 1
        return original(self, k)

    monkeypatch.setattr(spd_module.Selector, "matches", counting)
    assert spd.lookup(OUTBOUND, key(HOA, CN, 6, 1, 80)).name == "tcp"
    assert calls == 1
    for _ in range(100):
        spd.lookup(OUTBOUND, key(HOA, CN, 6, 1, 80))
    assert calls == 1  # served from the flow cache


def test_sad() -> None:
    sad = SecurityAssociationDatabase()
    a = SecurityAssociation(spi=0x500, algorithm=AES_GCM_16, key=bytes(20), name="in-a")
    sad.add(a, INBOUND)
    assert sad.inbound(0x500) is a and sad.get("in-a") is a
    with pytest.raises(ValueError):
        sad.add(SecurityAssociation(spi=0x500, algorithm=AES_GCM_16, key=bytes(20), name="b"), INBOUND)
    out = SecurityAssociation(spi=0x500, algorithm=AES_GCM_16, key=bytes(20), name="out-a")
    sad.add(out, OUTBOUND)  # outbound SPIs are the peer's business
    assert sad.inbound(0x500) is a
    sad.remove("in-a")
    assert sad.inbound(0x500) is None and len(sad) == 1


# -- processors: MN and HA with RFC 3776-style policies (BU/BA protected) -------------------


def _sa(spi: int, name: str, mode: str = "transport", src=COA, dst=HA, algorithm=AES_GCM_16):
    material = {"key": bytes([spi & 0xFF]) * 20} if algorithm == AES_GCM_16 else {"auth_key": bytes(32)}
    return SecurityAssociation(spi=spi, algorithm=algorithm, mode=mode, src=src, dst=dst, name=name, **material)


def _mn_ha() -> tuple[SecurityProcessor, SecurityProcessor]:
    mn, ha = SecurityProcessor("mn-mobility"), SecurityProcessor("ha-mobility")
    mn.sad.add(_sa(0x1001, "mn-to-ha"), OUTBOUND)
    mn.sad.add(_sa(0x1002, "ha-to-mn"), INBOUND)
    ha.sad.add(_sa(0x1001, "mn-to-ha"), INBOUND)
    ha.sad.add(_sa(0x1002, "ha-to-mn"), OUTBOUND)
    for proc, out_sa, in_sa, me, peer in ((mn, "mn-to-ha", "ha-to-mn", HOA, HA), (ha, "ha-to-mn", "mn-to-ha", HA, HOA)):
        bu, ba = (5, 6) if proc is mn else (6, 5)
        proc.spd.add(Policy("sig-out", OUTBOUND, PROTECT, Selector(src=net(me), dst=net(peer), mh_type=bu), sa=out_sa))
        proc.spd.add(Policy("sig-in", INBOUND, PROTECT, Selector(src=net(peer), dst=net(me), mh_type=ba), sa=in_sa))
        proc.spd.add(Policy("rest-out", OUTBOUND, BYPASS, priority=1000))
        proc.spd.add(Policy("rest-in", INBOUND, BYPASS, priority=1000))
    return mn, ha


def _bu() -> bytes:
    return bytes(IPv6(src=str(COA), dst=str(HA)) / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(HOA))]) / MIP6MH_BU(seq=1, flags="AH", mhtime=100))


def _ba() -> bytes:
    return bytes(IPv6(src=str(HA), dst=str(COA)) / IPv6ExtHdrRouting(type=2, addresses=[str(HOA)], segleft=1) / MIP6MH_BA(seq=1, mhtime=100))


def test_binding_update_protected_end_to_end() -> None:
    mn, ha = _mn_ha()
    protected = mn.outbound(_bu(), now=0.0)
    assert protected is not None and protected != _bu()
    assert IPv6(protected)[HAO].hoa == str(HOA)  # HAO visible outside ESP
    assert ha.inbound(protected, now=0.0) == _bu()
    ba = ha.outbound(_ba(), now=0.0)
    assert ba is not None and mn.inbound(ba, now=0.0) == _ba()
    assert mn.counters["out_protected"] == 1 and mn.counters["in_decrypted"] == 1
    assert ha.counters["in_decrypted"] == 1
    # replayed BU
    assert ha.inbound(protected, now=0.0) is None
    assert ha.counters["in_replayed"] == 1
    status = ha.as_dict(0.0)
    assert status["name"] == "ha-mobility" and status["counters"]["in_replayed"] == 1
    assert {s["name"] for s in status["sas"]} == {"mn-to-ha", "ha-to-mn"}


def test_unprotected_bu_refused_other_traffic_bypassed() -> None:
    _mn, ha = _mn_ha()
    assert ha.inbound(_bu(), now=0.0) is None
    assert ha.counters["in_unprotected"] == 1
    udp = bytes(IPv6(src=str(CN), dst=str(HA)) / UDP(sport=1, dport=2))
    assert ha.inbound(udp, now=0.0) == udp
    assert ha.counters["in_bypassed"] == 1


def test_policy_violation_when_sa_does_not_match_selector() -> None:
    mn, ha = _mn_ha()
    # A UDP packet sent on the BU SA: authentic, but the inbound policy for UDP is bypass,
    # not "protect with mn-to-ha" (RFC 4301 5.2 step 4).
    from netstack.ipsec.modes import transport_protect

    udp = bytes(IPv6(src=str(HOA), dst=str(HA)) / UDP(sport=1, dport=2) / Raw(b"sneaky"))
    packet = transport_protect(mn.sad.get("mn-to-ha"), udp, 0.0)
    assert ha.inbound(packet, now=0.0) is None
    assert ha.counters["in_policy_violation"] == 1


def test_unknown_spi_and_default_discard() -> None:
    _mn, ha = _mn_ha()
    stray = bytes(IPv6(src=str(CN), dst=str(HA), nh=50) / Raw(b"\x00\x00\x77\x77" + bytes(40)))
    ha.spd.remove("rest-in")
    assert ha.inbound(stray, now=0.0) is None
    assert ha.counters["in_unknown_spi"] == 1
    empty = SecurityProcessor("empty")
    udp = bytes(IPv6(src=str(CN), dst=str(HA)) / UDP(sport=1, dport=2))
    assert empty.outbound(udp, now=0.0) is None
    assert empty.counters["out_no_policy"] == 1 and empty.counters["out_discarded"] == 1
    assert empty.inbound(b"\x60garbage", now=0.0) is None
    assert empty.counters["in_truncated"] == 1


def test_two_processors_compose_tunnel_and_end_to_end() -> None:
    """Patent E5: RTP protected MN-CN (transport, e2e layer) inside the MN-HA ESP tunnel."""
    mn_mob, ha_mob = SecurityProcessor("mn-mob"), SecurityProcessor("ha-mob")
    mn_e2e, cn_e2e = SecurityProcessor("mn-e2e"), SecurityProcessor("cn-e2e")
    tunnel = {"mode": "tunnel", "src": COA, "dst": HA}
    mn_mob.sad.add(_sa(0x2001, "tun", **tunnel), OUTBOUND)
    ha_mob.sad.add(_sa(0x2001, "tun", **tunnel), INBOUND)
    mn_mob.spd.add(Policy("all-via-ha", OUTBOUND, PROTECT, Selector(src=net(HOA)), sa="tun"))
    ha_mob.spd.add(Policy("from-mn", INBOUND, PROTECT, Selector(src=net(HOA)), sa="tun"))
    e2e = {"src": HOA, "dst": CN, "algorithm": NULL_HMAC_SHA256}
    mn_e2e.sad.add(_sa(0x3001, "rtp", **e2e), OUTBOUND)
    cn_e2e.sad.add(_sa(0x3001, "rtp", **e2e), INBOUND)
    rtp = Selector(src=net(HOA), dst=net(CN), protocol=17, dst_ports=(40000, 40001))
    mn_e2e.spd.add(Policy("rtp-out", OUTBOUND, PROTECT, rtp, sa="rtp"))
    cn_e2e.spd.add(Policy("rtp-in", INBOUND, PROTECT, rtp, sa="rtp"))

    rtp_packet = bytes(IPv6(src=str(HOA), dst=str(CN)) / UDP(sport=40000, dport=40000) / Raw(b"voice"))
    inner = mn_e2e.outbound(rtp_packet, now=0.0)
    outer = mn_mob.outbound(inner, now=0.0)
    assert IPv6(outer).src == str(COA) and IPv6(outer).nh == 50
    at_ha = ha_mob.inbound(outer, now=0.0)
    assert at_ha == inner and at_ha[6] == 50  # still ESP: the end-to-end layer
    assert cn_e2e.inbound(at_ha, now=0.0) == rtp_packet


def test_tunnel_inner_ipv4_policy() -> None:
    mn, ha = SecurityProcessor("mn"), SecurityProcessor("ha")
    tunnel = {"mode": "tunnel", "src": COA, "dst": HA}
    mn.sad.add(_sa(0x4001, "v4tun", **tunnel), OUTBOUND)
    ha.sad.add(_sa(0x4001, "v4tun", **tunnel), INBOUND)
    v4 = Selector(src=IPv4Network("10.0.0.0/8"), dst=IPv4Network("0.0.0.0/0"))
    mn.spd.add(Policy("v4", OUTBOUND, PROTECT, v4, sa="v4tun"))
    ha.spd.add(Policy("v4", INBOUND, PROTECT, v4, sa="v4tun"))
    packet = bytes(IP(src="10.1.2.3", dst="192.0.2.80") / TCP(sport=1000, dport=80))
    assert ha.inbound(mn.outbound(packet, now=0.0), now=0.0) == packet


def test_expiring_lists_soft_expired_sas() -> None:
    from netstack.ipsec.sa import Lifetime

    proc = SecurityProcessor("p")
    proc.sad.add(SecurityAssociation(spi=0x700, algorithm=AES_GCM_16, key=bytes(20), name="short",
                                     lifetime=Lifetime(soft_seconds=10, hard_seconds=20)), OUTBOUND)
    proc.sad.add(SecurityAssociation(spi=0x701, algorithm=AES_GCM_16, key=bytes(20), name="long"), OUTBOUND)
    assert proc.expiring(5.0) == []
    assert proc.expiring(10.0) == ["short"]
    assert proc.as_dict(25.0)["sas"][0]["lifetime"] == "hard"
