"""Handover latency through the test bed: link change to accepted Binding Acknowledgement.

`mip6term move` re-attaches the guest's switch port (carrier down/up, as a real L2 handover)
and returns when the guest's Binding Update List shows the new registration; this repeats the
cycle b -> a -> b -> home -> b and reports min / median / max per kind of move.

Moves start at least MOVE_SPACING apart: RFC 6275 11.8 allows a mobile node at most
MAX_UPDATE_RATE (3) Binding Updates a second to one destination, so four back-to-back moves of
~60 ms each would measure the rate limiter (the 4th BU waits for the window), not the handover.
`move` polls the guest's status every 50 ms, so its numbers carry up to ~50 ms of polling; each
move also reports the guest agent's own record (carrier up seen by the agent -> BA accepted, or
-> at home), which has no polling error.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from benchmarks.report import Measurement, Skipped

CYCLE = (("a", "visited -> visited"), ("b", "visited -> visited"), ("home", "visited -> home"),
         ("b", "home -> visited"))
MOVE_SPACING = 0.5  # seconds between move starts: 3 moves span 1 s (RFC 6275 11.8, MAX_UPDATE_RATE)


def _cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioning", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def run(prefix: str = "bho", cycles: int = 5) -> tuple[list[Measurement], list[Skipped]]:
    if os.geteuid() != 0:
        return [], [Skipped("handover", "move latency", "needs root (network namespaces)")]
    from provisioning import handover

    samples: dict[str, list[float]] = {kind: [] for _, kind in CYCLE}
    agent: dict[str, list[float]] = {kind: [] for _, kind in CYCLE}
    try:
        done = _cli("testbed", "up", "--prefix", prefix, timeout=120)
        if done.returncode != 0:
            return [], [Skipped("handover", "move latency", done.stderr.strip()[-300:])]
        handover.move(prefix, "b", timeout=20)  # the first registration
        for _ in range(cycles):
            for target, kind in CYCLE:
                started = time.monotonic()
                samples[kind].append(handover.move(prefix, target, timeout=20))
                if (seconds := _agent_record(prefix, target)) is not None:
                    agent[kind].append(seconds)
                time.sleep(max(0.0, MOVE_SPACING - (time.monotonic() - started)))
    except Exception as exc:  # a failed move is a result to report, not a crash
        return [], [Skipped("handover", "move latency", f"{type(exc).__name__}: {exc}")]
    finally:
        _cli("testbed", "down", "--prefix", prefix, timeout=120)
    results = []
    rows = [(f"{kind} (link change to BA)", values) for kind, values in samples.items()]
    rows += [(f"{kind} (agent: carrier up to BA)", values) for kind, values in agent.items()]
    for name, values in rows:
        if values:
            results.append(Measurement(
                group="handover", name=name, packets=len(values),
                seconds=statistics.median(values),
                detail={"min_ms": round(min(values) * 1000),
                        "median_ms": round(statistics.median(values) * 1000),
                        "max_ms": round(max(values) * 1000), "samples": len(values)},
            ))
    return results, []


def _agent_record(prefix: str, target: str) -> float | None:
    """The guest agent's own timing of the move just done (its `handovers` list, newest last,
    taken only when it is a move to `target`: the cycle never moves twice to the same place)."""
    from ipaddress import IPv6Address

    from provisioning import control
    from provisioning.handover import TARGET_PREFIXES
    from provisioning.nodes.agents import GUEST, socket_path
    from provisioning.topology import state_dir

    try:
        status = control.request(socket_path(state_dir(prefix), GUEST), {"cmd": "status"}, 2.0)
    except Exception:  # a missing record is a gap in the table, not a failed benchmark
        return None
    records = status.get("handovers") or []
    if not records:
        return None
    where = records[-1]["to"]
    if target == "home":
        matches = where == "home"
    else:
        matches = where != "home" and IPv6Address(where) in TARGET_PREFIXES[target]
    return float(records[-1]["seconds"]) if matches else None
