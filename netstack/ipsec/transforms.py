"""ESP cryptographic transforms: one object per SA, crypto contexts created once.

A transform turns (ESP header, high sequence bits, IV, plaintext) into the bytes that follow
the IV (ciphertext || ICV) and back. It knows nothing about padding, replay or lifetimes.

- AES-GCM-16 (RFC 4106) and ChaCha20-Poly1305 (RFC 7634): nonce = 4-byte salt || 8-byte IV,
  AAD = SPI || seq (ESN: SPI || seq_hi || seq_lo).
- AES-CBC + HMAC-SHA-256-128 (RFC 3602, RFC 4868): ICV = HMAC over SPI || seq || IV ||
  ciphertext, with ESN the seq_hi is appended to the ICV input but not sent (RFC 4303 2.2.1).
- NULL + HMAC-SHA-256-128 (RFC 2410): no IV, ICV as above.
- AES-CBC without integrity: only to reproduce the RFC 3602 known-answer vectors.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from netstack.ipsec.errors import IcvFailure, MalformedEsp

AES_GCM_16 = "aes-gcm-16"
CHACHA20_POLY1305 = "chacha20-poly1305"
AES_CBC_HMAC_SHA256 = "aes-cbc-hmac-sha256-128"
NULL_HMAC_SHA256 = "null-hmac-sha256-128"
AES_CBC_NO_AUTH = "aes-cbc-no-auth"  # RFC 3602 KAT only: confidentiality without integrity

ALGORITHMS = (AES_GCM_16, CHACHA20_POLY1305, AES_CBC_HMAC_SHA256, NULL_HMAC_SHA256, AES_CBC_NO_AUTH)
AEAD_ALGORITHMS = (AES_GCM_16, CHACHA20_POLY1305)
SALT_LEN = 4
HMAC_SHA256_128_LEN = 16
_AES_BLOCK = 16


class AeadTransform:
    """AES-GCM with a 16-octet ICV, or ChaCha20-Poly1305; both use an 8-byte explicit IV."""

    __slots__ = ("_aead", "_salt")
    iv_len = 8
    icv_len = 16
    align = 4  # stream-like ciphers: pad only to 4-byte alignment (RFC 4106 3.2, RFC 7634 3)
    integrity = True

    def __init__(self, algorithm: str, key: bytes, salt: bytes) -> None:
        if len(salt) != SALT_LEN:
            raise ValueError(f"{algorithm} needs a {SALT_LEN}-byte salt, got {len(salt)}")
        if algorithm == AES_GCM_16:
            if len(key) not in (16, 24, 32):
                raise ValueError(f"AES-GCM key must be 16, 24 or 32 bytes, got {len(key)}")
            self._aead: AESGCM | ChaCha20Poly1305 = AESGCM(key)
        else:
            if len(key) != 32:
                raise ValueError(f"ChaCha20-Poly1305 key must be 32 bytes, got {len(key)}")
            self._aead = ChaCha20Poly1305(key)
        self._salt = salt

    @staticmethod
    def _aad(header: bytes, seq_hi: bytes) -> bytes:
        return header[:4] + seq_hi + header[4:8] if seq_hi else header

    def seal(self, header: bytes, seq_hi: bytes, iv: bytes, plaintext: bytes) -> bytes:
        return self._aead.encrypt(self._salt + iv, plaintext, self._aad(header, seq_hi))

    def open(self, header: bytes, seq_hi: bytes, iv: bytes, body: bytes) -> bytes:
        try:
            return self._aead.decrypt(self._salt + iv, body, self._aad(header, seq_hi))
        except InvalidTag:
            raise IcvFailure("ESP AEAD tag mismatch") from None


class _PersistentCbc:
    """AES-CBC with ONE encryptor and ONE decryptor context for the SA's lifetime.

    A CBC context chains from the last ciphertext block it processed. To start a packet with
    its own IV we XOR the first plaintext block with (IV xor previous chain block) on the way
    in, and the first decrypted block with (previous chain block xor IV) on the way out.
    This saves building a Cipher per packet; the output is plain RFC 3602 CBC.
    """

    __slots__ = ("_enc", "_dec", "_enc_prev", "_dec_prev")

    def __init__(self, key: bytes) -> None:
        if len(key) not in (16, 24, 32):
            raise ValueError(f"AES-CBC key must be 16, 24 or 32 bytes, got {len(key)}")
        cipher = Cipher(algorithms.AES(key), modes.CBC(bytes(_AES_BLOCK)))
        self._enc = cipher.encryptor()
        self._dec = cipher.decryptor()
        self._enc_prev = 0
        self._dec_prev = 0

    def encrypt(self, iv: bytes, plaintext: bytes) -> bytes:
        first = int.from_bytes(plaintext[:16], "big") ^ int.from_bytes(iv, "big") ^ self._enc_prev
        out = self._enc.update(first.to_bytes(16, "big") + plaintext[16:])
        self._enc_prev = int.from_bytes(out[-16:], "big")
        return out

    def decrypt(self, iv: bytes, ciphertext: bytes) -> bytes:
        out = self._dec.update(ciphertext)
        first = int.from_bytes(out[:16], "big") ^ self._dec_prev ^ int.from_bytes(iv, "big")
        self._dec_prev = int.from_bytes(ciphertext[-16:], "big")
        return first.to_bytes(16, "big") + out[16:]


class CbcHmacTransform:
    """AES-CBC (random 16-byte IV) with HMAC-SHA-256-128, or without integrity (KAT only)."""

    __slots__ = ("_cbc", "_mac", "icv_len", "integrity")
    iv_len = 16
    align = _AES_BLOCK

    def __init__(self, key: bytes, auth_key: bytes | None) -> None:
        self._cbc = _PersistentCbc(key)
        self._mac = hmac.new(auth_key, digestmod=hashlib.sha256) if auth_key else None
        self.integrity = self._mac is not None
        self.icv_len = HMAC_SHA256_128_LEN if self._mac is not None else 0

    def _icv(self, header: bytes, iv: bytes, ciphertext: bytes, seq_hi: bytes) -> bytes:
        mac = self._mac.copy()  # type: ignore[union-attr]  # keyed once, copied per packet
        mac.update(header)
        mac.update(iv)
        mac.update(ciphertext)
        if seq_hi:
            mac.update(seq_hi)
        return mac.digest()[:HMAC_SHA256_128_LEN]

    def seal(self, header: bytes, seq_hi: bytes, iv: bytes, plaintext: bytes) -> bytes:
        ciphertext = self._cbc.encrypt(iv, plaintext)
        if self._mac is None:
            return ciphertext
        return ciphertext + self._icv(header, iv, ciphertext, seq_hi)

    def open(self, header: bytes, seq_hi: bytes, iv: bytes, body: bytes) -> bytes:
        icv_len = self.icv_len
        ciphertext = body[:-icv_len] if icv_len else body
        if not ciphertext or len(ciphertext) % _AES_BLOCK:
            raise MalformedEsp(f"CBC ciphertext length {len(ciphertext)} not a multiple of 16")
        if self._mac is not None and not hmac.compare_digest(
            self._icv(header, iv, ciphertext, seq_hi), body[-icv_len:]
        ):
            raise IcvFailure("ESP HMAC-SHA-256-128 mismatch")
        return self._cbc.decrypt(iv, ciphertext)


class NullHmacTransform:
    """NULL encryption (RFC 2410) with HMAC-SHA-256-128: integrity only, no IV."""

    __slots__ = ("_mac",)
    iv_len = 0
    icv_len = HMAC_SHA256_128_LEN
    align = 4
    integrity = True

    def __init__(self, auth_key: bytes) -> None:
        self._mac = hmac.new(auth_key, digestmod=hashlib.sha256)

    def _icv(self, header: bytes, data: bytes, seq_hi: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(header)
        mac.update(data)
        if seq_hi:
            mac.update(seq_hi)
        return mac.digest()[:HMAC_SHA256_128_LEN]

    def seal(self, header: bytes, seq_hi: bytes, iv: bytes, plaintext: bytes) -> bytes:
        return plaintext + self._icv(header, plaintext, seq_hi)

    def open(self, header: bytes, seq_hi: bytes, iv: bytes, body: bytes) -> bytes:
        data = body[:-HMAC_SHA256_128_LEN]
        if not hmac.compare_digest(self._icv(header, data, seq_hi), body[-HMAC_SHA256_128_LEN:]):
            raise IcvFailure("ESP HMAC-SHA-256-128 mismatch")
        return data


def _check_auth_key(algorithm: str, auth_key: bytes | None) -> bytes:
    # RFC 4868 2.1.1: HMAC-SHA-256-128 uses a 256-bit key.
    if auth_key is None or len(auth_key) != 32:
        got = "none" if auth_key is None else f"{len(auth_key)} bytes"
        raise ValueError(f"{algorithm} needs a 32-byte auth_key (RFC 4868), got {got}")
    return auth_key


Transform = AeadTransform | CbcHmacTransform | NullHmacTransform


def make_transform(algorithm: str, key: bytes, salt: bytes, auth_key: bytes | None) -> Transform:
    if algorithm in AEAD_ALGORITHMS:
        return AeadTransform(algorithm, key, salt)
    if algorithm == AES_CBC_HMAC_SHA256:
        return CbcHmacTransform(key, _check_auth_key(algorithm, auth_key))
    if algorithm == AES_CBC_NO_AUTH:
        return CbcHmacTransform(key, None)
    if algorithm == NULL_HMAC_SHA256:
        return NullHmacTransform(_check_auth_key(algorithm, auth_key))
    raise ValueError(f"unknown ESP algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
