"""ESP protect/unprotect (RFC 4303): round trips, padding, trailer checks, lifetimes,
sequence overflow."""

from __future__ import annotations

import os
import struct

import pytest

from netstack.ipsec.errors import (
    BadPadding,
    DummyPacket,
    IcvFailure,
    IpsecError,
    MalformedEsp,
    ReplayedPacket,
    SaExpired,
    SequenceOverflow,
    UnknownSpi,
)
from netstack.ipsec.esp import protect, unprotect
from netstack.ipsec.sa import Lifetime, SecurityAssociation
from netstack.ipsec.transforms import (
    AES_CBC_HMAC_SHA256,
    AES_GCM_16,
    CHACHA20_POLY1305,
    NULL_HMAC_SHA256,
)
from netstack.wire.errors import ParseError

KEYS = {
    AES_GCM_16: {"key": bytes(range(16)) + b"salt"},
    CHACHA20_POLY1305: {"key": bytes(range(32)), "salt": b"\xa0\xa1\xa2\xa3"},
    AES_CBC_HMAC_SHA256: {"key": bytes(range(16)), "auth_key": bytes(range(32, 64))},
    NULL_HMAC_SHA256: {"auth_key": bytes(range(32))},
}
ALIGN = {AES_GCM_16: 4, CHACHA20_POLY1305: 4, AES_CBC_HMAC_SHA256: 16, NULL_HMAC_SHA256: 4}
IV_LEN = {AES_GCM_16: 8, CHACHA20_POLY1305: 8, AES_CBC_HMAC_SHA256: 16, NULL_HMAC_SHA256: 0}


def pair(algorithm: str, **extra) -> tuple[SecurityAssociation, SecurityAssociation]:
    common = {"spi": 0x1234, "algorithm": algorithm, **KEYS[algorithm], **extra}
    return SecurityAssociation(**common), SecurityAssociation(**common)


@pytest.mark.parametrize("algorithm", list(KEYS))
@pytest.mark.parametrize("size", [0, 1, 2, 3, 13, 14, 15, 16, 100, 1400])
def test_round_trip_and_padding(algorithm: str, size: int) -> None:
    tx, rx = pair(algorithm)
    payload = os.urandom(size)
    packet = protect(tx, payload, 6, now=0.0)
    body = len(packet) - 8 - IV_LEN[algorithm] - 16
    assert body % ALIGN[algorithm] == 0
    assert body - size - 2 < ALIGN[algorithm]  # minimal padding
    assert packet[:8] == struct.pack("!II", 0x1234, 1)
    assert unprotect(rx, packet, now=0.0) == (6, payload)


def test_pad_bytes_are_1_2_3_and_trailer_layout() -> None:
    tx, _ = pair(NULL_HMAC_SHA256)
    packet = protect(tx, b"abcde", 58, now=0.0)  # 5 + 2 -> pad 1
    assert packet[8:-16] == b"abcde" + b"\x01" + b"\x01" + b"\x3a"
    packet = protect(tx, b"ab", 58, now=0.0)  # 2 + 2 -> pad 0
    assert packet[8:-16] == b"ab\x00\x3a"
    cbc, _ = pair(AES_CBC_HMAC_SHA256, iv_generator=lambda _s: bytes(16))
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    packet = protect(cbc, b"z", 17, now=0.0)
    decrypted = Cipher(algorithms.AES(KEYS[AES_CBC_HMAC_SHA256]["key"]), modes.CBC(bytes(16)))
    plain = decrypted.decryptor().update(packet[24:-16])
    assert plain == b"z" + bytes(range(1, 14)) + bytes((13, 17))


def test_aead_iv_is_the_sequence_number_and_cbc_iv_is_random() -> None:
    gcm, _ = pair(AES_GCM_16)
    ivs = [protect(gcm, b"x", 17, 0.0)[8:16] for _ in range(3)]
    assert ivs == [(n).to_bytes(8, "big") for n in (1, 2, 3)]
    cbc, _ = pair(AES_CBC_HMAC_SHA256)
    cbc_ivs = {protect(cbc, b"x", 17, 0.0)[8:24] for _ in range(5)}
    assert len(cbc_ivs) == 5


