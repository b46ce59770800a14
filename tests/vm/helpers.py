"""Shared checks of the vm tier."""

from __future__ import annotations

import time
from typing import Any

from provisioning.topology import HOME_AGENT
from tests.netns.conftest import BedHandle


def wait_registered(bed: BedHandle, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        result = bed.cli("status", "--json")
        if result.returncode == 0:
            import json

            last = json.loads(result.stdout)
            for entry in last["binding_update_list"]:
                if entry.get("state") == "registered" and \
                        entry.get("destination") == str(HOME_AGENT):
                    return last
        time.sleep(0.3)
    raise AssertionError(f"the VM guest did not register within {timeout}s: {last}")
