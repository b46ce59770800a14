"""Unit tests of the VM provisioning helpers (no root, no QEMU, no sleeps)."""

from __future__ import annotations

import lzma
import xml.etree.ElementTree as ET
from pathlib import Path

from provisioning import image_boot
from provisioning.vm import domain, hypervisor


def test_extract_vmlinux_finds_the_xz_payload() -> None:
    elf = b"\x7fELF" + bytes(range(256)) * 10
    bzimage = b"MZ header" + b"\xfd7zXZ\x00junk" + lzma.compress(elf, format=lzma.FORMAT_XZ) + b"tail"
    assert image_boot.extract_vmlinux(bzimage) == elf


def test_load_order_puts_dependencies_first_and_skips_builtins() -> None:
    deps = image_boot.parse_modules_dep(
        "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\n"
        "kernel/lib/crc16.ko:\nkernel/fs/jbd2/jbd2.ko:\n"
        "kernel/drivers/char/hw_random/virtio-rng.ko:\n")
    order = image_boot.load_order(deps, ["ext4", "virtio-rng", "builtin_thing"])
    assert order.index("kernel/lib/crc16.ko") < order.index("kernel/fs/ext4/ext4.ko")
    assert order.index("kernel/fs/jbd2/jbd2.ko") < order.index("kernel/fs/ext4/ext4.ko")
    assert "kernel/drivers/char/hw_random/virtio-rng.ko" in order
    assert len(order) == 4


def test_initramfs_is_a_newc_archive_with_init_and_trailer() -> None:
    archive = image_boot.build_initramfs(b"BB", [("kernel/a/b.ko", b"MOD")])
    assert archive.startswith(b"070701")
    assert b"init\x00" in archive and b"#!/bin/busybox sh" in archive
    assert b"kernel/a/b.ko\x00" in archive and b"TRAILER!!!\x00" in archive
    assert len(archive) % 4 == 0


def test_accelerator_without_vmx_or_svm_is_tcg(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor: 0\nflags\t\t: fpu sse2 lm\n")
    accel = hypervisor.choose_accelerator(str(cpuinfo), str(tmp_path / "no-kvm"))
    assert accel.domain_type == "qemu"
    cpuinfo.write_text("flags\t\t: fpu vmx lm\n")
    accel = hypervisor.choose_accelerator(str(cpuinfo), str(tmp_path / "no-kvm"))
    assert accel.domain_type == "qemu" and "not usable" in accel.reason


def test_domain_xml_has_two_tap_nics_without_offloads_and_ssh_forward(tmp_path: Path) -> None:
    spec = domain.VmSpec(name="x", image_key="k", image_dir=str(tmp_path), disk="/d.qcow2",
                         visited_tap="x-v", host_tap="x-h", ssh_port=2222, domain_type="qemu",
                         cmdline="console=ttyS0")
    root = ET.fromstring(domain.render_domain_xml(spec))
    assert root.get("type") == "qemu" and root.findtext("name") == "mip6term-x"
    nics = root.findall("devices/interface")
    assert [n.find("target").get("dev") for n in nics] == ["x-v", "x-h"]
    assert all(n.find("target").get("managed") == "no" for n in nics)
    assert all(n.find("driver/guest").get("csum") == "off" for n in nics)
    args = [a.get("value") for a in root.iter("{http://libvirt.org/schemas/domain/qemu/1.0}arg")]
    assert any("hostfwd=tcp:127.0.0.1:2222-:22" in a for a in args)
