"""Bad input raises only ParseError subclasses (house rule), never anything else."""

from __future__ import annotations

import contextlib
from ipaddress import IPv6Address

from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.ipsec._ip6chain import walk
from netstack.ipsec.esp import unprotect
from netstack.ipsec.processor import SecurityProcessor
from netstack.ipsec.sa import SecurityAssociation
from netstack.ipsec.spd import BYPASS, INBOUND, Policy
from netstack.ipsec.transforms import AES_CBC_HMAC_SHA256, AES_GCM_16, NULL_HMAC_SHA256
from netstack.wire.errors import ParseError

SAS = [
    SecurityAssociation(spi=0x1001, algorithm=AES_GCM_16, key=bytes(20)),
    SecurityAssociation(spi=0x1001, algorithm=AES_CBC_HMAC_SHA256, key=bytes(16), auth_key=bytes(32)),
    SecurityAssociation(spi=0x1001, algorithm=NULL_HMAC_SHA256, auth_key=bytes(32), esn=True),
]
PROCESSOR = SecurityProcessor("fuzz")
PROCESSOR.sad.add(
    SecurityAssociation(
        spi=0x1001,
        algorithm=AES_GCM_16,
        key=bytes(20),
        mode="tunnel",
        src=IPv6Address("2001:db8::1"),
        dst=IPv6Address("2001:db8::2"),
    ),
    INBOUND,
)
PROCESSOR.spd.add(Policy("rest", INBOUND, BYPASS))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_unprotect_random_bytes(data: bytes) -> None:
    for sa in SAS:
        with contextlib.suppress(ParseError):
            unprotect(sa, b"\x00\x00\x10\x01" + data, now=0.0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([0, 43, 44, 50, 60, 135, 17]))
def test_walker_and_processor_random_packets(body: bytes, next_header: int) -> None:
    packet = bytes((0x60, 0, 0, 0)) + len(body).to_bytes(2, "big") + bytes((next_header, 64)) + bytes(32) + body
    with contextlib.suppress(ParseError):
        walk(packet)
    for candidate in (packet, packet[:-1], body):
        assert PROCESSOR.inbound(candidate, now=0.0) in (None, candidate)
        PROCESSOR.outbound(candidate, now=0.0)
