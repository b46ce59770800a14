"""The only I/O of a node: AF_PACKET links, TUN devices, link setup, control socket, loop.

Names are re-exported lazily so that a light user (the CLI importing ``control_request``)
does not pay for pyroute2 and ctypes setup.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PacketLink": "afpacket",
    "TunDevice": "tun",
    "configure_link": "linkconfig",
    "set_offloads_off": "linkconfig",
    "offload_state": "linkconfig",
    "link_is_up": "linkconfig",
    "LinkMonitor": "linkconfig",
    "ControlServer": "control",
    "ControlError": "control",
    "control_request": "control",
    "NodeLoop": "loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
