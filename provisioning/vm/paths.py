"""Where the appliance keeps things: image cache, per-user state, the SSH key pair.

XDG locations (root's when run as root): images are a cache (rebuildable), keys and VM disks
are state (losing them loses the VM).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# Repository root: the recipe data (images/) lives next to the packages (editable install).
REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE_DIR = REPO_ROOT / "images"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "mip6term"


def state_root() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "mip6term"


def images_dir() -> Path:
    return cache_root() / "images"


def vms_dir() -> Path:
    return state_root() / "vms"


def vm_dir(name: str) -> Path:
    return vms_dir() / name


def ssh_key_path() -> Path:
    return state_root() / "ssh" / "id_ed25519"


def ensure_ssh_keypair() -> tuple[Path, str]:
    """The user's key for the guest: generated once, private key 0600; returns (path, public)."""
    key = ssh_key_path()
    pub = key.with_suffix(".pub")
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(key.parent, 0o700)
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                   serialization.PublicFormat.OpenSSH)
        pub.write_text(public.decode() + " mip6term\n")
    os.chmod(key, 0o600)
    return key, pub.read_text().strip()
