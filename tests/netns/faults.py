"""Fault injection for the netns tier (issue 15): loss on a switch port, SIGKILL of a daemon.

Loss: an nftables bridge table in the switch namespace drops `percent`% of the frames that
enter or leave one port (`numgen random mod 100 < percent`), counting what it dropped. While
it is on, the frames crossing that port are wire-sized (`wire_sized_frames`). Every helper is
bounded: the table goes with `clear_loss` or with the bed, the link settings are restored.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator

from provisioning import netns, processes
from provisioning.nodes import agents
from provisioning.offloads import link_features
from provisioning.topology import GUEST_SWITCH_PORT, SWITCH, namespace

LOSS_TABLE = "m6loss"


def loss_script(port: str, percent: int) -> str:
    if not 0 <= percent <= 100:
        raise ValueError("percent must be 0..100")
    return (
        f"add table bridge {LOSS_TABLE}\n"
        f"delete table bridge {LOSS_TABLE}\n"
        f"table bridge {LOSS_TABLE} {{\n"
        "  chain lossy {\n"
        "    type filter hook forward priority -200; policy accept;\n"
        f"    iifname \"{port}\" numgen random mod 100 < {percent} counter drop comment \"in\"\n"
        f"    oifname \"{port}\" numgen random mod 100 < {percent} counter drop comment \"out\"\n"
        "  }\n"
        "}\n"
    )


def _nft(prefix: str, args: list[str], script: str | None = None) -> str:
    result = netns.run(namespace(prefix, SWITCH), ["nft", *args],
                       input=script.encode() if script else None, timeout=10)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def set_loss(prefix: str, percent: int, port: str = GUEST_SWITCH_PORT) -> None:
    """Drop `percent`% of the frames in each direction on `port` (the visited link)."""
    _nft(prefix, ["-f", "-"], loss_script(port, percent))


def loss_counters(prefix: str) -> dict[str, int]:
    """Frames dropped so far: {"in": n, "out": n}."""
    data = json.loads(_nft(prefix, ["-j", "list", "table", "bridge", LOSS_TABLE]))
    counts: dict[str, int] = {}
    for item in data["nftables"]:
        rule = item.get("rule")
        if rule is None:
            continue
        for expr in rule["expr"]:
            if "counter" in expr:
                counts[rule.get("comment", "?")] = expr["counter"]["packets"]
    return counts


def clear_loss(prefix: str) -> None:
    _nft(prefix, ["-f", "-"], f"add table bridge {LOSS_TABLE}\ndelete table bridge {LOSS_TABLE}\n")


# The lite bed's veths carry super-frames (TSO/GSO kept, GRO at the guest's port: topology.
# OFFLOAD_ENDS, GRO_ENDS, the fast path's super_frames), up to 64 KB each. A frame dropped by
# the loss rule would then be ~45 segments lost at once, a burst loss no radio link has: at
# 20% the guest's 21 MiB download crawled (67 s here, > 240 s in CI, 130 drops instead of
# ~4,000). While loss is on, the ends that feed the guest's switch port segment in software
# (as a NIC without TSO would) and its GRO is off, so the rule drops MTU-sized frames.
SEGMENTATION_FEATURES = ("tx-scatter-gather-fraglist", "tx-gso-list", "tx-tcp-segmentation",
                         "tx-tcp-ecn-segmentation", "tx-tcp-mangleid-segmentation",
                         "tx-tcp6-segmentation", "tx-ipxip4-segmentation",
                         "tx-ipxip6-segmentation", "tx-udp-segmentation")
GRO_FEATURES = ("rx-gro", "rx-udp-gro-forwarding")
# (node, interface, features to turn off): the access routers' and the guest's ends towards
# the switch transmit wire-sized frames; the guest's switch port does not coalesce them.
WIRE_SIZED_ENDS = (("ar-a", "eth0", SEGMENTATION_FEATURES),
                   ("ar-b", "eth0", SEGMENTATION_FEATURES),
                   ("guest", "eth0", SEGMENTATION_FEATURES),
                   (SWITCH, GUEST_SWITCH_PORT, GRO_FEATURES))


@contextlib.contextmanager
def wire_sized_frames(prefix: str) -> Iterator[None]:
    """Frames crossing the guest's switch port are at most one MTU for the duration."""
    saved: list[tuple[str, str, dict[str, bool]]] = []  # (namespace, interface, state)
    try:
        for node, ifname, names in WIRE_SIZED_ENDS:
            ns = namespace(prefix, node)
            saved.append((ns, ifname, link_features(ns, ifname, names=names)))
            after = link_features(ns, ifname, dict.fromkeys(names, False))
            still_on = [n for n in names if after.get(n)]
            assert not still_on, f"{node} {ifname}: cannot turn off {still_on}"
        yield
    finally:
        for ns, ifname, state in reversed(saved):
            link_features(ns, ifname, state)


@contextlib.contextmanager
def loss(prefix: str, percent: int) -> Iterator[None]:
    with wire_sized_frames(prefix):
        set_loss(prefix, percent)
        try:
            yield
        finally:
            clear_loss(prefix)


def kill_and_restart(state_dir: str, node: str, *, down_for: float = 0.5) -> tuple[int, int]:
    """SIGKILL the agent `node` (no chance to save anything), wait, start it again from its
    recorded command line. Returns (old pid, new pid)."""
    old = processes.read_pid(state_dir, node)
    assert old is not None and netns.pid_alive(old), f"{node} is not running"
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while netns.pid_alive(old) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not netns.pid_alive(old), f"{node} survived SIGKILL"
    time.sleep(down_for)
    spec = processes.load_spec(state_dir, node)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(agents.socket_path(state_dir, node))
    processes.start(state_dir, spec)
    agents.wait_ready(state_dir, node)
    new = processes.read_pid(state_dir, node)
    assert new is not None and new != old
    return old, new