FLIP_CASES = [
    (algorithm, where)
    for algorithm in KEYS
    for where in ("header", "iv", "body", "icv")
    if not (where == "iv" and IV_LEN[algorithm] == 0)  # NULL encryption has no IV
]


@pytest.mark.parametrize(("algorithm", "where"), FLIP_CASES)
def test_any_flipped_bit_fails_icv(algorithm: str, where: str) -> None:
    tx, rx = pair(algorithm)
    packet = bytearray(protect(tx, b"payload" * 5, 17, now=0.0))
    index = {"header": 7, "iv": 9, "body": 8 + IV_LEN[algorithm] + 1, "icv": len(packet) - 1}[where]
    packet[index] ^= 0x40
    with pytest.raises(IcvFailure):
        unprotect(rx, bytes(packet), now=0.0)
    assert rx.replay.top == 0


def _forge(sa: SecurityAssociation, seq: int, plaintext: bytes) -> bytes:
    """A correctly authenticated ESP packet around an arbitrary (possibly bad) trailer."""
    header = struct.pack("!II", sa.spi, seq)
    iv = sa.iv_generator(seq)
    return header + iv + sa.transform.seal(header, b"", iv, plaintext)


@pytest.mark.parametrize("algorithm", [NULL_HMAC_SHA256, AES_GCM_16, AES_CBC_HMAC_SHA256])
def test_bad_padding_detected_after_icv(algorithm: str) -> None:
    tx, rx = pair(algorithm)
    align = ALIGN[algorithm]
    body = b"A" * (align - 4)
    bad_bytes = body + b"\x01\x03" + b"\x02\x11"  # pad bytes 1,3: not monotonic
    with pytest.raises(BadPadding):
        unprotect(rx, _forge(tx, 1, bad_bytes), 0.0)
    too_long = body + b"\x01\x02" + b"\xff\x11"  # pad length 255 > payload
    with pytest.raises(BadPadding):
        unprotect(rx, _forge(tx, 2, too_long), 0.0)
    # the ICV was fine, so the window moved (RFC 4303 3.4.3 order)
    assert rx.replay.top == 2
    good = body + b"\x01\x02" + b"\x02\x11"
    assert unprotect(rx, _forge(tx, 3, good), 0.0) == (17, body)


def test_dummy_packet_next_header_59() -> None:
    tx, rx = pair(AES_GCM_16)
    with pytest.raises(DummyPacket):
        unprotect(rx, protect(tx, b"", 59, 0.0), 0.0)


def test_malformed_and_wrong_spi() -> None:
    tx, rx = pair(AES_CBC_HMAC_SHA256)
    packet = protect(tx, b"hello", 17, 0.0)
    with pytest.raises(MalformedEsp):
        unprotect(rx, packet[:30], 0.0)
    with pytest.raises(MalformedEsp):  # ciphertext not a whole number of blocks
        unprotect(rx, packet[:-17] + packet[-16:], 0.0)
    other = SecurityAssociation(spi=0x9999, algorithm=AES_CBC_HMAC_SHA256, **KEYS[AES_CBC_HMAC_SHA256])
    with pytest.raises(UnknownSpi):
        unprotect(other, packet, 0.0)
    for junk in (b"", b"\x00" * 7, os.urandom(60)):
        with pytest.raises(IpsecError):
            unprotect(rx, junk, 0.0)


def test_errors_are_parse_errors_with_reasons() -> None:
    for cls, reason in [
        (IcvFailure, "icv_failure"),
        (ReplayedPacket, "replayed"),
        (BadPadding, "bad_padding"),
        (SaExpired, "sa_expired"),
        (SequenceOverflow, "sequence_overflow"),
    ]:
        assert issubclass(cls, IpsecError) and issubclass(cls, ParseError)
        assert cls("x").reason == reason


