"""Transmit on a thread of its own, so the kernel's work behind each send overlaps with Python.

On a veth, `sendmmsg` runs the receiving side synchronously (bridge, the next routers, their
forwarding): measured here, half of the guest's time under load was inside that call. ctypes
releases the GIL during the call, so a sender thread lets the event loop translate and
encapsulate the next batch on the other core meanwhile.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from netstack.runtime.afpacket import PacketLink
from netstack.wire.offload import Offload

MAX_PENDING_FRAMES = 4096  # beyond this the link is not keeping up: drop and count


class BackgroundSender:
    def __init__(self, link: PacketLink, counters: Counter[str]) -> None:
        self.link = link
        self.counters = counters
        self._queue: queue.SimpleQueue[list[bytes] | tuple[list[tuple[bytes, Offload]]] | None] = (
            queue.SimpleQueue())
        self._pending = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"tx-{id(link):x}", daemon=True)
        self._thread.start()

    def submit(self, frames: list[bytes]) -> None:
        """Queue frames (immutable bytes only: they are sent later, from another thread)."""
        with self._lock:
            if self._pending + len(frames) > MAX_PENDING_FRAMES:
                self.counters["tx_dropped_sender_backlog"] += len(frames)
                return
            self._pending += len(frames)
        self._queue.put(frames)

    def submit_offloaded(self, items: list[tuple[bytes, Offload]]) -> None:
        """Queue frames with offload metadata (one GSO super-frame counts as one frame)."""
        with self._lock:
            if self._pending + len(items) > MAX_PENDING_FRAMES:
                self.counters["tx_dropped_sender_backlog"] += len(items)
                return
            self._pending += len(items)
        self._queue.put((items,))

    def _run(self) -> None:
        while True:
            frames = self._queue.get()
            if frames is None:
                return
            if isinstance(frames, tuple):
                self._send_offloaded(frames[0])
                continue
            # Coalesce what queued up meanwhile into one sendmmsg.
            while len(frames) < 64:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._send(frames)
                    return
                if isinstance(more, tuple):
                    self._send(frames)
                    frames = []
                    self._send_offloaded(more[0])
                    continue
                frames = frames + more
            if frames:
                self._send(frames)

    def _send(self, frames: list[bytes]) -> None:
        self._deliver(self.link.send_batch, frames)

    def _send_offloaded(self, items: list[tuple[bytes, Offload]]) -> None:
        self._deliver(self.link.send_offload_batch, items)

    def _deliver(self, send: Callable[[Any], int], items: list[Any]) -> None:
        try:
            sent = send(items)
        except OSError:
            sent = 0
        if sent < len(items):
            self.counters["tx_dropped_link_busy"] += len(items) - sent
        with self._lock:
            self._pending -= len(items)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=2.0)
