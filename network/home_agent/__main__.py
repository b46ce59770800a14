"""`python -m network.home_agent --config FILE`: the home agent daemon."""

from __future__ import annotations

import sys
from pathlib import Path

from netstack.runtime.daemon import run_daemon
from network.home_agent.config import HomeAgentConfig, load_home_agent_config
from network.home_agent.daemon import HomeAgentDaemon


def _build(config: HomeAgentConfig) -> tuple[HomeAgentDaemon, Path, str]:
    return HomeAgentDaemon(config), config.node.socket_path, config.node.log_level


if __name__ == "__main__":
    sys.exit(run_daemon("home_agent", load_home_agent_config, _build))