def test_sequence_overflow_without_esn() -> None:
    tx, rx = pair(AES_GCM_16)
    tx.seq = (1 << 32) - 2
    last = protect(tx, b"last", 17, 0.0)
    assert last[4:8] == b"\xff\xff\xff\xff"
    with pytest.raises(SequenceOverflow):
        protect(tx, b"wrap", 17, 0.0)
    assert tx.seq == (1 << 32) - 1  # refused packets do not consume a number
    rx.replay.top = (1 << 32) - 10
    assert unprotect(rx, last, 0.0) == (17, b"last")


def test_sequence_overflow_with_esn() -> None:
    tx, _ = pair(CHACHA20_POLY1305, esn=True)
    tx.seq = (1 << 32) - 1
    assert protect(tx, b"x", 17, 0.0)[4:8] == bytes(4)  # ESN continues past 2^32
    tx.seq = (1 << 64) - 1
    with pytest.raises(SequenceOverflow):
        protect(tx, b"x", 17, 0.0)


def test_lifetime_hard_time() -> None:
    tx, rx = pair(AES_GCM_16, lifetime=Lifetime(soft_seconds=50, hard_seconds=100), created_at=1000.0)
    packet = protect(tx, b"a", 17, now=1049.0)
    assert not tx.soft_expired
    protect(tx, b"b", 17, now=1050.0)
    assert tx.soft_expired and tx.lifetime_state(1050.0) == "soft"
    with pytest.raises(SaExpired):
        protect(tx, b"c", 17, now=1100.0)
    assert unprotect(rx, packet, now=1099.9)[1] == b"a"
    with pytest.raises(SaExpired):
        unprotect(rx, packet, now=1100.0)


def test_lifetime_bytes() -> None:
    tx, _ = pair(NULL_HMAC_SHA256, lifetime=Lifetime(soft_bytes=1000, hard_bytes=2000))
    protect(tx, b"x" * 999, 17, 0.0)
    assert tx.lifetime_state(0.0) == "ok"
    protect(tx, b"x" * 1, 17, 0.0)
    assert tx.lifetime_state(0.0) == "soft"
    protect(tx, b"x" * 1000, 17, 0.0)
    assert tx.byte_count == 2000 and tx.packet_count == 3
    with pytest.raises(SaExpired):
        protect(tx, b"x", 17, 0.0)


def test_esn_high_bits_in_hmac_not_on_wire() -> None:
    tx, rx = pair(AES_CBC_HMAC_SHA256, esn=True)
    tx.seq = (5 << 32) + 99
    packet = protect(tx, b"esn-cbc", 17, 0.0)
    assert packet[4:8] == (100).to_bytes(4, "big")
    rx.replay.top = (5 << 32) + 90
    assert unprotect(rx, packet, 0.0) == (17, b"esn-cbc")
    plain_rx = SecurityAssociation(spi=0x1234, algorithm=AES_CBC_HMAC_SHA256, **KEYS[AES_CBC_HMAC_SHA256])
    with pytest.raises(IcvFailure):  # without seq_hi in the ICV input the HMAC differs
        unprotect(plain_rx, packet, 0.0)


def test_sa_validation() -> None:
    with pytest.raises(ValueError):
        SecurityAssociation(spi=0x1234, algorithm="rot13")
    with pytest.raises(ValueError):
        SecurityAssociation(spi=0x10, algorithm=AES_GCM_16, key=bytes(20))
    with pytest.raises(ValueError):
        SecurityAssociation(spi=0x1234, algorithm=AES_CBC_HMAC_SHA256, key=bytes(16))
    with pytest.raises(ValueError):
        SecurityAssociation(spi=0x1234, algorithm=AES_GCM_16, key=bytes(20), mode="tunnel")
    sa = SecurityAssociation(spi=0x1234, algorithm=AES_GCM_16, key=bytes(16) + b"SALT")
    assert (sa.key, sa.salt) == (bytes(16), b"SALT")
    status = str(sa.as_dict(0.0))
    assert "SALT" not in status and "spi" in status and "key" not in status
