"""The state file: exactly what `up` changed, so `down` undoes that and nothing else.

Written atomically (temp file + rename) so a crash never leaves half a record.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

from host_shim.errors import ShimError

STATE_ROOT = "/run/host-shim"


@dataclass(frozen=True)
class NetItem:
    """One address or route that `up` added (kind "address" or "route")."""

    kind: str
    family: int  # 4 or 6
    destination: str  # "198.18.0.2/24" for an address, "0.0.0.0/0" for a route
    gateway: str | None = None

    def describe(self) -> str:
        if self.kind == "address":
            return f"address {self.destination}"
        via = f" via {self.gateway}" if self.gateway else ""
        return f"route {self.destination}{via}"


@dataclass(frozen=True)
class WrittenFile:
    """A resolver file `up` wrote; `previous` is its content before (None: it did not exist)."""

    path: str
    content: str
    previous: str | None = None
    previous_symlink: str | None = None


@dataclass
class ShimState:
    interface: str
    netns_name: str | None
    config: dict[str, Any]
    items: list[NetItem] = field(default_factory=list)
    preexisting: list[NetItem] = field(default_factory=list)  # wanted, but already there
    mtu_before: int | None = None
    mtu_set: int | None = None
    brought_up: bool = False
    files: list[WrittenFile] = field(default_factory=list)
    created_dirs: list[str] = field(default_factory=list)
    resolver_plan: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShimState:
        try:
            return cls(
                interface=data["interface"], netns_name=data.get("netns_name"),
                config=dict(data.get("config", {})),
                items=[NetItem(**i) for i in data.get("items", [])],
                preexisting=[NetItem(**i) for i in data.get("preexisting", [])],
                mtu_before=data.get("mtu_before"), mtu_set=data.get("mtu_set"),
                brought_up=bool(data.get("brought_up", False)),
                files=[WrittenFile(**f) for f in data.get("files", [])],
                created_dirs=list(data.get("created_dirs", [])),
                resolver_plan=list(data.get("resolver_plan", [])),
            )
        except (KeyError, TypeError) as exc:
            raise ShimError(f"state file is damaged: {exc}") from None


def default_state_file(interface: str, netns_name: str | None) -> str:
    """One state file per (namespace, interface): lite-mode hosts share the machine's /run."""
    return os.path.join(STATE_ROOT, f"{netns_name or 'default'}-{interface}.json")


def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save(path: str, state: ShimState) -> None:
    try:
        write_atomic(path, json.dumps(state.to_json(), indent=2) + "\n", mode=0o600)
    except OSError as exc:
        raise ShimError(f"cannot write state file {path}: {exc.strerror}") from None


def load(path: str) -> ShimState | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ShimError(f"cannot read state file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ShimError(f"state file {path} is not a JSON object")
    return ShimState.from_json(data)


def remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
