"""Run a userspace node as a daemon: logging, config errors, control socket, graceful stop.

A node object offers `start(loop)`, `on_timer(now)`, `handle_control(request) -> dict` and
`close()`. Everything protocol-related is inside the node; this module is only process glue.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from netstack.runtime.configfile import ConfigError
from netstack.runtime.control import ControlServer
from netstack.runtime.loop import NodeLoop


class Node(Protocol):
    def start(self, loop: NodeLoop) -> None: ...
    def on_timer(self, now: float) -> None: ...
    def handle_control(self, request: dict[str, Any]) -> dict[str, Any]: ...
    def close(self) -> None: ...


async def serve(node: Node, socket_path: Path) -> str:
    """Run `node` until SIGTERM/SIGINT; the control socket answers while it runs."""
    loop = NodeLoop(on_timer=node.on_timer)
    node.start(loop)
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    server = ControlServer(str(socket_path), node.handle_control)
    await server.start()
    loop.install_signal_handlers()
    loop.add_stop_callback(node.close)
    try:
        return await loop.run_until_stopped()
    finally:
        await server.close()
        socket_path.unlink(missing_ok=True)


def run_daemon(
    prog: str,
    load: Callable[[str | None], Any],
    build: Callable[[Any], tuple[Node, Path, str]],
    argv: list[str] | None = None,
) -> int:
    """Parse `--config`, build the node, serve it. Errors are one line on stderr, exit 2."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--config", help="TOML config file (defaults work in the test bed)")
    parser.add_argument("--log-level", default=None, help="debug, info, warning")
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
        node, socket_path, log_level = build(config)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"{prog}: cannot start: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=(args.log_level or log_level).upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger(prog).info("started, control socket %s", socket_path)
    reason = asyncio.run(serve(node, socket_path))
    logging.getLogger(prog).info("stopped: %s", reason)
    return 0


def merged_counters(*sources: Mapping[str, int]) -> dict[str, int]:
    """One counter dict for `status` out of a node's parts (same key: summed)."""
    merged: dict[str, int] = {}
    for source in sources:
        for key, value in source.items():
            merged[key] = merged.get(key, 0) + value
    return merged


def answer_control(
    request: dict[str, Any], node_name: str, commands: Mapping[str, Callable[[], dict[str, Any]]]
) -> dict[str, Any]:
    """The control-socket protocol every node shares: `ping`, then the node's own commands."""
    command = request.get("cmd")
    if command == "ping":
        return {"ok": True, "node": node_name}
    handler = commands.get(command) if isinstance(command, str) else None
    if handler is None:
        return {"error": f"unknown command {command!r}"}
    return handler()
