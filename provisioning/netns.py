"""Network namespace primitives: create/remove, sysctls, processes inside a namespace.

Namespaces are made with pyroute2.netns so `ip netns` sees them (/var/run/netns/<name>).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import IO, Any

from pyroute2 import netns as _pyroute2_netns

NETNS_RUN_DIR = "/var/run/netns"
ETC_NETNS_DIR = "/etc/netns"  # per-namespace /etc overrides, as `ip netns exec` applies them

# linux/sched.h and linux/mount.h
CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 0x80000


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
    """Move the calling process into namespace `name` (for preexec_fn; never creates it).

    Like `ip netns exec`, files in /etc/netns/<name>/ (e.g. the resolv.conf the host shim
    writes) replace their /etc counterparts for this process, in a private mount namespace.
    """
    _pyroute2_netns.setns(name, flags=0)
    bind_etc_overrides(name)


def _libc_call(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def bind_etc_overrides(name: str, etc_netns_dir: str = ETC_NETNS_DIR) -> list[str]:
    """Bind-mount each file of <etc_netns_dir>/<name>/ over /etc/<file> (iproute2's
    netns_exec bind_etc). No directory = nothing to do (and no mount namespace is made).

    Runs in a forked child (preexec_fn): unshares the mount namespace first and makes /
    a recursive slave, so the bind mounts never reach the machine's own /etc.
    Returns the /etc paths that were covered.
    """
    directory = os.path.join(etc_netns_dir, name)
    if not os.path.isdir(directory):
        return []
    libc = ctypes.CDLL(None, use_errno=True)
    _libc_call(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _libc_call(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /")
    covered = []
    for entry in sorted(os.listdir(directory)):
        target = os.path.join("/etc", entry)
        if not os.path.exists(target):
            continue  # iproute2 skips (with a warning) what it cannot cover
        source = os.path.join(directory, entry)
        _libc_call(libc.mount(source.encode(), target.encode(), b"none", MS_BIND, None),
                   f"bind {source} over {target}")
        covered.append(target)
    return covered


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


def write_sysfs(name: str, path: str, value: str | int) -> None:
    """Write /sys/`path` as seen from namespace `name` (e.g. class/net/X/gro_flush_timeout).

    /sys/class/net shows the devices of the netns that mounted sysfs, so a forked child
    enters the namespace, mounts a sysfs of its own in a private mount namespace (as `ip
    netns exec` does) and writes there. Raises OSError with the child's reason.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into the caller's code
        status = 0
        try:
            os.close(read_end)
            _pyroute2_netns.setns(name, flags=0)
            libc = ctypes.CDLL(None, use_errno=True)
            _libc_call(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
            _libc_call(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "make-rslave /")
            _libc_call(libc.mount(b"sysfs", b"/sys", b"sysfs", 0, None), "mount sysfs")
            with open(os.path.join("/sys", path), "w") as f:
                f.write(f"{value}\n")
        except BaseException as exc:  # report, never unwind into the parent's stack
            os.write(write_end, str(exc).encode()[:500])
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        reason = reader.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise OSError(f"cannot write /sys/{path} in {name}: {reason or status}")


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
