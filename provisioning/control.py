"""Client for the daemons' control sockets: one JSON request/response per unix connection.

Uses netstack.runtime.control.control_request when it exists; the private fallback speaks
the same protocol (request JSON, shutdown write side, read the JSON answer until EOF).
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from provisioning.errors import ProvisioningError


def _fallback_request(path: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = json.loads(b"".join(chunks) or b"null")
    if not isinstance(answer, dict):
        raise ValueError(f"control answer is not an object: {answer!r}")
    return answer


def request(path: str, req: dict[str, Any], timeout: float = 2.0) -> dict[str, Any]:
    """Send req to the control socket at path; ProvisioningError when nobody answers."""
    try:
        from netstack.runtime.control import ControlError, control_request
    except ImportError:
        control_request, ControlError = _fallback_request, OSError
    try:
        return control_request(path, req, timeout)
    except (OSError, ValueError, ControlError) as exc:
        raise ProvisioningError(f"control socket {path}: {exc}") from exc


def wait_for_ping(path: str, timeout: float) -> None:
    """Poll {"cmd": "ping"} until it answers or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            request(path, {"cmd": "ping"}, timeout=1.0)
            return
        except ProvisioningError as exc:
            last = exc
            time.sleep(0.1)
    raise ProvisioningError(f"no answer on {path} within {timeout:g}s ({last})")
