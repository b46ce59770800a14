"""Issue 12, "must be shown": SIP VoIP through the terminal (patent E5, Fig. 23-26).

Real Kamailio (`sip` node) and real baresip phones (`testbed up --sip`); calls are placed with
`mip6term testbed call FROM TO`, which prints one JSON object. The wire is checked with
tcpdump and tshark (SIP/SDP dissector; ESP decrypted with the bed's keys).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import pytest

from provisioning import netns
from provisioning.nodes.sip import SIP_ADDRESS
from provisioning.topology import CN_ADDRESS, HOME_ADDRESS, VISITED_A, VISITED_B
from tests.netns.conftest import BedHandle, _bring_up, _cli
from tests.netns.test_ipsec import (
    SPI_E2E_DOWN,
    SPI_E2E_UP,
    SPI_TUNNEL_DOWN,
    SPI_TUNNEL_UP,
    decode,
    full_capture,
)
from tests.netns.test_mobility_e2e import wait_registered

pytestmark = pytest.mark.netns

HOA = str(HOME_ADDRESS)
HOME4 = "198.18.0.2"  # the home address's virtual IPv4 (default pool)
SECONDS = 5
MIN_RTP = 200  # 50 packets/s for 5 s, minus set-up and tear-down
MAX_LOSS = 0.01
HOST4_RTP = (30000, 30999)  # provisioning/nodes/sip.py


@pytest.fixture(scope="module")
def sip_bed() -> Iterator[BedHandle]:
    yield from _bring_up("--sip")


@pytest.fixture
def no_alg_bed() -> Iterator[BedHandle]:
    yield from _bring_up("--sip", "--no-sip-alg")


@pytest.fixture
def double_esp_bed() -> Iterator[BedHandle]:
    yield from _bring_up("--sip", "--ipsec", "tunnel,e2e")


def call(bed: BedHandle, caller: str, callee: str, seconds: float = SECONDS) -> dict[str, Any]:
    result = _cli("testbed", "call", "--prefix", bed.prefix, caller, callee,
                  "--seconds", str(seconds), timeout=seconds + 60)
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def assert_good_call(result: dict[str, Any]) -> None:
    assert result["established"] and result["status"] == 200, result
    for side in (result["from"], result["to"]):
        rtp = result["rtp"][side]
        assert rtp["received"] >= MIN_RTP, result
        assert rtp["sent"] >= MIN_RTP, result
        assert rtp["loss_ratio"] <= MAX_LOSS, result


def guest_counters(bed: BedHandle) -> dict[str, int]:
    return bed.status()["counters"]["guest"]


def alg_messages(counters: dict[str, int]) -> int:
    return counters.get("sip_alg_messages_out", 0) + counters.get("sip_alg_messages_in", 0)


# ---------------------------------------------------------------- 1-3. calls


def test_ipv4_phone_calls_ipv6_phone_through_kamailio(sip_bed: BedHandle, tmp_path: Path) -> None:
    before = guest_counters(sip_bed)
    with full_capture(sip_bed.namespace("sip"), "eth0", tmp_path / "sip.pcap",
                      "udp port 5060") as cap:
        result = call(sip_bed, "host4", "cn")
    assert_good_call(result)
    rows = cap.decode(["sip.Method", "sip.CSeq.method", "sip.Status-Code",
                       "sdp.connection_info.address", "sdp.owner.address", "ipv6.src"])
    invites = [r for r in rows if r["sip.Method"] == ["INVITE"] and r["ipv6.src"] == [HOA]]
    assert invites, rows
    # the proxy sees the IPv4 phone's offer with the home address on c= and o=
    assert invites[0]["sdp.connection_info.address"] == [HOA], invites
    assert invites[0]["sdp.owner.address"] == [HOA], invites
    assert any(r["sip.Method"] == ["BYE"] and r["ipv6.src"] == [HOA] for r in rows), rows
    assert any(r["sip.CSeq.method"] == ["BYE"] and r["sip.Status-Code"] == ["200"]
               for r in rows), rows
    after = guest_counters(sip_bed)
    assert after.get("sip_alg_sdp_out", 0) > before.get("sip_alg_sdp_out", 0)
    assert after.get("sip_alg_sdp_in", 0) > before.get("sip_alg_sdp_in", 0)


def test_ipv6_phone_on_host_uses_the_home_address_without_the_alg(
        sip_bed: BedHandle, tmp_path: Path) -> None:
    before = alg_messages(guest_counters(sip_bed))
    with full_capture(sip_bed.namespace("sip"), "eth0", tmp_path / "sip.pcap",
                      "udp port 5060") as cap, \
            full_capture(sip_bed.namespace("host"), "eth0", tmp_path / "host.pcap",
                         "udp portrange 31000-31999") as media:
        result = call(sip_bed, "host6", "cn")
    assert_good_call(result)
    # the CN's RTP reaches the IPv6 phone as IPv6 (passthrough), none of it translated
    to_phone = media.decode(["ip.dst", "ipv6.dst"], "udp.dstport >= 31000")
    assert sum(r["ipv6.dst"] == [HOA] for r in to_phone) >= MIN_RTP, to_phone[:5]
    assert not [r for r in to_phone if r["ip.dst"]], to_phone[:5]
    rows = cap.decode(["sip.Method", "sdp.connection_info.address", "ipv6.src"])
    invites = [r for r in rows if r["sip.Method"] == ["INVITE"] and r["ipv6.src"] == [HOA]]
    assert invites and invites[0]["sdp.connection_info.address"] == [HOA], rows
    assert alg_messages(guest_counters(sip_bed)) == before  # passthrough: no ALG involved


def test_cn_calls_the_ipv4_phone(sip_bed: BedHandle) -> None:
    result = call(sip_bed, "cn", "host4")
    assert_good_call(result)
    table = sip_bed.status()["guest"]["translation_table"]
    # the CN's addresses in the INVITE (Contact, SDP) got their table-230 rows from the ALG
    assert str(CN_ADDRESS) in {row["ipv6"] for row in table}, table


def test_re_invite_hold_and_resume_from_the_cn_through_the_alg(
        sip_bed: BedHandle, tmp_path: Path) -> None:
    from provisioning.sip_call import place_call

    with full_capture(sip_bed.namespace("host"), "eth0", tmp_path / "host.pcap",
                      "udp port 5060") as host_cap, \
            full_capture(sip_bed.namespace("sip"), "eth0", tmp_path / "sip.pcap",
                         "udp port 5060") as proxy_cap:
        result = place_call(sip_bed.prefix, sip_bed.state_dir, "host4", "cn", seconds=6,
                            commands=[(1.5, "cn", "hold"), (3.0, "cn", "resume")]).as_dict()
    assert result["established"] and result["rtp"]["host4"]["received"] >= 150, result
    fields = ["sip.Method", "sip.Status-Code", "sip.CSeq.method", "sdp.connection_info.address",
              "sdp.media_attr", "ip.src", "ipv6.src"]
    host = host_cap.decode(fields)
    invites = [r for r in host if r["sip.Method"] == ["INVITE"] and r["ip.src"] != [HOME4]]
    assert len(invites) == 2, host  # hold, resume: in-dialog re-INVITEs for the IPv4 phone
    assert "sendonly" in invites[0]["sdp.media_attr"]
    assert all(r["sdp.connection_info.address"][0].startswith("198.18.") for r in invites)
    answers = [r for r in host if r["sip.Status-Code"] == ["200"] and r["ip.src"] == [HOME4]
               and r["sip.CSeq.method"] == ["INVITE"]]
    assert len(answers) == 2 and "recvonly" in answers[0]["sdp.media_attr"], host
    proxy = proxy_cap.decode(fields)
    answers6 = [r for r in proxy if r["sip.Status-Code"] == ["200"] and r["ipv6.src"] == [HOA]
                and r["sip.CSeq.method"] == ["INVITE"]]
    assert len(answers6) == 2 and all(r["sdp.connection_info.address"] == [HOA]
                                      for r in answers6), proxy


@pytest.mark.parametrize("caller, callee", [("host4tcp", "cn"), ("cn", "host4tcp")])
def test_ipv4_phone_over_tcp_both_directions(sip_bed: BedHandle, tmp_path: Path,
                                             caller: str, callee: str) -> None:
    with full_capture(sip_bed.namespace("sip"), "eth0", tmp_path / "sip.pcap",
                      "tcp port 5060 or tcp port 5066") as cap:
        result = call(sip_bed, caller, callee)
    assert_good_call(result)
    rows = cap.decode(["sip.Method", "sip.Status-Code", "sip.CSeq.method",
                       "sdp.connection_info.address", "ipv6.src"], "sip")
    from_phone = [r for r in rows if r["ipv6.src"] == [HOA] and r["sdp.connection_info.address"]]
    assert from_phone and all(r["sdp.connection_info.address"] == [HOA] for r in from_phone)
    assert any(r["sip.Method"] == ["BYE"] or r["sip.CSeq.method"] == ["BYE"] for r in rows)


# ---------------------------------------------------------------- 6. garbage on 5060


def test_garbage_on_sip_port_is_counted_and_the_agent_lives(sip_bed: BedHandle) -> None:
    table = sip_bed.status()["guest"]["translation_table"]
    proxy4 = next(row["ipv4"] for row in table if row["ipv6"] == str(SIP_ADDRESS))
    before = guest_counters(sip_bed)
    garbage = [b"\x00\xff" * 50, b"INVITE\r\n\r\n", b"SIP/2.0 200\r\nVia x\r\n\r\n",
               b"REGISTER sip:x SIP/2.0\r\nContent-Length: 9999\r\n\r\nshort"]
    with netns.inside(sip_bed.namespace("host")), \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for payload in garbage:
            s.sendto(payload, (str(IPv4Address(proxy4)), 5060))
    deadline = time.monotonic() + 10
    malformed = 0
    while time.monotonic() < deadline:
        after = guest_counters(sip_bed)
        malformed = sum(v - before.get(k, 0) for k, v in after.items()
                        if k.startswith("sip_alg_malformed_"))
        if malformed >= len(garbage):
            break
        time.sleep(0.2)
    assert malformed == len(garbage), after
    assert sip_bed.status()["binding_update_list"]  # the agent still answers


# ---------------------------------------------------------------- 4. handover during a call


def test_call_survives_move_and_media_resumes_on_the_new_care_of_address(
        sip_bed: BedHandle, tmp_path: Path) -> None:
    wait_registered(sip_bed, VISITED_B)
    with full_capture(sip_bed.namespace("ar-a"), "eth0", tmp_path / "a.pcap", "ip6") as cap:
        result_box: dict[str, Any] = {}

        def moved_call() -> None:
            result_box.update(call(sip_bed, "cn", "host4", seconds=8))

        caller = threading.Thread(target=moved_call)
        caller.start()
        time.sleep(3)
        moved = sip_bed.move("a")
        caller.join(timeout=90)
    assert moved.returncode == 0, moved.stderr
    result = result_box
    assert result["established"], result
    for side in ("cn", "host4"):
        assert result["rtp"][side]["received"] >= MIN_RTP, result
    rows = cap.decode(["ipv6.dst", "udp.dstport"], "udp")
    coa = [r for r in rows if r["ipv6.dst"] and IPv6Address(r["ipv6.dst"][0]) in VISITED_A]
    media = [r for r in coa if r["udp.dstport"]
             and HOST4_RTP[0] <= int(r["udp.dstport"][-1]) <= HOST4_RTP[1]]
    assert len(media) >= 50, rows[:20]  # RTP for the host phone, tunnelled to the new CoA
    back = sip_bed.move("b")
    assert back.returncode == 0, back.stderr


# ---------------------------------------------------------------- 6. the control case


def test_without_the_alg_the_same_call_fails_with_488(no_alg_bed: BedHandle) -> None:
    result = call(no_alg_bed, "host4", "cn")
    assert not result["established"] and result["status"] == 488, result
    assert guest_counters(no_alg_bed).get("sip_alg_off_passed_out", 0) > 0


# ---------------------------------------------------------------- 5. double ESP on the media


def test_rtp_under_double_esp_decrypts_both_layers(double_esp_bed: BedHandle,
                                                  tmp_path: Path) -> None:
    bed = double_esp_bed
    wait_registered(bed, VISITED_B)
    with full_capture(bed.namespace("core"), "eth2", tmp_path / "core.pcap") as cap:
        result = call(bed, "host4", "cn")
    assert_good_call(result)
    plain = cap.decode(["frame.number"], "udp")  # no keys: nothing readable on the core
    assert plain == [], plain
    rows = decode(cap, bed, ["esp.spi", "esp.icv_good", "rtp.seq", "udp.srcport"],
                  "rtp")
    down = [r for r in rows if r["esp.spi"] == [SPI_TUNNEL_DOWN, SPI_E2E_DOWN]]
    up = [r for r in rows if r["esp.spi"] == [SPI_TUNNEL_UP, SPI_E2E_UP]]
    assert len(down) >= MIN_RTP and len(up) >= MIN_RTP, rows[:10]
    assert all(r["esp.icv_good"] == ["1", "1"] for r in down + up)
    flows = bed.status()["guest"]["ipsec"]["terminations"]
    rtp = [f for f in flows if f["protocol"] == "udp" and f["src"] == str(CN_ADDRESS)
           and HOST4_RTP[0] <= f["dport"] <= HOST4_RTP[1]]
    assert rtp and rtp[0]["mobility_terminated"] >= MIN_RTP, flows
    assert rtp[0]["end_to_end_terminated"] == rtp[0]["mobility_terminated"], flows
