"""`mip6term image build`: the guest image from the recipe in images/.

Two cached stages, each keyed by a content hash so work is redone only when its inputs change:
- base: debootstrap bookworm minbase + images/packages.txt, pruned (docs, locales, unused
  kernel modules). Keyed by the package list and the pruning code. ~1 min with cached .debs.
- image: base + the project's wheel and its dependencies (installed from a wheelhouse built
  on the host; the guest has no network) + images/overlay + the generated guest config + the
  user's SSH public key, as a raw ext4 disk (mkfs.ext4 -d, no loop devices), a PVH vmlinux
  and a tiny initramfs. Keyed by everything above plus the guest-side code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from provisioning import image_boot
from provisioning.errors import ProvisioningError
from provisioning.vm import paths

RECIPE_VERSION = "1"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
GUEST_STATE_DIR = "/run/mip6term"
GUEST_CONFIG_PATH = "etc/mip6term/guest.toml"
GUEST_LIB = "opt/mip6term/lib"
KERNEL_CMDLINE = ("console=ttyS0,115200 root=/dev/vda rw quiet loglevel=3 cryptomgr.notests "
                  "random.trust_cpu=on tsc=reliable no_timer_check i8042.noaux i8042.nokbd "
                  "mitigations=off")
# Removed from the base: documentation, translations, package caches, the distribution
# initramfs (we boot our own).
PRUNE_PATHS = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
               "usr/share/lintian", "usr/share/bug", "var/cache/apt", "var/lib/apt/lists",
               "var/cache/debconf/templates.dat-old", "var/log/bootstrap.log",
               "usr/lib/udev/hwdb.bin", "usr/lib/udev/hwdb.d")  # no udev runs in the guest
# What the guest image carries from this tree (its hash decides rebuilds).
GUEST_CODE = ("netstack", "guest_agent")


class ImageBuildError(ProvisioningError):
    pass


def _install_fastpath_objects(lib: Path, console: Console) -> None:
    """The fast path's tc programs, built here (the guest has no clang), next to their sources."""
    from netstack.fastpath.build import build_all
    from netstack.fastpath.libbpf import BpfError

    target = lib / "netstack" / "fastpath" / "build"
    target.mkdir(parents=True, exist_ok=True)
    try:
        for built in build_all():
            shutil.copy(built, target / built.name)  # newer than the sources: used as built
    except BpfError as exc:  # the guest falls back to the Python path and says why
        console.print(f"[yellow]fast path objects not built: {exc}")


@dataclass(frozen=True)
class GuestImage:
    """A built image in the cache: images/<key>/{disk.raw,vmlinux,initramfs.cpio,image.json}."""

    key: str
    directory: Path

    @property
    def disk(self) -> Path:
        return self.directory / "disk.raw"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinux"

    @property
    def initrd(self) -> Path:
        return self.directory / "initramfs.cpio"

    @property
    def host_key(self) -> Path:
        """The guest sshd's ed25519 public key, for strict host key checking."""
        return self.directory / "ssh_host_ed25519_key.pub"

    @property
    def manifest(self) -> Path:
        return self.directory / "image.json"

    @property
    def cmdline(self) -> str:
        return KERNEL_CMDLINE

    def exists(self) -> bool:
        return self.manifest.exists()

    def info(self) -> dict[str, object]:
        return json.loads(self.manifest.read_text())


def _files_under(root: Path, names: tuple[str, ...], suffixes: tuple[str, ...]) -> list[Path]:
    found: list[Path] = []
    for name in names:
        path = root / name
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += [p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes
                      and "__pycache__" not in p.parts]
    return sorted(found)


