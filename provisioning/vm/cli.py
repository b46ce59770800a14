"""CLI commands of the appliance VM: `image build`, `vm ...`, `deploy`; VM-aware status and
agent restart. provisioning/cli.py wires these in (add_parsers, COMMANDS)."""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import termios
import time
import tty
from collections.abc import Callable
from typing import Any

from provisioning.errors import ProvisioningError

DEFAULT_VM = "appliance"


def add_parsers(sub: Any) -> None:
    image = sub.add_parser("image", help="the guest image (debootstrap recipe in images/)")
    image_sub = image.add_subparsers(dest="image_command", required=True)
    build = image_sub.add_parser("build", help="build the image (cached by content hash)")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")

    vm = sub.add_parser("vm", help="the appliance VM (libvirt)")
    vm_sub = vm.add_subparsers(dest="vm_command", required=True)
    install = vm_sub.add_parser("install", help="define the VM (builds the image if needed)")
    install.add_argument("--name", default=DEFAULT_VM, help=f"VM name (default {DEFAULT_VM})")
    install.add_argument("--bridge", help="enslave eth0's TAP to this bridge (visited network)")
    install.add_argument("--memory", type=int, default=512, help="MiB (default 512)")
    for command, text in (("start", "boot the VM and wait for SSH"),
                          ("stop", "power the VM off"),
                          ("destroy", "stop and delete the VM, its disk and TAPs"),
                          ("console", "attach to the serial console (Ctrl-] leaves)"),
                          ("ssh", "SSH into the guest (or run a command: ssh -- CMD)")):
        p = vm_sub.add_parser(command, help=text)
        p.add_argument("--name", default=DEFAULT_VM, help=f"VM name (default {DEFAULT_VM})")
        if command == "ssh":
            p.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    vm_sub.add_parser("list", help="installed VMs")

    deploy = sub.add_parser("deploy", help="push the current code (wheel) and a config into "
                            "the running guest and restart its agent")
    deploy.add_argument("--name", help=f"VM name (default {DEFAULT_VM}, or the bed's VM with "
                        "--prefix)")
    deploy.add_argument("--prefix", help="the VM of test bed PREFIX (testbed up --guest vm)")
    deploy.add_argument("--config", help="guest.toml to install (default: keep the current one)")
    deploy.add_argument("--no-code", action="store_true", help="config only, no new wheel")


def _resolve(name: str | None, prefix: str | None = None) -> Any:
    from provisioning.vm import bed, domain

    if prefix:
        return domain.load(bed.vm_name(prefix))
    return domain.load(name or DEFAULT_VM)


def _cmd_image(args: argparse.Namespace) -> int:
    from rich.console import Console

    from provisioning.image import build_image

    image = build_image(Console(), force=args.force)
    info = image.info()
    print(f"image {image.key}: disk {image.disk} ({info['disk_mib']} MiB raw), kernel "
          f"{image.kernel}, initrd {image.initrd}")
    return 0


