"""Sans-IO Neighbor Discovery, SLAAC, DAD and movement detection (see docs/contracts.md)."""

from __future__ import annotations

from netstack.nd.config import NdConfig
from netstack.nd.events import (
    AddressDuplicate,
    AddressExpired,
    AddressReady,
    MapDiscovered,
    MovementDetected,
    NdEvent,
    RouterChanged,
)
from netstack.nd.host import NdHost

__all__ = [
    "AddressDuplicate",
    "AddressExpired",
    "AddressReady",
    "MapDiscovered",
    "MovementDetected",
    "NdConfig",
    "NdEvent",
    "NdHost",
    "RouterChanged",
]
