"""Anti-replay window (RFC 4303 3.4.3, Appendix A2) and its use by unprotect."""

from __future__ import annotations

import os

import pytest

from netstack.ipsec.errors import IcvFailure, ReplayedPacket
from netstack.ipsec.esp import protect, unprotect
from netstack.ipsec.replay import ReplayWindow
from netstack.ipsec.sa import SecurityAssociation
from netstack.ipsec.transforms import AES_GCM_16


def _accept(window: ReplayWindow, seq: int) -> bool:
    if not window.check(seq):
        return False
    window.update(seq)
    return True


def test_sequence_of_arrivals_window_64() -> None:
    w = ReplayWindow(64)
    assert not w.check(0)  # 0 is never sent
    assert _accept(w, 1)
    assert not _accept(w, 1)  # replay
    assert _accept(w, 3)
    assert _accept(w, 2)  # late but inside the window
    assert not _accept(w, 2)  # duplicate inside the window
    assert _accept(w, 100)  # jump forward slides the window
    assert w.top == 100
    assert not w.check(36)  # 100 - 36 = 64: left of the window
    assert _accept(w, 37)  # right edge of the 64-wide window (offset 63)
    assert not _accept(w, 37)
    assert not w.check(3)


def test_check_does_not_change_state() -> None:
    w = ReplayWindow(64)
    for _ in range(3):
        assert w.check(10)
    assert (w.top, w.bitmap) == (0, 0)


def test_huge_jump_resets_bitmap() -> None:
    w = ReplayWindow(64)
    for seq in range(1, 40):
        w.update(seq)
    w.update(10_000)
    assert w.bitmap == 1
    assert w.check(10_000 - 63)
    assert not w.check(10_000 - 64)


def test_window_1024() -> None:
    w = ReplayWindow(1024)
    w.update(2000)
    assert w.check(2000 - 1023)
    assert not w.check(2000 - 1024)
    for seq in range(977, 2000):
        assert _accept(w, seq)
    assert w.bitmap == (1 << 1024) - 1
    assert not any(w.check(seq) for seq in range(977, 2001))
    assert w.check(2001)


def test_window_size_limits() -> None:
    with pytest.raises(ValueError):
        ReplayWindow(0)
    assert ReplayWindow(4096).size == 4096


def test_esn_inference_case_a_and_b() -> None:
    w = ReplayWindow(64)
    w.top = (3 << 32) | 1000  # case A: window inside subspace 3
    assert w.infer_esn(1000 - 63) == (3 << 32) | 937
    assert w.infer_esn(5000) == (3 << 32) | 5000
    assert w.infer_esn(100) == (4 << 32) | 100  # below the window: next subspace
    w.top = (3 << 32) | 10  # case B: window spans subspaces 2 and 3
    assert w.infer_esn(0xFFFFFFF0) == (2 << 32) | 0xFFFFFFF0
    assert w.infer_esn(5) == (3 << 32) | 5
    assert w.infer_esn(50_000) == (3 << 32) | 50_000
    w.top = 10  # case B at the very start: nothing before subspace 0
    assert not w.check(w.infer_esn(0xFFFFFFF0))


def _gcm_pair(window: int = 64, esn: bool = False) -> tuple[SecurityAssociation, SecurityAssociation]:
    key = os.urandom(20)
    common = {"spi": 0x2000, "algorithm": AES_GCM_16, "key": key, "replay_window_size": window, "esn": esn}
    return SecurityAssociation(**common), SecurityAssociation(**common)


def test_unprotect_replay_and_out_of_order() -> None:
    tx, rx = _gcm_pair()
    packets = [protect(tx, b"p%d" % i, 17, now=0.0) for i in range(1, 101)]
    assert unprotect(rx, packets[0], 0.0) == (17, b"p1")
    with pytest.raises(ReplayedPacket):
        unprotect(rx, packets[0], 0.0)
    assert unprotect(rx, packets[99], 0.0) == (17, b"p100")  # jump to 100
    assert unprotect(rx, packets[50], 0.0) == (17, b"p51")  # inside the window
    with pytest.raises(ReplayedPacket):
        unprotect(rx, packets[50], 0.0)
    with pytest.raises(ReplayedPacket):
        unprotect(rx, packets[10], 0.0)  # seq 11: left of the window (100 - 64)
    assert rx.packet_count == 3


def test_bad_icv_does_not_move_window() -> None:
    tx, rx = _gcm_pair()
    packets = [protect(tx, b"x" * 20, 17, now=0.0) for _ in range(200)]
    unprotect(rx, packets[0], 0.0)
    forged = bytearray(packets[199])
    forged[-1] ^= 1
    with pytest.raises(IcvFailure):
        unprotect(rx, bytes(forged), 0.0)
    assert rx.replay.top == 1  # the forged seq 200 did not slide the window
    # the genuine packet with the same number is still accepted, and seq 2 too
    assert unprotect(rx, packets[199], 0.0)[0] == 17
    assert unprotect(rx, packets[150], 0.0)[0] == 17
    forged_dup = bytearray(packets[160])
    forged_dup[20] ^= 0xFF
    with pytest.raises(IcvFailure):
        unprotect(rx, bytes(forged_dup), 0.0)
    assert unprotect(rx, packets[160], 0.0)[0] == 17  # not marked as seen by the forgery


def test_esn_crossing_32_bit_boundary() -> None:
    tx, rx = _gcm_pair(esn=True)
    tx.seq = (1 << 32) - 3
    rx.replay.top = (1 << 32) - 5
    seen = []
    for _ in range(6):
        packet = protect(tx, b"esn", 17, now=0.0)
        seen.append(int.from_bytes(packet[4:8], "big"))
        assert unprotect(rx, packet, 0.0) == (17, b"esn")
    assert seen == [0xFFFFFFFE, 0xFFFFFFFF, 0, 1, 2, 3]
    assert rx.replay.top == (1 << 32) + 3
