"""The TLS gateway (issue 13) with the VM guest: the files the guest agent needs inside the VM.

guest.toml's paths are rewritten from the bed's state dir to the guest's (bed.guest_config_for_vm);
this puts the test CA and the terminal's client certificate where the rewritten paths point
before the agent restarts with the policy, and fetches the outer sessions' key log back for `testbed keys --tls-keylog`.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

from provisioning.image import GUEST_STATE_DIR
from provisioning.nodes.gateway import TERMINAL_NAME, keylog_path
from provisioning.nodes.tls_ca import ca_certificate_path, server_files


def _in_guest(state_dir: str, path: str) -> str:
    return path.replace(state_dir.rstrip("/"), GUEST_STATE_DIR)


def push_files(shell: Any, state_dir: str) -> None:
    """Copy the test CA and the terminal's certificate and key into the VM (no-op for a bed
    without --tls-gateway)."""
    ca = ca_certificate_path(state_dir)
    if not os.path.exists(ca):
        return
    terminal = server_files(state_dir, TERMINAL_NAME)
    shell.run(f"mkdir -p -m 0755 {posixpath.dirname(_in_guest(state_dir, ca))}")
    for path in (ca, terminal.certificate, terminal.key):
        shell.put(path, _in_guest(state_dir, path))
    shell.run(f"chmod 0600 {_in_guest(state_dir, terminal.key)}")


def fetch_keylog(state_dir: str, vm_name: str) -> str:
    """The VM's key log copied to the bed's state dir; returns the local path."""
    from provisioning.vm import domain
    from provisioning.vm.ssh import GuestShell

    local = keylog_path(state_dir)
    with GuestShell(domain.load(vm_name)) as shell:
        text = shell.run(f"cat {_in_guest(state_dir, local)} 2>/dev/null || true").stdout
    with open(local, "w") as f:
        f.write(text)
    return local
