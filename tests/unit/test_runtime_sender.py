"""BackgroundSender: frames leave in order from another thread; a backlog is bounded."""

from __future__ import annotations

import threading
from collections import Counter

from netstack.runtime import sender as sender_module
from netstack.runtime.sender import BackgroundSender


class FakeLink:
    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[bytes]] = []
        self.gate = gate
        self.threads: set[str] = set()

    def send_batch(self, frames: list[bytes]) -> int:
        if self.gate is not None:
            self.gate.wait(timeout=5)
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(frames))
        return len(frames)


def test_frames_are_sent_in_order_from_the_sender_thread() -> None:
    link = FakeLink()
    counters: Counter[str] = Counter()
    tx = BackgroundSender(link, counters)  # type: ignore[arg-type]
    for i in range(10):
        tx.submit([bytes([i]), bytes([i, i])])
    tx.close()
    sent = [f for batch in link.batches for f in batch]
    assert sent == [f for i in range(10) for f in (bytes([i]), bytes([i, i]))]
    assert threading.current_thread().name not in link.threads
    assert counters == Counter()


def test_backlog_beyond_the_limit_is_dropped_and_counted(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(sender_module, "MAX_PENDING_FRAMES", 4)
    gate = threading.Event()  # the link is stuck until the gate opens
    link = FakeLink(gate)
    counters: Counter[str] = Counter()
    tx = BackgroundSender(link, counters)  # type: ignore[arg-type]
    tx.submit([b"a", b"b", b"c"])
    tx.submit([b"d"])
    tx.submit([b"e", b"f"])  # would exceed 4 pending frames
    gate.set()
    tx.close()
    assert counters["tx_dropped_sender_backlog"] == 2
    assert [f for batch in link.batches for f in batch] == [b"a", b"b", b"c", b"d"]
