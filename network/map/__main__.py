"""`python -m network.map --config FILE`: the HMIPv6 Mobility Anchor Point daemon."""

from __future__ import annotations

import sys
from pathlib import Path

from netstack.runtime.daemon import run_daemon
from network.map.config import MapConfig, load_map_config
from network.map.daemon import MapDaemon


def _build(config: MapConfig) -> tuple[MapDaemon, Path, str]:
    return MapDaemon(config), config.node.socket_path, config.node.log_level


if __name__ == "__main__":
    sys.exit(run_daemon("map", load_map_config, _build))
