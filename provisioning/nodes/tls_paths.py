"""`mip6term testbed ca` and `testbed keys --tls-keylog`: the files of a `--tls-gateway` bed."""

from __future__ import annotations

import os

from provisioning.errors import ProvisioningError
from provisioning.nodes.gateway import keylog_path
from provisioning.nodes.tls_ca import ca_certificate_path
from provisioning.topology import state_dir, validate_prefix


def bed_file(prefix: str, state_root: str, which: str) -> str:
    """`which` = "ca" (the test CA's certificate) or "keys" (the outer sessions' key log)."""
    sdir = state_dir(validate_prefix(prefix), state_root)
    if not os.path.exists(ca_certificate_path(sdir)):
        raise ProvisioningError(f"test bed {prefix} has no TLS gateway "
                                "(was it brought up with --tls-gateway?)")
    if which == "ca":
        return ca_certificate_path(sdir)
    from provisioning.vm.cli import bed_vm_name

    vm = bed_vm_name(sdir)
    if vm is not None:  # the guest agent runs in the VM: fetch its key log
        from provisioning.nodes.tls_vm import fetch_keylog

        return fetch_keylog(sdir, vm)
    path = keylog_path(sdir)
    if not os.path.exists(path):
        # the agent creates it at its first outer handshake; an empty file is a valid key log
        open(path, "a").close()
    return path
