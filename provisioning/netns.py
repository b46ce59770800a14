"""Network namespace primitives: create/remove, sysctls, processes inside a namespace.

Namespaces are made with pyroute2.netns so `ip netns` sees them (/var/run/netns/<name>).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import IO, Any

from pyroute2 import netns as _pyroute2_netns

NETNS_RUN_DIR = "/var/run/netns"


def namespace_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def exists(name: str) -> bool:
    return os.path.exists(namespace_path(name))


def create(name: str) -> None:
    if not exists(name):
        _pyroute2_netns.create(name)


def remove(name: str) -> None:
    if exists(name):
        _pyroute2_netns.remove(name)


def list_with_prefix(prefix: str) -> list[str]:
    """Namespaces named `<prefix>-...` (the dash keeps prefix "t1" from matching "t10-x")."""
    if not os.path.isdir(NETNS_RUN_DIR):
        return []
    return sorted(n for n in os.listdir(NETNS_RUN_DIR) if n.startswith(f"{prefix}-"))


def enter(name: str) -> None:
    """Move the calling process into namespace `name` (for preexec_fn; never creates it)."""
    _pyroute2_netns.setns(name, flags=0)


@contextmanager
def inside(name: str) -> Iterator[None]:
    """Run the block with this thread in namespace `name`; sockets opened inside stay there."""
    _pyroute2_netns.pushns(name)
    try:
        yield
    finally:
        _pyroute2_netns.popns()


def write_sysctl(name: str, key: str, value: str | int) -> None:
    """Write net.* sysctl `key` ("ipv6/conf/eth0/disable_ipv6") in namespace `name`.

    /proc/sys/net resolves to the netns of the process at open() time, so we open it
    while temporarily inside the namespace.
    """
    with inside(name), open(f"/proc/sys/net/{key}", "w") as f:
        f.write(f"{value}\n")


def read_sysctl(name: str, key: str) -> str:
    with inside(name), open(f"/proc/sys/net/{key}") as f:
        return f.read().strip()


def _preexec(name: str) -> Callable[[], None]:
    def enter_namespace() -> None:
        enter(name)

    return enter_namespace


def popen(
    name: str,
    argv: Sequence[str],
    *,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
    cwd: str | None = None,
    detach: bool = False,
) -> subprocess.Popen[bytes]:
    """Start argv inside namespace `name`. detach=True: own session, survives the CLI."""
    return subprocess.Popen(
        list(argv),
        preexec_fn=_preexec(name),
        stdin=subprocess.DEVNULL if detach else None,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        start_new_session=detach,
        close_fds=True,
    )


def run(name: str, argv: Sequence[str], *, timeout: float | None = None,
        input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run argv to completion inside namespace `name`, capturing output."""
    return subprocess.run(
        list(argv), preexec_fn=_preexec(name), capture_output=True, timeout=timeout,
        input=input, check=False,
    )


def namespace_inode(name: str) -> int | None:
    try:
        return os.stat(namespace_path(name)).st_ino
    except OSError:
        return None


def pids_in_namespaces(inodes: set[int]) -> list[int]:
    """Processes whose network namespace is one of `inodes` (scan /proc/*/ns/net)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ino = os.stat(f"/proc/{entry}/ns/net").st_ino
        except OSError:
            continue  # exited or a zombie without a namespace
        if ino in inodes:
            pids.append(int(entry))
    return pids


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not running anything; treat it as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def terminate(pids: Sequence[int], *, grace: float = 3.0) -> None:
    """SIGTERM each pid, wait up to `grace` seconds, then SIGKILL what is left."""
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    remaining = [p for p in pids if pid_alive(p)]
    while remaining and time.monotonic() < deadline:
        time.sleep(0.05)
        remaining = [p for p in remaining if pid_alive(p)]
    for pid in remaining:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