def _digest(items: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in items:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


def base_key() -> str:
    boot_code = Path(image_boot.__file__)
    return _digest([("version", RECIPE_VERSION.encode()), ("suite", SUITE.encode()),
                    ("packages", (paths.RECIPE_DIR / "packages.txt").read_bytes()),
                    ("image_boot", boot_code.read_bytes()), ("prune", repr(PRUNE_PATHS).encode())])


def guest_config_text() -> str:
    """guest.toml baked into the image: the test bed's guest config, state under /run."""
    from provisioning.nodes import agents

    return agents.render_toml(agents.guest_config(GUEST_STATE_DIR))


def image_key(public_key: str) -> str:
    root = paths.REPO_ROOT
    inputs = [(str(p.relative_to(root)), p.read_bytes())
              for p in _files_under(root, ("images", *GUEST_CODE, "pyproject.toml"),
                                    (".py", ".txt", ".toml", "", ".conf"))]
    inputs += [("image.py", Path(__file__).read_bytes()), ("base", base_key().encode()),
               ("config", guest_config_text().encode()), ("ssh", public_key.encode()),
               ("cmdline", KERNEL_CMDLINE.encode())]
    return _digest(inputs)


def current_image() -> GuestImage:
    """The image the current tree and key would build (built or not)."""
    _, public = paths.ensure_ssh_keypair()
    key = image_key(public)
    return GuestImage(key, paths.images_dir() / key)


def latest_built() -> GuestImage | None:
    images = [GuestImage(d.name, d) for d in paths.images_dir().glob("*") if d.is_dir()]
    images = [i for i in images if i.exists()]
    return max(images, key=lambda i: i.manifest.stat().st_mtime) if images else None


class _Steps:
    """Runs build steps with a rich status line and a log file for the commands' output."""

    def __init__(self, console: Console, log_path: Path) -> None:
        self.console = console
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 (closed by close())
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        started = time.monotonic()
        self.log.write(f"\n=== {title}\n")
        self.log.flush()
        with self.console.status(f"[bold]image:[/] {title} ..."):
            yield
        self.timings[title] = time.monotonic() - started
        self.console.print(f"  [green]done[/] {title} ({self.timings[title]:.1f}s)")

    def run(self, argv: list[str], **kwargs: object) -> None:
        self.log.write("$ " + " ".join(argv) + "\n")
        self.log.flush()
        result = subprocess.run(argv, stdout=self.log, stderr=subprocess.STDOUT, check=False,
                                **kwargs)  # type: ignore[call-overload]
        if result.returncode != 0:
            raise ImageBuildError(f"`{' '.join(argv[:3])} ...` failed (exit "
                                  f"{result.returncode}); build log kept at {self.log_path}")

    def close(self) -> None:
        self.log.close()


def _require_tools() -> None:
    missing = [t for t in ("debootstrap", "mkfs.ext4", "chroot") if shutil.which(t) is None]
    if missing:
        raise ImageBuildError(f"missing tools: {', '.join(missing)} (run scripts/setup.sh)")
    if os.geteuid() != 0:
        raise ImageBuildError("building the image needs root (debootstrap)")


def _du_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _build_base(steps: _Steps, key: str) -> Path:
    base_dir = paths.cache_root() / "base" / key
    rootfs = base_dir / "rootfs"
    if (base_dir / "done").exists():
        return rootfs
    shutil.rmtree(base_dir, ignore_errors=True)
    base_dir.mkdir(parents=True)
    debs = paths.cache_root() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    packages = [line.strip() for line in (paths.RECIPE_DIR / "packages.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    with steps.step(f"debootstrap {SUITE} minbase + {', '.join(packages)}"):
        steps.run(["debootstrap", "--variant=minbase", f"--cache-dir={debs}",
                   f"--include={','.join(packages)}", SUITE, str(rootfs), MIRROR])
    with steps.step("prune docs, locales, caches and unused kernel modules"):
        for rel in PRUNE_PATHS:
            target = rootfs / rel
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        for initrd in (rootfs / "boot").glob("initrd.img-*"):
            initrd.unlink()
        removed = image_boot.prune_modules(rootfs)
        steps.log.write(f"removed {removed} kernel modules\n")
        for moddir in (rootfs / "lib" / "modules").iterdir():
            steps.run(["chroot", str(rootfs), "/sbin/depmod", moddir.name])
    (base_dir / "done").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    return rootfs


def _wheelhouse(steps: _Steps, wheels: Path) -> None:
    with steps.step("wheelhouse: the project's wheel and its dependencies (pip wheel)"):
        steps.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels),
                   str(paths.REPO_ROOT)])