def _console(spec: Any) -> int:
    path = str(spec.console_socket)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
        except OSError as exc:
            raise ProvisioningError(f"console {path}: {exc} (is the VM running?)") from exc
        print(f"connected to {spec.domain_name} serial console; Ctrl-] leaves", file=sys.stderr)
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd) if os.isatty(fd) else None
        try:
            if saved is not None:
                tty.setraw(fd)
            while True:
                ready, _, _ = select.select([sock, fd], [], [])
                if sock in ready:
                    data = sock.recv(4096)
                    if not data:
                        return 0
                    os.write(sys.stdout.fileno(), data)
                if fd in ready:
                    data = os.read(fd, 1024)
                    if not data or b"\x1d" in data:
                        return 0
                    sock.sendall(data)
        finally:
            if saved is not None:
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _cmd_vm(args: argparse.Namespace) -> int:
    from provisioning.vm import domain, guestops
    from provisioning.vm.ssh import wait_for_ssh

    if args.vm_command == "list":
        for name in domain.installed_names():
            spec = domain.load(name)
            state = "running" if domain.is_active(spec) else "stopped"
            print(f"{name}\t{spec.domain_name}\t{state}\tssh 127.0.0.1:{spec.ssh_port}\t"
                  f"image {spec.image_key}")
        return 0
    if args.vm_command == "install":
        from rich.console import Console

        from provisioning.image import build_image

        image = build_image(Console())
        short = args.name[:10]
        spec, described = domain.install(args.name, image, visited_tap=f"{short}-v",
                                         host_tap=f"{short}-h", memory_mib=args.memory)
        if args.bridge:
            from pyroute2 import IPRoute

            with IPRoute() as ipr:
                bridge = ipr.link_lookup(ifname=args.bridge)
                if not bridge:
                    raise ProvisioningError(f"bridge {args.bridge} not found")
                ipr.link("set", index=ipr.link_lookup(ifname=spec.visited_tap)[0],
                         master=bridge[0], state="up")
        print(f"installed {spec.domain_name}: {described}")
        print(f"eth0 = TAP {spec.visited_tap}, eth1 = TAP {spec.host_tap}, "
              f"ssh on 127.0.0.1:{spec.ssh_port}")
        return 0
    spec = _resolve(args.name)
    if args.vm_command == "start":
        started = time.monotonic()
        domain.start(spec)
        wait_for_ssh(spec, timeout=120)
        ssh_seconds = time.monotonic() - started
        from provisioning.vm.ssh import GuestShell

        with GuestShell(spec) as shell:
            guestops.wait_agent(shell, timeout=60)
        print(f"{spec.domain_name} up: SSH after {ssh_seconds:.1f}s, guest agent answering "
              f"after {time.monotonic() - started:.1f}s")
        return 0
    if args.vm_command == "stop":
        domain.stop(spec)
        print(f"{spec.domain_name} stopped")
        return 0
    if args.vm_command == "destroy":
        domain.destroy(spec.name)
        print(f"{spec.domain_name} destroyed")
        return 0
    if args.vm_command == "console":
        return _console(spec)
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    guestops.exec_ssh(spec, argv)
    return 0  # not reached


def _cmd_deploy(args: argparse.Namespace) -> int:
    from provisioning.vm import guestops

    spec = _resolve(args.name, args.prefix)
    config = None
    if args.config:
        try:
            with open(args.config) as f:
                config = f.read()
        except OSError as exc:
            raise ProvisioningError(f"cannot read {args.config}: {exc}") from exc
        import tomllib

        try:
            tomllib.loads(config)
        except tomllib.TOMLDecodeError as exc:
            raise ProvisioningError(f"{args.config} is not valid TOML: {exc}") from exc
    timings = guestops.deploy(spec, config=config, code=not args.no_code)
    print(f"deployed to {spec.domain_name}: " +
          ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return 0


def vm_status(name: str) -> dict[str, Any]:
    """`status --vm NAME`: the guest's answer over SSH (the VM has no HA of its own)."""
    from provisioning.status import merge
    from provisioning.vm import domain, guestops
    from provisioning.vm.ssh import GuestShell

    with GuestShell(domain.load(name)) as shell:
        return merge(guestops.control(shell, {"cmd": "status"}), None)


def vm_agent_restart(name: str) -> None:
    from provisioning.vm import domain, guestops
    from provisioning.vm.ssh import GuestShell

    with GuestShell(domain.load(name)) as shell:
        guestops.restart_agent(shell)


def bed_vm_name(state_dir: str) -> str | None:
    """The VM of a `testbed up --guest vm` bed, None for a lite bed (no libvirt import)."""
    try:
        with open(os.path.join(state_dir, "vm.json")) as f:
            return str(json.load(f)["vm"])
    except (OSError, ValueError, KeyError):
        return None


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "image": _cmd_image, "vm": _cmd_vm, "deploy": _cmd_deploy}
