"""`python -m guest_agent --config FILE`: the terminal's mobility daemon."""

from __future__ import annotations

import sys
from pathlib import Path

from guest_agent.agent import GuestAgent
from guest_agent.config import AgentConfig, load_agent_config
from netstack.runtime.daemon import run_daemon


def _build(config: AgentConfig) -> tuple[GuestAgent, Path, str]:
    return GuestAgent(config), config.node.socket_path, config.node.log_level


if __name__ == "__main__":
    sys.exit(run_daemon("guest_agent", load_agent_config, _build))