def _install_overlay(rootfs: Path, public_key: str) -> None:
    overlay = paths.RECIPE_DIR / "overlay"
    shutil.copytree(overlay, rootfs, dirs_exist_ok=True, symlinks=True)
    init = rootfs / "usr/local/sbin/init"
    init.unlink(missing_ok=True)
    init.symlink_to("/bin/busybox")  # busybox picks its applet from argv[0]: "init"
    config = rootfs / GUEST_CONFIG_PATH
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(guest_config_text())
    ssh = rootfs / "root/.ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh / "authorized_keys").write_text(public_key + "\n")
    os.chmod(ssh / "authorized_keys", 0o600)


def _make_disk(steps: _Steps, rootfs: Path, disk: Path) -> int:
    size = _du_bytes(rootfs)
    size_mib = int(size * 1.1 / 2**20) + 48  # ext4 metadata, logs, a deployed wheel
    with open(disk, "wb") as f:
        f.truncate(size_mib * 2**20)
    steps.run(["mkfs.ext4", "-q", "-F", "-L", "mip6term", "-m", "0", "-E", "root_owner=0:0",
               "-d", str(rootfs), str(disk)])
    return size_mib


def _prune_old_images(keep: str) -> None:
    """Older images go, except those backing an installed VM's disk (qcow2 overlays)."""
    in_use = {keep}
    for record in paths.vms_dir().glob("*/vm.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            in_use.add(json.loads(record.read_text())["image_key"])
    for directory in paths.images_dir().iterdir():
        if directory.is_dir() and directory.name not in in_use and \
                not directory.name.startswith("build-"):
            shutil.rmtree(directory, ignore_errors=True)


def build_image(console: Console | None = None, *, force: bool = False) -> GuestImage:
    """Build (or find in the cache) the image for the current tree; returns it."""
    console = console or Console()
    image = current_image()
    if image.exists() and not force:
        console.print(f"image {image.key} is up to date ({image.directory})")
        return image
    _require_tools()
    _, public_key = paths.ensure_ssh_keypair()
    paths.images_dir().mkdir(parents=True, exist_ok=True)
    log_path = paths.images_dir() / f"build-{image.key}.log"
    steps = _Steps(console, log_path)
    started = time.monotonic()
    console.rule(f"[bold]building guest image {image.key}")
    try:
        base = _build_base(steps, base_key())
        with tempfile.TemporaryDirectory(prefix=f"build-{image.key}-",
                                         dir=paths.images_dir()) as tmp:
            work = Path(tmp)
            _wheelhouse(steps, work / "wheels")
            rootfs = work / "rootfs"
            with steps.step("root file system: base + wheel + overlay + config + SSH key"):
                steps.run(["cp", "-a", "--reflink=auto", str(base), str(rootfs)])
                steps.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index",
                           "--find-links", str(work / "wheels"), "--target",
                           str(rootfs / GUEST_LIB), "mip6term"])
                _install_fastpath_objects(rootfs / GUEST_LIB, console)
                _install_overlay(rootfs, public_key)
            out = work / "out"
            out.mkdir()
            with steps.step("kernel (PVH vmlinux) and initramfs"):
                image_boot.make_boot_files(rootfs, out)
                shutil.copy(rootfs / "etc/ssh/ssh_host_ed25519_key.pub",
                            out / "ssh_host_ed25519_key.pub")
            with steps.step("disk image (mkfs.ext4 -d)"):
                rootfs_bytes = _du_bytes(rootfs)
                size_mib = _make_disk(steps, rootfs, out / "disk.raw")
            manifest = {"key": image.key, "base": base_key(), "suite": SUITE,
                        "disk_mib": size_mib, "rootfs_bytes": rootfs_bytes,
                        "build_seconds": round(time.monotonic() - started, 1),
                        "steps": {k: round(v, 1) for k, v in steps.timings.items()},
                        "cmdline": KERNEL_CMDLINE, "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
            (out / "image.json").write_text(json.dumps(manifest, indent=2) + "\n")
            shutil.rmtree(image.directory, ignore_errors=True)
            os.rename(out, image.directory)
    except BaseException:
        steps.close()
        console.print(f"[red]image build failed[/]; log kept at {log_path}")
        raise
    steps.close()
    os.replace(log_path, image.directory / "build.log")
    _prune_old_images(keep=image.key)
    console.print(f"image {image.key}: {manifest['disk_mib']} MiB raw, built in "
                  f"{manifest['build_seconds']}s ({image.directory})")
    return image
