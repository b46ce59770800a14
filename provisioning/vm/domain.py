"""The appliance VM: its record on disk, its libvirt domain XML, and its life cycle.

NICs, in PCI order (so the guest kernel names them eth0, eth1, eth2 without udev):
- eth0: virtual network 14, a TAP for the visited network (bridged by the caller);
- eth1: virtual network 15, a TAP that the host side uses like the lite-mode veth;
- eth2: management only, QEMU user networking with SSH forwarded from 127.0.0.1:<port>.
The TAPs are created here (pyroute2) and opened by QEMU with managed='no', so they can be
moved into the test bed's namespaces while the VM runs.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from pyroute2 import IPRoute

from provisioning.errors import ProvisioningError
from provisioning.image import GuestImage
from provisioning.vm import hypervisor, paths

DOMAIN_PREFIX = "mip6term-"
MAC_VISITED = "52:54:00:6d:36:00"
MAC_HOST = "52:54:00:6d:36:01"
MAC_MGMT = "52:54:00:6d:36:02"
MGMT_PCI_SLOT = 0x1E  # last on the bus: the management NIC is always eth2
# No checksum/segmentation offloads on the agent's NICs: otherwise QEMU lets the host hand
# the TAP packets with unfinished checksums (and 64 KB GSO frames) that reach the guest's
# AF_PACKET socket as they are (the same reason lite mode turns veth offloads off).
NO_OFFLOADS = ("<driver name='qemu'><host csum='off' gso='off' tso4='off' tso6='off' ecn='off' "
               "ufo='off' mrg_rxbuf='off'/><guest csum='off' tso4='off' tso6='off' ecn='off' "
               "ufo='off'/></driver>")


@dataclass
class VmSpec:
    name: str
    image_key: str
    image_dir: str
    disk: str
    visited_tap: str
    host_tap: str
    ssh_port: int
    domain_type: str
    cmdline: str
    memory_mib: int = 512
    vcpus: int = 2

    @property
    def domain_name(self) -> str:
        return DOMAIN_PREFIX + self.name

    @property
    def directory(self) -> Path:
        return paths.vm_dir(self.name)

    @property
    def console_socket(self) -> Path:
        return self.directory / "console.sock"

    @property
    def console_log(self) -> Path:
        return self.directory / "console.log"

    @property
    def image(self) -> GuestImage:
        return GuestImage(self.image_key, Path(self.image_dir))


def record_path(name: str) -> Path:
    return paths.vm_dir(name) / "vm.json"


def save(spec: VmSpec) -> None:
    record_path(spec.name).write_text(json.dumps(asdict(spec), indent=2) + "\n")


def load(name: str) -> VmSpec:
    try:
        return VmSpec(**json.loads(record_path(name).read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise ProvisioningError(f"no VM {name!r} installed (run `mip6term vm install`)") from exc


def installed_names() -> list[str]:
    return sorted(p.parent.name for p in paths.vms_dir().glob("*/vm.json"))


def render_domain_xml(spec: VmSpec) -> str:
    image = spec.image
    e = escape
    return f"""<domain type='{spec.domain_type}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{e(spec.domain_name)}</name>
  <memory unit='MiB'>{spec.memory_mib}</memory>
  <vcpu>{spec.vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{e(str(image.kernel))}</kernel>
    <initrd>{e(str(image.initrd))}</initrd>
    <cmdline>{e(spec.cmdline)}</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='unsafe'/>
      <source file='{e(spec.disk)}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='ethernet'>
      <mac address='{MAC_VISITED}'/>
      <target dev='{e(spec.visited_tap)}' managed='no'/>
      <model type='virtio'/>
      {NO_OFFLOADS}
    </interface>
    <interface type='ethernet'>
      <mac address='{MAC_HOST}'/>
      <target dev='{e(spec.host_tap)}' managed='no'/>
      <model type='virtio'/>
      {NO_OFFLOADS}
    </interface>
    <serial type='unix'>
      <source mode='bind' path='{e(str(spec.console_socket))}'/>
      <log file='{e(str(spec.console_log))}' append='off'/>
      <target port='0'/>
    </serial>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='none'/>
    <video><model type='none'/></video>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=mgmt,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='virtio-net-pci,netdev=mgmt,mac={MAC_MGMT},addr={MGMT_PCI_SLOT:#x}'/>
  </qemu:commandline>
</domain>
"""


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_tap(name: str) -> None:
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=name):
            ipr.link("add", ifname=name, kind="tuntap", mode="tap")


def delete_tap(name: str) -> None:
    """Delete the TAP if it is (still) in the root namespace; moved ones die with their netns."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            ipr.link("del", index=found[0])


def _lookup(conn: object, spec: VmSpec) -> object | None:
    import libvirt

    try:
        return conn.lookupByName(spec.domain_name)  # type: ignore[attr-defined]
    except libvirt.libvirtError:
        return None


def install(name: str, image: GuestImage, *, visited_tap: str, host_tap: str,
            memory_mib: int = 512, vcpus: int = 2) -> tuple[VmSpec, str]:
    """Create the VM's disk (qcow2 over the cached raw image), TAPs, and domain definition.
    Returns the spec and a line describing driver and accelerator."""
    if record_path(name).exists():
        raise ProvisioningError(f"VM {name!r} is already installed (`mip6term vm destroy` first)")
    accel = hypervisor.choose_accelerator()
    directory = paths.vm_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    disk = directory / "disk.qcow2"
    result = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.disk),
                             "-F", "raw", str(disk)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ProvisioningError(f"qemu-img create failed: {result.stderr.strip()}")
    spec = VmSpec(name=name, image_key=image.key, image_dir=str(image.directory), disk=str(disk),
                  visited_tap=visited_tap, host_tap=host_tap, ssh_port=free_tcp_port(),
                  domain_type=accel.domain_type, cmdline=image.cmdline, memory_mib=memory_mib,
                  vcpus=vcpus)
    for tap in (visited_tap, host_tap):
        create_tap(tap)
    conn, described = hypervisor.connect()
    try:
        conn.defineXML(render_domain_xml(spec))  # type: ignore[attr-defined]
    finally:
        conn.close()  # type: ignore[attr-defined]
    save(spec)
    return spec, f"{described}; domain type {accel.domain_type} ({accel.reason})"


