"""Fixtures for the vm tier: the Fig. 1 bed with the real QEMU guest as the terminal."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator

import pytest

from provisioning import topology
from tests.netns.conftest import BedHandle, _cli

_bed_counter = itertools.count()
VM_BED_UP_TIMEOUT = 600  # includes an image (re)build when the guest-side code changed


def vm_tier_available() -> str | None:
    """Why the vm tier cannot run here, or None."""
    if os.geteuid() != 0:
        return "vm tests need root"
    for tool in ("qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (run scripts/setup.sh)"
    try:
        import fabric  # noqa: F401
        import libvirt  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} not installed (pip install -e '.[vm]')"
    return None


def new_prefix() -> str:
    return f"v{os.getpid() % 1000}x{next(_bed_counter)}"


def bring_up_vm_bed(*extra: str) -> Iterator[BedHandle]:
    """A whole bed with `--guest vm` (and `extra` flags of `testbed up`), torn down afterwards
    (VM, TAPs, namespaces)."""
    reason = vm_tier_available()
    if reason:
        pytest.skip(reason)
    prefix = new_prefix()
    bed = BedHandle(prefix=prefix, state_dir=topology.state_dir(prefix))
    try:
        result = _cli("testbed", "up", "--prefix", prefix, "--guest", "vm", *extra,
                      timeout=VM_BED_UP_TIMEOUT)
        assert result.returncode == 0, f"testbed up --guest vm {extra} failed: {result.stderr}"
        yield bed
    finally:
        _cli("testbed", "down", "--prefix", prefix, timeout=120)


@pytest.fixture
def vm_bed() -> Iterator[BedHandle]:
    """A whole bed with `--guest vm`, torn down afterwards (VM, TAPs, namespaces)."""
    yield from bring_up_vm_bed()
