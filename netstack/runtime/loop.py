"""asyncio glue between file descriptors, one timer, signals and the sans-IO core.

A daemon feeds readable descriptors (PacketLink, TunDevice, LinkMonitor) to ``add_reader``,
and after handling any input asks its sans-IO objects for their next deadline and calls
``arm(min(deadlines))`` — a single re-armable timer. When it fires, ``on_timer(now)`` runs;
the daemon then calls ``handle_timer(now)`` on its objects and re-arms.

Clock: ``now()`` is ``time.monotonic()``, the clock asyncio's default event loop uses for
``loop.time()``. Deadlines returned by the sans-IO objects are in this clock.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Iterable
from typing import Protocol

log = logging.getLogger(__name__)


class HasFileno(Protocol):
    def fileno(self) -> int: ...


def _fd(source: int | HasFileno) -> int:
    return source if isinstance(source, int) else source.fileno()


class NodeLoop:
    """Readers, a single timer and graceful stop on SIGTERM/SIGINT for one daemon.

    Create it inside the running loop (``async def main()``), or pass ``loop``.
    """

    def __init__(
        self,
        on_timer: Callable[[float], None] | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        self.on_timer = on_timer
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._readers: set[int] = set()
        self._signals: list[int] = []
        self._stop_callbacks: list[Callable[[], None]] = []
        self._stopped = asyncio.Event()
        self.stop_reason: str | None = None
        self.callback_errors = 0

    # -- clock ---------------------------------------------------------------------------

    @staticmethod
    def now() -> float:
        """Monotonic seconds: the same clock as asyncio's default ``loop.time()``."""
        return time.monotonic()

    # -- readers -------------------------------------------------------------------------

    def add_reader(self, source: int | HasFileno, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever ``source`` is readable (it must drain it)."""
        fd = _fd(source)
        self.loop.add_reader(fd, self._guarded, callback)
        self._readers.add(fd)

    def remove_reader(self, source: int | HasFileno) -> None:
        fd = _fd(source)
        self.loop.remove_reader(fd)
        self._readers.discard(fd)

    def _guarded(self, callback: Callable[[], None]) -> None:
        # One malformed packet or bug in a handler must not take the node down; asyncio
        # would log it too, but we count it for the status output.
        try:
            callback()
        except Exception:
            self.callback_errors += 1
            log.exception("callback %r failed", callback)

    # -- timer ---------------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        """The armed deadline (``now()`` clock) or None."""
        return self._deadline

    def arm(self, deadline: float | None) -> None:
        """(Re)arm the single timer for ``deadline``; None disarms it. Past deadlines fire soon."""
        if deadline == self._deadline and (deadline is None or self._timer is not None):
            return  # unchanged: avoid churning TimerHandles on every packet
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is None:
            return
        # Translate in case the loop's clock is not time.monotonic() (e.g. a test loop).
        when = self.loop.time() + (deadline - self.now())
        self._timer = self.loop.call_at(when, self._fire, deadline)

    def arm_earliest(self, deadlines: Iterable[float | None]) -> None:
        """Arm for the earliest of several ``get_timer()`` results (None entries ignored)."""
        pending = [d for d in deadlines if d is not None]
        self.arm(min(pending) if pending else None)

    def _fire(self, deadline: float) -> None:
        self._timer = None
        self._deadline = None
        # asyncio may run a handle up to one clock resolution early; a sans-IO object
        # compares now >= deadline, and "not yet" would return the same deadline and spin.
        now = max(self.now(), deadline)
        on_timer = self.on_timer
        if on_timer is not None:
            self._guarded(lambda: on_timer(now))

    # -- stop ----------------------------------------------------------------------------

    def add_stop_callback(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` during a graceful stop (persist state, send de-registrations)."""
        self._stop_callbacks.append(callback)

    def install_signal_handlers(
        self, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)
    ) -> None:
        """SIGTERM/SIGINT request a graceful stop instead of killing the process."""
        for signum in signals:
            self.loop.add_signal_handler(signum, self.stop, signal.Signals(signum).name)
            self._signals.append(signum)

    def stop(self, reason: str = "stop requested") -> None:
        """Ask ``run_until_stopped`` to finish; idempotent, safe from signal handlers."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stopped.set()

    @property
    def stopping(self) -> bool:
        return self._stopped.is_set()

    async def run_until_stopped(self) -> str:
        """Wait for ``stop()``, then run stop callbacks and release readers/timer/signals."""
        await self._stopped.wait()
        for callback in self._stop_callbacks:
            self._guarded(callback)
        self.close()
        return self.stop_reason or "stopped"

    def close(self) -> None:
        self.arm(None)
        for fd in list(self._readers):
            self.remove_reader(fd)
        for signum in self._signals:
            self.loop.remove_signal_handler(signum)
        self._signals.clear()
