"""Sans-IO Mobile IPv6: MobileNode (BUL, table 210), HomeAgent (binding cache)."""

from __future__ import annotations

from netstack.mobility.bul import BindingState, ProtocolError
from netstack.mobility.home_agent import HomeAgent, HomeAgentPolicy
from netstack.mobility.messages import OutgoingMobilityMessage
from netstack.mobility.mobile_node import MobileNode

__all__ = [
    "BindingState",
    "HomeAgent",
    "HomeAgentPolicy",
    "MobileNode",
    "OutgoingMobilityMessage",
    "ProtocolError",
]
