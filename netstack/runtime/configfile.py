"""TOML config files for the daemons: load, validate against a dataclass tree, one clear error.

Every field has a default that works in the test bed, so an empty file (or none) is valid.
Unknown keys are an error: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(Exception):
    """A config file is unreadable or invalid; the message is the one line shown to the user."""


_CONVERTERS: dict[Any, Any] = {
    IPv6Address: IPv6Address,
    IPv6Network: IPv6Network,
    IPv4Address: IPv4Address,
    IPv4Network: IPv4Network,
    Path: Path,
}


def _convert(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_type = args[0] if args else Any
        items = [_convert(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return build_dataclass(annotation, value, where)
    if annotation in _CONVERTERS:
        if not isinstance(value, str):
            # ipaddress takes integers too: `home_agent = 1` must not quietly become ::1.
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        try:
            return _CONVERTERS[annotation](value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation in (int, str, bool):
        if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
        return value
    return value


def build_dataclass(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from a TOML table, converting addresses and nested tables."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"[{where}] " if where else ""
        raise ConfigError(f"{prefix}unknown key {unknown[0]!r}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(value, hints[name], f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from None


def load_config(cls: type[T], path: str | Path | None) -> T:
    """Load `path` (TOML) into dataclass `cls`; None means all defaults."""
    if path is None:
        return cls()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    try:
        return build_dataclass(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


@dataclass
class NodeSection:
    """`[node]`, common to every daemon: its name, state directory and control socket.

    Each daemon subclasses it only to give `name` its own default.
    """

    name: str = "node"
    state_dir: Path = Path("/run/mip6term/m6")
    control_socket: Path | None = None  # default: <state_dir>/<name>.sock
    log_level: str = "info"

    @property
    def socket_path(self) -> Path:
        return self.control_socket or self.state_dir / f"{self.name}.sock"
