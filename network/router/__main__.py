"""`python -m network.router --config FILE`: the router advertisement daemon."""

from __future__ import annotations

import sys
from pathlib import Path

from netstack.runtime.daemon import run_daemon
from network.router.config import RouterConfig, load_router_config
from network.router.daemon import RouterDaemon


def _build(config: RouterConfig) -> tuple[RouterDaemon, Path, str]:
    return RouterDaemon(config), config.node.socket_path, config.node.log_level


if __name__ == "__main__":
    sys.exit(run_daemon("router", load_router_config, _build))
