"""Build the tc programs with clang (-O2 -g -target bpf); never committed, built on first use.

`python -m netstack.fastpath build` (run by scripts/setup.sh) builds every object ahead of
time; `object_path()` builds a missing or stale one on demand. The build directory is
$MIP6TERM_BPF_DIR, else `build/` next to the sources when writable, else a cache directory.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from netstack.fastpath.libbpf import BpfError

SOURCE_DIR = Path(__file__).parent / "bpf"
PROGRAMS = ("guest", "ha")


def build_dir() -> Path:
    configured = os.environ.get("MIP6TERM_BPF_DIR")
    if configured:
        return Path(configured)
    local = Path(__file__).parent / "build"
    if os.access(local if local.exists() else local.parent, os.W_OK):
        return local
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mip6term" / "bpf"


def _sources(name: str) -> list[Path]:
    return [SOURCE_DIR / f"{name}.bpf.c", SOURCE_DIR / "common.h"]


def _stale(target: Path, name: str) -> bool:
    if not target.exists():
        return True
    built = target.stat().st_mtime
    return any(src.exists() and src.stat().st_mtime > built for src in _sources(name))


def compile_object(name: str, target: Path) -> None:
    clang = shutil.which("clang") or shutil.which("clang-14")
    if clang is None:
        raise BpfError(2, "clang is not installed (apt-get install clang libbpf-dev)")
    arch = f"/usr/include/{platform.machine()}-linux-gnu"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: an agent starting meanwhile never loads half a file
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".o", dir=target.parent)
    os.close(fd)
    command = [clang, "-O2", "-g", "-target", "bpf", "-mcpu=v3", f"-I{arch}", "-Wall", "-Werror",
               "-c", str(SOURCE_DIR / f"{name}.bpf.c"), "-o", tmp]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            first = (result.stderr.strip().splitlines() or ["no output"])[0]
            raise BpfError(8, f"clang could not build {name}.bpf.c: {first}")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def object_path(name: str) -> Path:
    """The built object for `name` (guest, ha), compiled now if missing or older than its source."""
    if name not in PROGRAMS:
        raise ValueError(f"unknown fast path program {name!r}")
    target = build_dir() / f"{name}.bpf.o"
    if _stale(target, name):
        compile_object(name, target)
    return target


def build_all() -> list[Path]:
    return [object_path(name) for name in PROGRAMS]
