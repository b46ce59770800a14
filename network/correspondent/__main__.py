"""`python -m network.correspondent --config FILE`: the correspondent node daemon."""

from __future__ import annotations

import sys
from pathlib import Path

from netstack.runtime.daemon import run_daemon
from network.correspondent.config import CorrespondentConfig, load_correspondent_config
from network.correspondent.daemon import CorrespondentDaemon


def _build(config: CorrespondentConfig) -> tuple[CorrespondentDaemon, Path, str]:
    return CorrespondentDaemon(config), config.node.socket_path, config.node.log_level


if __name__ == "__main__":
    sys.exit(run_daemon("correspondent", load_correspondent_config, _build))
