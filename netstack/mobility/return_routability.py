"""Return routability (RFC 6275 5.2.5, 5.2.6): keygen tokens, Kbm, the authenticator, nonces.

Field order as UMIP's keygen.c / mh.c use it (checked by ../shared/testdata/rr_vectors.json):
the authenticator covers care-of address | correspondent | the Mobility Header with its
checksum zeroed, Binding Authorization Data type and length included, the 12 authenticator
octets excluded. The correspondent is the destination of a BU and the source of a BA.

Pure functions plus `NonceTable` (the CN's nonces, sans-IO: every call takes `now`).
"""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import replace
from ipaddress import IPv6Address

from netstack.mobility.constants import MAX_NONCE_LIFETIME
from netstack.wire.mh import BindingAck, BindingAuthorizationData, BindingUpdate
from netstack.wire.mh_codec import encode_mobility_header

AUTHENTICATOR_LEN = 12
NONCE_LEN = 8
KCN_LEN = 20
_BAD_TYPE = 5
_UNSPECIFIED = IPv6Address("::")


def _packed(address: IPv6Address | bytes) -> bytes:
    return address.packed if isinstance(address, IPv6Address) else bytes(address)


def home_keygen_token(kcn: bytes, home_address: IPv6Address | bytes, nonce: bytes) -> bytes:
    """First(64, HMAC_SHA1(Kcn, home address | nonce | 0))."""
    return hmac.new(kcn, _packed(home_address) + nonce + b"\x00", hashlib.sha1).digest()[:8]


def care_of_keygen_token(kcn: bytes, care_of_address: IPv6Address | bytes, nonce: bytes) -> bytes:
    """First(64, HMAC_SHA1(Kcn, care-of address | nonce | 1))."""
    return hmac.new(kcn, _packed(care_of_address) + nonce + b"\x01", hashlib.sha1).digest()[:8]


def binding_management_key(home_token: bytes, care_of_token: bytes | None) -> bytes:
    """Kbm = SHA1(home token | care-of token); SHA1(home token) when de-registering from home."""
    return hashlib.sha1(home_token + (care_of_token or b"")).digest()


def authenticator(
    kbm: bytes,
    care_of_address: IPv6Address | bytes,
    correspondent: IPv6Address | bytes,
    mh_data: bytes,
) -> bytes:
    """First(96, HMAC_SHA1(Kbm, care-of address | correspondent | MH data))."""
    data = _packed(care_of_address) + _packed(correspondent) + mh_data
    return hmac.new(kbm, data, hashlib.sha1).digest()[:AUTHENTICATOR_LEN]


def _authenticated_data(message: BindingUpdate | BindingAck) -> bytes:
    placeholder = replace(
        message, options=(*message.options, BindingAuthorizationData(bytes(AUTHENTICATOR_LEN)))
    )
    mh = bytearray(encode_mobility_header(placeholder, _UNSPECIFIED, _UNSPECIFIED))
    mh[4:6] = b"\x00\x00"
    return bytes(mh[:-AUTHENTICATOR_LEN])


def sign(
    message: BindingUpdate | BindingAck,
    kbm: bytes,
    care_of_address: IPv6Address | bytes,
    correspondent: IPv6Address | bytes,
) -> BindingUpdate | BindingAck:
    """`message` with a Binding Authorization Data option (last) computed with Kbm."""
    auth = authenticator(kbm, care_of_address, correspondent, _authenticated_data(message))
    return replace(message, options=(*message.options, BindingAuthorizationData(auth)))


def verify(
    mh: bytes | bytearray | memoryview,
    kbm: bytes,
    care_of_address: IPv6Address | bytes,
    correspondent: IPv6Address | bytes,
) -> bool:
    """Does the received Mobility Header end in a Binding Authorization Data option whose
    authenticator Kbm reproduces? (RFC 6275 6.2.7: the option must be the last one.)"""
    raw = bytes(mh)
    tail = AUTHENTICATOR_LEN + 2
    if len(raw) < 8 + tail or raw[-tail] != _BAD_TYPE or raw[-tail + 1] != AUTHENTICATOR_LEN:
        return False
    data = bytearray(raw[:-AUTHENTICATOR_LEN])
    data[4:6] = b"\x00\x00"
    expected = authenticator(kbm, care_of_address, correspondent, bytes(data))
    return hmac.compare_digest(expected, raw[-AUTHENTICATOR_LEN:])


class NonceTable:
    """The correspondent's nonces (RFC 6275 5.2.2, 9.4.1), each with a 16-bit index.

    A new nonce every `interval` seconds (only when one is asked for); a nonce is usable for
    `lifetime` (MAX_NONCE_LIFETIME) after it was made; at most `size` are kept. An index the
    table no longer holds counts as expired (BA 136/137/138).
    """

    def __init__(
        self,
        rng: random.Random | None = None,
        *,
        size: int = 16,
        lifetime: float = MAX_NONCE_LIFETIME,
        interval: float | None = None,
    ) -> None:
        self._rng = rng if rng is not None else random.SystemRandom()
        self.size = size
        self.lifetime = lifetime
        self.interval = interval if interval is not None else lifetime / size
        self._index = self._rng.randrange(0x10000)
        self._nonces: dict[int, tuple[bytes, float]] = {}
        self._newest: int | None = None

    def current(self, now: float) -> tuple[int, bytes]:
        """(index, nonce) to hand out in a HoT or CoT."""
        if self._newest is not None:
            nonce, made = self._nonces[self._newest]
            if now - made < self.interval:
                return self._newest, nonce
        self._index = (self._index + 1) & 0xFFFF
        nonce = self._rng.getrandbits(NONCE_LEN * 8).to_bytes(NONCE_LEN, "big")
        self._nonces[self._index] = (nonce, now)
        self._newest = self._index
        while len(self._nonces) > self.size:
            del self._nonces[next(iter(self._nonces))]
        return self._index, nonce

    def lookup(self, index: int, now: float) -> bytes | None:
        found = self._nonces.get(index)
        if found is None or now - found[1] > self.lifetime:
            return None
        return found[0]

    def __len__(self) -> int:
        return len(self._nonces)
