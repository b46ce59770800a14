"""The userspace correspondent node daemon (network.correspondent) in the test bed.

Running with `testbed up --ro` (the CN's route optimisation, RFC 6275 section 9, issue 9)
and with `--ipsec e2e` (end-to-end ESP: the CN kernel has none); RO is on in both. Without
either the CN stays the plain kernel stack. The daemon takes over the CN's eth0 (it disables kernel IPv6 there, which also removes the
kernel's address and default route) and carries the CN address on a TUN, where the CN's
servers keep running as ordinary kernel applications. Start it before the servers: they
bind to the CN address, which exists only once the TUN has it.
"""

from __future__ import annotations

import contextlib
import os
import sys

from provisioning import processes
from provisioning.nodes.agents import config_path, render_toml, socket_path, wait_ready
from provisioning.topology import CN_ADDRESS, CN_EXTRA_ADDRESSES, CN_LINK

CORRESPONDENT = "cn"
MODULE = "network.correspondent"
CN_ROUTER = CN_LINK.network_address + 1  # core's eth3


def correspondent_config(state_dir: str, key_file: str | None = None
                         ) -> dict[str, dict[str, str | int | bool | list[str]]]:
    return {
        "node": {"name": CORRESPONDENT, "state_dir": state_dir,
                 "control_socket": socket_path(state_dir, CORRESPONDENT)},
        "link": {"interface": "eth0"},
        "correspondent": {"address": str(CN_ADDRESS), "prefixlen": CN_LINK.prefixlen,
                          "default_router": str(CN_ROUTER),
                          "extra_addresses": [str(a) for a in CN_EXTRA_ADDRESSES]},
        "tun": {"name": "cn0"},
        "route_optimisation": {"enabled": True},
        **({"ipsec": {"key_file": key_file, "end_to_end": True}} if key_file else {}),
    }


def start(state_dir: str, namespace: str, key_file: str | None = None) -> None:
    """Write cn.toml, start the daemon in the CN namespace and wait for its control socket."""
    with open(config_path(state_dir, CORRESPONDENT), "w") as f:
        f.write(render_toml(correspondent_config(state_dir, key_file)))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path(state_dir, CORRESPONDENT))
    processes.start(state_dir, processes.ProcessSpec(
        name=CORRESPONDENT, namespace=namespace,
        argv=[sys.executable, "-m", MODULE, "--config", config_path(state_dir, CORRESPONDENT)],
        log=os.path.join(state_dir, f"{CORRESPONDENT}.log"),
    ))
    wait_ready(state_dir, CORRESPONDENT)
