"""`[fastpath]` in the guest agent's and the home agent's TOML."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FastPathSection:
    """The kernel fast path (tc programs) under the Python path.

    On by default; it falls back to the Python path, with one log line and the reason in
    `status`, where the kernel or the rights do not allow it (no root, no BPF, verifier).
    """

    enabled: bool = True
    # How often the programs' per-row counters are read back into table 230 / status (s).
    counter_interval: float = 1.0
    # Home agent: room in the bindings map (the binding cache's size limit for the fast path).
    max_bindings: int = 131072
    # Home agent: TCP super-frames (TSO/GRO) for a home address are tunnelled whole instead of
    # cut by the Python path. Only where every mobile node decapsulates them in its own fast
    # path (a mip6term guest whose fast path is active): a packet socket cannot read an
    # IPv6-in-IPv6 super-frame, and a real link carries none (its NIC cuts them).
    super_frames: bool = False