def start(spec: VmSpec) -> None:
    import libvirt

    conn, _ = hypervisor.connect()
    try:
        dom = _lookup(conn, spec)
        if dom is None:
            raise ProvisioningError(f"domain {spec.domain_name} is not defined")
        for tap in (spec.visited_tap, spec.host_tap):
            with contextlib.suppress(Exception):
                create_tap(tap)  # a VM stopped earlier released its TAPs
        if not dom.isActive():  # type: ignore[attr-defined]
            try:
                dom.create()  # type: ignore[attr-defined]
            except libvirt.libvirtError as exc:
                raise ProvisioningError(f"cannot start {spec.domain_name}: {exc}") from exc
    finally:
        conn.close()  # type: ignore[attr-defined]


def is_active(spec: VmSpec) -> bool:
    conn, _ = hypervisor.connect()
    try:
        dom = _lookup(conn, spec)
        return bool(dom is not None and dom.isActive())  # type: ignore[attr-defined]
    finally:
        conn.close()  # type: ignore[attr-defined]


def power_off(spec: VmSpec) -> None:
    """Hard stop (the guest has nothing to flush: the disk cache is written on sync)."""
    conn, _ = hypervisor.connect()
    try:
        dom = _lookup(conn, spec)
        if dom is not None:
            _force_off(dom)
    finally:
        conn.close()  # type: ignore[attr-defined]


def stop(spec: VmSpec, timeout: float = 20.0) -> None:
    """Ask the guest to power off over SSH; force it off after timeout."""
    from provisioning.vm.ssh import GuestShell

    if not is_active(spec):
        return
    with contextlib.suppress(Exception), GuestShell(spec, connect_timeout=5) as shell:
        shell.run("sync; busybox poweroff", timeout=10, check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and is_active(spec):
        time.sleep(0.5)
    power_off(spec)


def _force_off(dom: Any) -> None:
    """destroy() a running domain. Right after a new process opened the embedded driver, its
    reconnect to the running QEMU may still be in progress ("domain is not running"): retry."""
    import libvirt

    for attempt in range(20):
        if not dom.isActive():
            return
        try:
            dom.destroy()
            return
        except libvirt.libvirtError:
            if attempt == 19:
                raise
            time.sleep(0.25)


def destroy(name: str) -> None:
    """Stop and undefine the domain, delete its TAPs, disk and record. Idempotent."""
    import libvirt

    spec = None
    with contextlib.suppress(ProvisioningError):
        spec = load(name)
    conn, _ = hypervisor.connect()
    try:
        try:
            dom = conn.lookupByName(DOMAIN_PREFIX + name)  # type: ignore[attr-defined]
        except libvirt.libvirtError:
            dom = None
        if dom is not None:
            _force_off(dom)
            dom.undefine()
    except libvirt.libvirtError as exc:
        raise ProvisioningError(f"cannot remove domain {DOMAIN_PREFIX + name}: {exc}") from exc
    finally:
        conn.close()  # type: ignore[attr-defined]
    if spec is not None:
        for tap in (spec.visited_tap, spec.host_tap):
            delete_tap(tap)
    shutil.rmtree(paths.vm_dir(name), ignore_errors=True)
