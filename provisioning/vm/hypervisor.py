"""libvirt connection and accelerator choice.

The system daemon (qemu:///system) when one is running; otherwise libvirt's embedded QEMU
driver (qemu:///embed?root=DIR), which runs inside this process and needs an event loop
thread and a qemu.conf under DIR. Domains live on after the process exits; the next
connection to the same root picks them up again.

Domain type `kvm` only when the CPU has vmx/svm and /dev/kvm answers KVM_GET_API_VERSION
(here /dev/kvm exists but cannot run a standard guest), else `qemu` (TCG, multi-threaded).
"""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from provisioning.errors import ProvisioningError
from provisioning.vm import paths

SYSTEM_SOCKETS = ("/run/libvirt/libvirt-sock", "/run/libvirt/virtqemud-sock")
KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12
# root, no confinement, and QEMU writes its own logs (no virtlogd daemon needed)
QEMU_CONF = ('user = "root"\ngroup = "root"\nsecurity_driver = "none"\nstdio_handler = "file"\n'
             'remember_owner = 0\n')

_event_loop_started = False
_event_lock = threading.Lock()


@dataclass(frozen=True)
class Accelerator:
    domain_type: str  # "kvm" or "qemu"
    reason: str


def cpu_has_virtualization(cpuinfo: str) -> bool:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            return "vmx" in flags or "svm" in flags
    return False


def choose_accelerator(cpuinfo_path: str = "/proc/cpuinfo", kvm_path: str = "/dev/kvm") -> Accelerator:
    try:
        with open(cpuinfo_path) as f:
            has_flags = cpu_has_virtualization(f.read())
    except OSError:
        has_flags = False
    if not has_flags:
        return Accelerator("qemu", "no vmx/svm CPU flag: TCG (multi-threaded)")
    try:
        fd = os.open(kvm_path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return Accelerator("qemu", f"{kvm_path} not usable ({exc.strerror}): TCG")
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as exc:
        return Accelerator("qemu", f"KVM_GET_API_VERSION failed ({exc.strerror}): TCG")
    finally:
        os.close(fd)
    if version != KVM_API_VERSION:
        return Accelerator("qemu", f"unexpected KVM API version {version}: TCG")
    return Accelerator("kvm", "vmx/svm flag and /dev/kvm answers: KVM")


def system_daemon_running() -> bool:
    import socket

    for path in SYSTEM_SOCKETS:
        if os.path.exists(path):
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(path)
                    return True
                except OSError:
                    continue
    return False


def embed_root() -> Path:
    return paths.state_root() / "libvirt"


def _start_event_loop() -> None:
    global _event_loop_started
    import libvirt

    with _event_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


def connection_uri() -> str:
    if system_daemon_running():
        return "qemu:///system"
    return f"qemu:///embed?root={embed_root()}"


def _quiet_libvirt_log() -> None:
    """libvirt's own log (e.g. the "security driver none" warning) goes to a file, not the
    CLI's stderr. Must run before libvirt is first imported (it reads the variable once)."""
    log_file = embed_root() / "libvirt.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LIBVIRT_LOG_OUTPUTS", f"3:file:{log_file}")


_quiet_libvirt_log()


def connect() -> tuple[object, str]:
    """Open libvirt; returns (virConnect, human description of which driver)."""
    try:
        import libvirt
    except ImportError as exc:
        raise ProvisioningError("libvirt-python is not installed (run scripts/setup.sh)") from exc
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors arrive as exceptions
    uri = connection_uri()
    if uri.startswith("qemu:///embed"):
        root = embed_root()
        conf = root / "etc" / "qemu.conf"  # what the embedded QEMU driver loads
        conf.parent.mkdir(parents=True, exist_ok=True)
        if not conf.exists() or conf.read_text() != QEMU_CONF:
            conf.write_text(QEMU_CONF)
        _start_event_loop()
        described = f"embedded libvirt QEMU driver ({uri}; no libvirtd running)"
    else:
        described = "libvirt system daemon (qemu:///system)"
    try:
        return libvirt.open(uri), described
    except libvirt.libvirtError as exc:
        raise ProvisioningError(f"cannot open libvirt {uri}: {exc}") from exc
