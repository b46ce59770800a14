"""Run a blocking pyroute2 call safely from inside or outside an asyncio loop.

pyroute2 0.9's synchronous ``IPRoute`` and ``Ethtool`` drive their own private asyncio
event loop with ``run_until_complete``; called from a thread that already runs a loop (every
daemon's ``async main``) they raise ``RuntimeError: This event loop is already running``.
Such calls are rare (link setup, addresses, one-shot queries), so we run them on a short-lived
helper thread when a loop is running. A new thread inherits the network namespace of the
thread that creates it, so the call still acts on the caller's namespace.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def call_blocking(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``func(*args, **kwargs)``; off-thread if this thread runs an asyncio loop."""
    if not _loop_running_here():
        return func(*args, **kwargs)
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(func(*args, **kwargs))
        except BaseException as exc:  # re-raised in the caller's thread below
            error.append(exc)

    worker = threading.Thread(target=target, name="netlink-call", daemon=True)
    worker.start()
    worker.join()
    if error:
        raise error[0]
    return result[0]
