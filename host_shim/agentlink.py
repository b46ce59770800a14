"""Ask the guest agent how the host end should look: `{"cmd": "host_config"}` on its
control socket (netstack.runtime.control)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from host_shim.errors import AgentUnsupported, ShimError
from netstack.runtime.control import ControlError, control_request

Request = Callable[[str, dict[str, Any], float], dict[str, Any]]
HOST_CONFIG_REQUEST = {"cmd": "host_config"}


def fetch_host_config(socket_path: str, *, wait: float = 5.0,
                      request: Request = control_request,
                      clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """The agent's host_config answer, retrying for `wait` seconds while nobody answers
    (the agent may still be starting). An agent that answers with an error does not
    support the command: AgentUnsupported at once, no retry."""
    deadline = clock() + wait
    while True:
        try:
            answer = request(socket_path, HOST_CONFIG_REQUEST, 2.0)
        except (ControlError, OSError, ValueError) as exc:
            if clock() >= deadline:
                raise ShimError(f"guest agent at {socket_path} did not answer "
                                f"within {wait:g}s: {exc}") from None
            sleep(0.2)
            continue
        if not isinstance(answer, dict):
            raise ShimError(f"guest agent answered {answer!r} to host_config")
        if "error" in answer:
            raise AgentUnsupported(f"guest agent at {socket_path} does not support host_config: "
                                   f"{answer['error']}")
        return answer
