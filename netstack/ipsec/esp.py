"""ESP encapsulation on bytes (RFC 4303): header, IV, encrypted payload + trailer, ICV.

    0      4      8        8+iv_len                               end-icv_len   end
    | SPI  | seq  |  IV    | payload | pad 1,2,3.. | pad_len | next_header | ICV |
                           |<--------------- encrypted ------------------------>|

`protect` builds that from an upper-layer payload; `unprotect` checks it in the order
RFC 4303 3.4 asks for: lifetime, replay check (no state change), ICV, then the replay window
update, then the trailer (padding, next header).
"""

from __future__ import annotations

import struct

from netstack.ipsec.errors import (
    BadPadding,
    DummyPacket,
    MalformedEsp,
    ReplayedPacket,
    SequenceOverflow,
    UnknownSpi,
)
from netstack.ipsec.sa import SecurityAssociation

ESP_HEADER_LEN = 8
IPPROTO_ESP = 50
NO_NEXT_HEADER = 59

_HEADER = struct.Struct("!II")
_PADDING = bytes(range(1, 256))  # RFC 4303 2.4: pad bytes are 1, 2, 3, ...
_MASK32 = 0xFFFFFFFF


def protect(
    sa: SecurityAssociation, payload: bytes | memoryview, next_header: int, now: float
) -> bytes:
    """ESP packet (from the SPI to the ICV) carrying `payload` whose protocol is `next_header`.

    Raises SaExpired past the hard lifetime and SequenceOverflow instead of wrapping the
    sequence counter (RFC 4303 3.3.3: the SA must be replaced first).
    """
    sa.check_usable(now)
    if sa.seq >= sa.seq_max:
        raise SequenceOverflow(f"SA {sa.spi:#010x}: sequence number would wrap")
    seq = sa.seq + 1
    transform = sa.transform
    align = transform.align
    pad_len = -(len(payload) + 2) % align
    plaintext = b"".join(
        (payload, _PADDING[:pad_len], bytes((pad_len, next_header)))
    )
    header = _HEADER.pack(sa.spi, seq & _MASK32)
    seq_hi = (seq >> 32).to_bytes(4, "big") if sa.esn else b""
    iv = sa.iv_generator(seq)  # type: ignore[misc]  # always set in __post_init__
    body = transform.seal(header, seq_hi, iv, plaintext)
    sa.seq = seq  # only consumed once the packet really exists
    sa.account(len(payload))
    return header + iv + body


def unprotect(sa: SecurityAssociation, esp: bytes | memoryview, now: float) -> tuple[int, bytes]:
    """(next_header, payload) of an ESP packet (SPI .. ICV) received on `sa`.

    Raises only IpsecError subclasses: MalformedEsp, UnknownSpi, SaExpired, ReplayedPacket,
    IcvFailure, BadPadding, DummyPacket.
    """
    esp = bytes(esp)
    transform = sa.transform
    iv_len = transform.iv_len
    icv_len = transform.icv_len
    if len(esp) < ESP_HEADER_LEN + iv_len + 2 + icv_len:
        raise MalformedEsp(f"ESP packet of {len(esp)} bytes is too short")
    spi, seq_low = _HEADER.unpack_from(esp)
    if spi != sa.spi:
        raise UnknownSpi(f"ESP SPI {spi:#010x} is not SA {sa.spi:#010x}")
    sa.check_usable(now)
    replay = sa.replay
    seq = replay.infer_esn(seq_low) if sa.esn else seq_low
    # Integrity-less SAs (the RFC 3602 vector) cannot use anti-replay (RFC 4303 3.4.3).
    if transform.integrity and not replay.check(seq):
        raise ReplayedPacket(f"SA {sa.spi:#010x}: sequence number {seq} replayed or too old")
    seq_hi = ((seq >> 32) & _MASK32).to_bytes(4, "big") if sa.esn else b""
    iv_end = ESP_HEADER_LEN + iv_len
    plaintext = transform.open(esp[:ESP_HEADER_LEN], seq_hi, esp[ESP_HEADER_LEN:iv_end], esp[iv_end:])
    if transform.integrity:
        replay.update(seq)
    pad_len = plaintext[-2]
    next_header = plaintext[-1]
    payload_len = len(plaintext) - 2 - pad_len
    if payload_len < 0:
        raise BadPadding(f"pad length {pad_len} exceeds the {len(plaintext) - 2}-byte payload")
    if plaintext[payload_len:-2] != _PADDING[:pad_len]:
        raise BadPadding("pad bytes are not 1, 2, 3, ...")
    sa.account(payload_len)
    if next_header == NO_NEXT_HEADER:
        raise DummyPacket("ESP dummy packet (next header 59)")
    return next_header, plaintext[:payload_len]


def peek_spi(esp: bytes | memoryview) -> int:
    """SPI of an ESP packet, to find its SA in the SAD."""
    if len(esp) < ESP_HEADER_LEN:
        raise MalformedEsp(f"ESP packet of {len(esp)} bytes is too short")
    return _HEADER.unpack_from(esp)[0]
