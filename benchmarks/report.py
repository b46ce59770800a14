"""Benchmark results: one record per measurement, rendered as a rich table or JSON."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Measurement:
    """One measured figure. `pps` and `mbit_s` are None when the run does not define them."""

    group: str  # "inprocess", "testbed", "tayga"
    name: str
    pps: float | None = None
    mbit_s: float | None = None
    loss_percent: float | None = None
    packets: int | None = None
    seconds: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """A benchmark that could not run here, and why (missing module, not root, ...)."""

    group: str
    name: str
    reason: str


def machine_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
    }


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def make_console() -> Console:
    """A console wide enough for the table when stdout is a file or a pipe (rich says 80)."""
    console = Console()
    return console if console.is_terminal else Console(width=140)


def render(results: list[Measurement], skipped: list[Skipped], console: Console) -> None:
    table = Table(title="mip6term benchmarks", show_lines=False)
    table.add_column("group")
    table.add_column("benchmark")
    table.add_column("payload B", justify="right")
    table.add_column("packets/s", justify="right")
    table.add_column("sent pkt/s", justify="right")
    table.add_column("Mbit/s", justify="right")
    table.add_column("loss %", justify="right")
    table.add_column("notes")
    for m in results:
        notes = ", ".join(f"{k}={v}" for k, v in m.detail.items()
                          if k in _NOTE_KEYS and v is not None)
        payload = m.detail.get("payload")
        table.add_row(m.group, m.name, "-" if payload is None else str(payload), _fmt(m.pps),
                      _fmt(m.detail.get("sent_pps")), _fmt(m.mbit_s, 1),
                      _fmt(m.loss_percent, 2), notes)
    console.print(table)
    for s in skipped:
        console.print(f"[yellow]skipped[/] {s.group}/{s.name}: {s.reason}")
    info = machine_info()
    console.print(f"machine: {info['cpus']} CPUs, {info['implementation']} {info['python']}, "
                  f"Linux {info['kernel']}")


# Detail keys short enough to show in the table's notes column.
_NOTE_KEYS = ("arrived_pps", "cpu_percent", "retransmits", "note", "min_ms", "median_ms", "max_ms", "samples")


def to_json(results: list[Measurement], skipped: list[Skipped]) -> dict[str, Any]:
    return {
        "machine": machine_info(),
        "results": [asdict(m) for m in results],
        "skipped": [asdict(s) for s in skipped],
    }


def write_json(path: str, results: list[Measurement], skipped: list[Skipped]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(to_json(results, skipped), fh, indent=2, sort_keys=True)
        fh.write("\n")
