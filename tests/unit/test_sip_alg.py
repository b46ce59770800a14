"""SIP/SDP ALG text rewriting (guest_agent/sip_alg.py) on real messages.

The fixtures in data/sip/ were captured in the test bed (`testbed up --sip`): each message as
the host's IPv4 phone sent or received it (.v4.sip, on the host link) and as Kamailio saw it
(.v6.sip, on the proxy's link). With the bed's table 230 rows, rewriting one must give the
other byte for byte, in both directions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from guest_agent.sip_alg import SipParseError, rewrite

DATA = Path(__file__).parent / "data" / "sip"
# table 230 of the capture: home IPv4 <-> home address, pool addresses <-> IPv6 peers
ROWS = {
    "198.18.0.2": "2001:db8:6::1000",
    "198.18.0.3": "2001:db8:8::5060",
    "198.18.0.4": "2001:db8:8::1001",
    "198.18.0.5": "2001:db8:8::1005",
}
BACK = {v6: v4 for v4, v6 in ROWS.items()}
FROM_HOST = ["invite_from_host", "ack_from_host", "bye_from_host", "ok_from_host"]
TO_HOST = ["ok_to_host", "ringing_to_host", "invite_to_host", "bye_to_host"]


def load(name: str, family: int) -> bytes:
    return (DATA / f"{name}.v{family}.sip").read_bytes()


@pytest.mark.parametrize("name", FROM_HOST)
def test_host_to_ipv6_side_matches_what_the_proxy_saw(name: str) -> None:
    result = rewrite(load(name, 4), ROWS.get, 6)
    assert result.message == load(name, 6)
    assert result.replaced > 0
    assert b"198.18." not in result.message


@pytest.mark.parametrize("name", TO_HOST)
def test_ipv6_side_to_host_matches_what_the_phone_saw(name: str) -> None:
    result = rewrite(load(name, 6), BACK.get, 4)
    assert result.message == load(name, 4)
    assert b"2001:db8" not in result.message


def test_invite_sdp_carries_the_home_address_on_both_lines() -> None:
    result = rewrite(load("invite_from_host", 4), ROWS.get, 6)
    assert result.is_request and result.method == "INVITE" and result.has_sdp
    body = result.message.split(b"\r\n\r\n", 1)[1]
    assert b"c=IN IP6 2001:db8:6::1000" in body
    assert b" IN IP6 2001:db8:6::1000\r\n" in body.split(b"\r\n")[1] + b"\r\n"  # o=
    length = int(result.message.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert length == len(body)


def test_media_port_is_kept() -> None:
    before = load("invite_from_host", 4)
    after = rewrite(before, ROWS.get, 6).message
    port = [line for line in before.split(b"\r\n") if line.startswith(b"m=audio")]
    assert port and port[0] in after.split(b"\r\n")


def test_response_reports_status_and_cseq_method() -> None:
    result = rewrite(load("ok_to_host", 6), BACK.get, 4)
    assert not result.is_request and result.status == 200 and result.method == "INVITE"


def test_unknown_addresses_are_left_alone() -> None:
    message = load("invite_from_host", 4).replace(b"198.18.0.2", b"10.99.88.7")
    result = rewrite(message, ROWS.get, 6)
    assert b"10.99.88.7" in result.message
    assert result.replaced == 0


def test_hold_address_and_received_parameter() -> None:
    message = (b"INVITE sip:cn@198.18.0.4 SIP/2.0\r\n"
               b"Via: SIP/2.0/UDP 198.18.0.2:5062;received=198.18.0.2;maddr=198.18.0.3\r\n"
               b"CSeq: 2 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 42\r\n\r\n"
               b"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 9 RTP/AVP 0\r\n")
    mapping = {**ROWS, "0.0.0.0": "::"}
    out = rewrite(message, mapping.get, 6).message
    assert b"received=2001:db8:6::1000;" in out  # bare IPv6address (RFC 3261 via-received)
    assert b"maddr=[2001:db8:8::5060]" in out
    assert b"c=IN IP6 ::\r\n" in out
    assert out.startswith(b"INVITE sip:cn@[2001:db8:8::1001] SIP/2.0")


def test_compact_header_forms() -> None:
    message = (b"SIP/2.0 180 Ringing\r\nv: SIP/2.0/UDP [2001:db8:6::1000]:5062;branch=z9\r\n"
               b"m: <sip:cn@[2001:db8:8::1001]:5060>\r\nl: 0\r\n\r\n")
    out = rewrite(message, BACK.get, 4).message
    assert b"v: SIP/2.0/UDP 198.18.0.2:5062" in out
    assert b"m: <sip:cn@198.18.0.4:5060>" in out


@pytest.mark.parametrize("garbage, reason", [
    (b"\x00\x01\x02garbage", "no_header_end"),
    (b"HELLO WORLD\r\n\r\n", "bad_start_line"),
    (b"INVITE sip:x SIP/2.0\r\nno colon here\r\n\r\n", "bad_header_line"),
    (b"INVITE sip:x SIP/2.0\r\nContent-Length: 99\r\n\r\nshort", "truncated_body"),
    (b"INVITE sip:x SIP/2.0\r\nContent-Length: x\r\n\r\n", "bad_content_length"),
    (b"SIP/2.0 200 OK\r\nCSeq: one\r\n\r\n", "bad_cseq"),
    (b"\r\n\r\n", "empty_start_line"),
])
def test_malformed_messages_raise_with_a_counter_reason(garbage: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as caught:
        rewrite(garbage, ROWS.get, 6)
    assert caught.value.reason == reason


def test_non_ascii_literal_is_not_a_crash() -> None:
    message = b"OPTIONS sip:\xff\xfe@198.18.0.3 SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n"
    assert b"[2001:db8:8::5060]" in rewrite(message, ROWS.get, 6).message


def test_sdp_media_ports_with_rtcp() -> None:
    from guest_agent.sip_alg import sdp_media_ports

    port = int(next(line for line in load("invite_from_host", 6).split(b"\r\n")
                    if line.startswith(b"m=audio")).split()[1])
    assert sdp_media_ports(load("invite_from_host", 6)) == [port, port + 1]
    assert sdp_media_ports(load("ack_from_host", 6)) == []
    assert sdp_media_ports(b"garbage") == []


def test_re_invite_in_dialog_from_the_ipv6_side() -> None:
    """A re-INVITE (hold) from the CN inside the dialog: Route, Contact and the new SDP."""
    message = (
        b"INVITE sip:host4-0x1@[2001:db8:6::1000]:5062 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP [2001:db8:8::5060];branch=z9hG4bKa\r\n"
        b"Via: SIP/2.0/UDP [2001:db8:8::1001]:5060;received=2001:db8:8::1001;branch=z9hG4bKb\r\n"
        b"Route: <sip:[2001:db8:8::5060];lr=on>\r\n"
        b"From: <sip:cn@sip.example>;tag=1\r\nTo: <sip:host4@sip.example>;tag=2\r\n"
        b"Call-ID: c\r\nCSeq: 3 INVITE\r\nContact: <sip:cn@[2001:db8:8::1001]:5060>\r\n"
        b"Content-Type: application/sdp\r\nContent-Length: 80\r\n\r\n"
        b"v=0\r\no=- 1 2 IN IP6 2001:db8:8::1001\r\nc=IN IP6 2001:db8:8::1001\r\na=sendonly\r\n")
    message = message.replace(b"Content-Length: 80",
                              b"Content-Length: %d" % len(message.split(b"\r\n\r\n", 1)[1]))
    result = rewrite(message, BACK.get, 4)
    out = result.message
    assert out.startswith(b"INVITE sip:host4-0x1@198.18.0.2:5062 SIP/2.0\r\n")
    assert b"Route: <sip:198.18.0.3;lr=on>" in out
    assert b"received=198.18.0.4;" in out
    assert b"o=- 1 2 IN IP4 198.18.0.4\r\nc=IN IP4 198.18.0.4\r\na=sendonly" in out
    assert int(out.split(b"Content-Length: ")[1].split(b"\r\n")[0]) == \
        len(out.split(b"\r\n\r\n", 1)[1])
    assert rewrite(out, ROWS.get, 6).message == message  # and back again
