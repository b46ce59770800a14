"""The guest's fast boot path: an uncompressed PVH kernel and a tiny initramfs.

Under TCG, decompressing a bzImage and running a distribution initramfs cost seconds; QEMU
boots the ELF `vmlinux` directly through its PVH entry note, and our initramfs only loads the
few modules needed to mount the root disk, then switch_roots to busybox init.
"""

from __future__ import annotations

import io
import lzma
import os
import stat
from collections.abc import Iterable
from pathlib import Path

XZ_MAGIC = b"\xfd7zXZ\x00"
ELF_MAGIC = b"\x7fELF"

# Modules the initramfs loads to mount /dev/vda (ext4 asks the crypto API for crc32c).
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
# Modules the running guest needs; every other module is pruned from the image.
GUEST_MODULES = (*INITRAMFS_MODULES, "virtio_net", "virtio-rng", "tun", "af_packet",
                 "sch_ingress", "cls_bpf")  # clsact + cls_bpf: the eBPF fast path (issue 14)

INITRAMFS_INIT = """#!/bin/busybox sh
# initramfs of the mip6term guest: load the disk modules, mount /dev/vda, switch_root.
B=/bin/busybox
$B mkdir -p /proc /sys /dev /newroot
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
for m in $($B cat /modules.order); do $B insmod /$m; done
n=0
while [ ! -b /dev/vda ] && [ $n -lt 100 ]; do $B usleep 50000; n=$((n+1)); done
$B mount -t ext4 -o rw,noatime /dev/vda /newroot || exec $B sh
$B mount --move /dev /newroot/dev
$B umount /proc /sys
exec $B switch_root /newroot /usr/local/sbin/init
"""


class BootError(Exception):
    pass


def extract_vmlinux(vmlinuz: bytes) -> bytes:
    """The ELF kernel inside an xz-compressed bzImage (what scripts/extract-vmlinux does)."""
    start = vmlinuz.find(XZ_MAGIC)
    while start >= 0:
        try:
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(vmlinuz[start:])
        except lzma.LZMAError:
            elf = b""
        if elf.startswith(ELF_MAGIC):
            return elf
        start = vmlinuz.find(XZ_MAGIC, start + 1)
    raise BootError("no xz-compressed ELF kernel found in the bzImage")


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """modules.dep: 'kernel/x/a.ko: kernel/y/b.ko ...' -> {path: [dependency paths]}."""
    deps: dict[str, list[str]] = {}
    for line in text.splitlines():
        if ":" in line:
            mod, _, rest = line.partition(":")
            deps[mod.strip()] = rest.split()
    return deps


def module_name(path: str) -> str:
    name = os.path.basename(path)
    for suffix in (".ko.xz", ".ko.zst", ".ko"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.replace("-", "_")


def load_order(deps: dict[str, list[str]], wanted: Iterable[str]) -> list[str]:
    """Module paths for `wanted` (names) and all dependencies, each after what it needs.
    Built-in modules (absent from modules.dep) are skipped."""
    by_name = {module_name(path): path for path in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in wanted:
        path = by_name.get(name.replace("-", "_"))
        if path is not None:
            visit(path)
    return order


def _cpio_entry(name: str, mode: int, data: bytes = b"", ino: int = 0) -> bytes:
    """One 'newc' cpio record (the format the kernel unpacks into rootfs)."""
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
    header = b"070701" + b"".join(b"%08X" % v for v in fields)
    out = io.BytesIO()
    out.write(header + encoded)
    out.write(b"\0" * (-out.tell() % 4))
    out.write(data)
    out.write(b"\0" * (-out.tell() % 4))
    return out.getvalue()


def build_initramfs(busybox: bytes, modules: list[tuple[str, bytes]]) -> bytes:
    """Uncompressed newc archive: /init, /bin/busybox, the modules and their load order."""
    entries: list[tuple[str, int, bytes]] = [
        ("bin", stat.S_IFDIR | 0o755, b""),
        ("bin/busybox", stat.S_IFREG | 0o755, busybox),
        ("init", stat.S_IFREG | 0o755, INITRAMFS_INIT.encode()),
        ("modules.order", stat.S_IFREG | 0o644, "".join(f"{p}\n" for p, _ in modules).encode()),
    ]
    dirs: set[str] = set()
    for path, data in modules:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                entries.append((d, stat.S_IFDIR | 0o755, b""))
        entries.append((path, stat.S_IFREG | 0o644, data))
    out = b"".join(_cpio_entry(n, m, d, ino=i + 1) for i, (n, m, d) in enumerate(entries))
    return out + _cpio_entry("TRAILER!!!", 0)


def make_boot_files(rootfs: Path, out_dir: Path) -> tuple[Path, Path]:
    """Write vmlinux and initramfs.cpio for the kernel installed in rootfs; returns them."""
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise BootError(f"no kernel in {rootfs}/boot")
    version = kernels[-1].name.removeprefix("vmlinuz-")
    vmlinux = out_dir / "vmlinux"
    vmlinux.write_bytes(extract_vmlinux(kernels[-1].read_bytes()))
    moddir = rootfs / "lib" / "modules" / version
    deps = parse_modules_dep((moddir / "modules.dep").read_text())
    order = load_order(deps, INITRAMFS_MODULES)
    busybox = (rootfs / "bin" / "busybox").read_bytes()
    initramfs = out_dir / "initramfs.cpio"
    initramfs.write_bytes(build_initramfs(busybox, [(p, (moddir / p).read_bytes()) for p in order]))
    return vmlinux, initramfs


def prune_modules(rootfs: Path) -> int:
    """Delete every kernel module the guest does not use; returns how many were removed.
    The caller reruns depmod."""
    removed = 0
    for moddir in (rootfs / "lib" / "modules").iterdir():
        deps = parse_modules_dep((moddir / "modules.dep").read_text())
        keep = set(load_order(deps, GUEST_MODULES))
        for path in deps:
            if path not in keep:
                (moddir / path).unlink(missing_ok=True)
                removed += 1
    return removed
