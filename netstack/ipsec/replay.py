"""Anti-replay window (RFC 4303 3.4.3) as one Python int used as a bitmap.

Bit i of `bitmap` set means sequence number `top - i` was received and authenticated.
`check` never changes state; `update` is called only after the ICV verified, so a forged
packet can neither move the window nor mark a number as seen.

With extended sequence numbers only the low 32 bits travel on the wire; `infer_esn` rebuilds
the 64-bit number from the window position (RFC 4303 Appendix A2.2) before the ICV check,
which covers the high half.
"""

from __future__ import annotations

_MASK32 = 0xFFFFFFFF
MAX_WINDOW = 1 << 16


class ReplayWindow:
    __slots__ = ("size", "top", "bitmap", "_mask")

    def __init__(self, size: int = 64) -> None:
        if not 1 <= size <= MAX_WINDOW:
            raise ValueError(f"replay window size {size} outside 1..{MAX_WINDOW}")
        self.size = size
        self.top = 0  # highest authenticated sequence number (64-bit with ESN)
        self.bitmap = 0
        self._mask = (1 << size) - 1

    def check(self, seq: int) -> bool:
        """True if `seq` is new and not left of the window. No state change."""
        if seq <= 0:
            return False  # 0 is never sent (RFC 4303 3.3.3); negative = ESN inference below 0
        top = self.top
        if seq > top:
            return True
        offset = top - seq
        if offset >= self.size:
            return False
        return not (self.bitmap >> offset) & 1

    def update(self, seq: int) -> None:
        """Mark `seq` received (after a successful ICV check); slides the window on a jump."""
        top = self.top
        if seq > top:
            shift = seq - top
            self.bitmap = ((self.bitmap << shift) | 1) & self._mask if shift < self.size else 1
            self.top = seq
        else:
            self.bitmap |= 1 << (top - seq)

    def infer_esn(self, seq_low: int) -> int:
        """Full 64-bit sequence number for an ESN packet carrying `seq_low` (RFC 4303 A2.2).

        May return a value <= 0 (a packet from "before" the first subspace); `check`
        rejects it.
        """
        top_low = self.top & _MASK32
        top_high = self.top >> 32
        window_bottom = top_low - self.size + 1
        if window_bottom >= 0:
            # Case A: window within one subspace. Below the window = next subspace.
            high = top_high if seq_low >= window_bottom else top_high + 1
        else:
            # Case B: window spans two subspaces. High values belong to the previous one.
            high = top_high - 1 if seq_low >= (window_bottom & _MASK32) else top_high
        if high < 0:
            return -1
        return (high << 32) | seq_low

    def as_dict(self) -> dict[str, int]:
        return {"size": self.size, "top": self.top, "received_in_window": self.bitmap.bit_count()}
