"""NodeLoop: timer arming, readers, graceful stop. No sleeps: deadlines are in the past."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

from netstack.runtime.loop import NodeLoop


async def _spin(times: int = 5) -> None:
    for _ in range(times):
        await asyncio.sleep(0)  # yields to the loop, no waiting


def _run(factory: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(factory())


def test_now_is_the_default_loop_clock() -> None:
    async def main() -> tuple[float, float, float]:
        node = NodeLoop()
        before = time.monotonic()
        return before, node.now(), node.loop.time()

    before, now, loop_time = _run(main)
    assert before <= now
    assert abs(loop_time - now) < 0.5


def test_past_deadline_fires_once_with_now_not_before_deadline() -> None:
    fired: list[float] = []

    async def main() -> NodeLoop:
        node = NodeLoop(fired.append)
        deadline = node.now() - 1.0
        node.arm(deadline)
        assert node.deadline == deadline
        await _spin()
        return node

    node = _run(main)
    assert len(fired) == 1
    assert node.deadline is None


def test_rearm_replaces_the_previous_timer() -> None:
    fired: list[float] = []

    async def main() -> float:
        node = NodeLoop(fired.append)
        node.arm(node.now() + 3600.0)
        soon = node.now() - 0.5
        node.arm(soon)
        await _spin()
        node.arm(None)
        return soon

    _run(main)
    assert len(fired) == 1  # only the re-armed deadline fired, the hour-long one is gone


def test_disarm_cancels() -> None:
    fired: list[float] = []

    async def main() -> None:
        node = NodeLoop(fired.append)
        node.arm(node.now() - 1.0)
        node.arm(None)
        await _spin()

    _run(main)
    assert fired == []


def test_timer_callback_gets_deadline_when_asyncio_fires_early() -> None:
    # asyncio may run a handle up to one clock resolution before its time; the callback must
    # see now >= deadline or a sans-IO object would return the same deadline and spin.
    fired: list[float] = []

    async def main() -> float:
        node = NodeLoop(fired.append)
        deadline = node.now() + 100.0
        node._fire(deadline)
        return deadline

    deadline = _run(main)
    assert fired == [deadline]


def test_arm_earliest_ignores_none() -> None:
    async def main() -> tuple[float | None, float | None]:
        node = NodeLoop(lambda now: None)
        base = node.now() + 1000.0
        node.arm_earliest([None, base + 5, base, None])
        first = node.deadline
        node.arm_earliest([None, None])
        return first - base if first is not None else None, node.deadline

    offset, after = _run(main)
    assert offset == 0.0
    assert after is None


def test_timer_callback_can_rearm_itself() -> None:
    calls: list[float] = []

    async def main() -> None:
        node = NodeLoop()

        def on_timer(now: float) -> None:
            calls.append(now)
            if len(calls) < 3:
                node.arm(now - 1.0)  # a sans-IO object asking for another round at once

        node.on_timer = on_timer
        node.arm(node.now() - 1.0)
        await _spin(10)

    _run(main)
    assert len(calls) == 3


def test_reader_callback_and_errors_do_not_stop_the_loop() -> None:
    read_fd, write_fd = os.pipe()
    seen: list[bytes] = []

    def on_readable() -> None:
        data = os.read(read_fd, 100)
        seen.append(data)
        if data == b"bad":
            raise ValueError("malformed input")

    async def main() -> NodeLoop:
        node = NodeLoop()
        node.add_reader(read_fd, on_readable)
        os.write(write_fd, b"bad")
        await _spin()
        os.write(write_fd, b"good")
        await _spin()
        node.remove_reader(read_fd)
        os.write(write_fd, b"unseen")
        await _spin()
        return node

    try:
        node = _run(main)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert seen == [b"bad", b"good"]
    assert node.callback_errors == 1


def test_sigterm_stops_gracefully_and_runs_stop_callbacks() -> None:
    read_fd, write_fd = os.pipe()
    persisted: list[str] = []

    async def main() -> tuple[str, NodeLoop]:
        node = NodeLoop(lambda now: None)
        node.install_signal_handlers()
        node.add_reader(read_fd, lambda: None)
        node.arm(node.now() + 3600.0)
        node.add_stop_callback(lambda: persisted.append("state saved"))
        node.add_stop_callback(lambda: 1 / 0)  # a failing callback must not skip the rest
        node.add_stop_callback(lambda: persisted.append("second"))
        os.kill(os.getpid(), signal.SIGTERM)
        reason = await asyncio.wait_for(node.run_until_stopped(), 5.0)
        return reason, node

    try:
        reason, node = _run(main)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert reason == "SIGTERM"
    assert persisted == ["state saved", "second"]
    assert node.deadline is None
    assert node.callback_errors == 1
    # handlers were removed again: default SIGTERM disposition is back
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_stop_is_idempotent_and_keeps_first_reason() -> None:
    async def main() -> str:
        node = NodeLoop()
        node.stop("config reload failed")
        node.stop("SIGINT")
        assert node.stopping
        return await node.run_until_stopped()

    assert _run(main) == "config reload failed"
