"""The home agent's fast path (bpf/ha.bpf.c): its maps, written from the Python control plane.

`HomeAgentFastPath` loads the object (the bindings map sized for the binding cache), attaches
`home_link_ingress` to the home link when an interface is given, and offers `set_state`
(HA address, home prefix, MACs, MTU), `bind(hoa, coa)` / `unbind(hoa)` on binding cache
events, `push_bindings` after a restart, and `stats()` / `as_dict()` for `status`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Network
from pathlib import Path
from typing import Any

from netstack.fastpath.attach import attach_ingress, detach
from netstack.fastpath.build import object_path
from netstack.fastpath.libbpf import BpfObject, StateElement

PROGRAM = "home_link_ingress"
STATS = ("intercepted", "detunnelled", "passed", "errors")
DEFAULT_MAX_BINDINGS = 131072

_STATE = struct.Struct("<16s16s16s6s6sIHBB")
_BINDING = struct.Struct("<16sQQ")
_U32 = struct.Struct("<I")
_ZERO_MAC = b"\x00" * 6


@dataclass
class HomeAgentState:
    address: bytes
    home_prefix: IPv6Network
    own_mac: bytes
    router_mac: bytes | None
    ifindex: int
    mtu: int = 1500
    enabled: bool = True
    super_frames: bool = False  # [fastpath] super_frames: TCP GSO frames tunnelled whole

    def pack(self) -> bytes:
        return _STATE.pack(
            self.address,
            self.home_prefix.network_address.packed,
            self.home_prefix.netmask.packed,
            self.own_mac,
            self.router_mac or _ZERO_MAC,
            self.ifindex,
            self.mtu,
            self.enabled,
            self.super_frames,
        )


@dataclass
class HomeAgentFastPath:
    interface: str | None = None
    max_bindings: int = DEFAULT_MAX_BINDINGS
    object_file: Path | None = None
    obj: BpfObject = field(init=False)
    _bound: set[bytes] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.obj = BpfObject(self.object_file or object_path("ha"),
                             max_entries={"bindings": self.max_bindings})
        try:
            self.state = StateElement(self.obj.map("state", 4, _STATE.size))
            self.bindings = self.obj.map("bindings", 16, _BINDING.size)
            self.stats_map = self.obj.map("stats", 4, 8, per_cpu=True)
            self.program_fd = self.obj.program_fd(PROGRAM)
            if self.interface:
                attach_ingress(self.interface, self.program_fd, "mip6term_ha")
        except BaseException:
            self.close()
            raise

    def set_state(self, state: HomeAgentState) -> bool:
        return self.state.write(state.pack())

    def bind(self, home_address: bytes, care_of_address: bytes) -> None:
        """A binding created or moved: one element replaced, so the CoA changes atomically."""
        self.bindings.update(home_address, _BINDING.pack(care_of_address, 0, 0))
        self._bound.add(home_address)

    def unbind(self, home_address: bytes) -> None:
        self.bindings.delete(home_address)
        self._bound.discard(home_address)

    def push_bindings(self, bindings: dict[bytes, bytes]) -> None:
        self.bindings.clear()
        self._bound.clear()
        for hoa, coa in bindings.items():
            self.bind(hoa, coa)

    def binding_counters(self) -> dict[bytes, tuple[int, int]]:
        return {key: _BINDING.unpack(value)[1:] for key, value in self.bindings.items()}

    def stats(self) -> dict[str, int]:
        return {name: self.stats_map.per_cpu_u64_sum(_U32.pack(i)) for i, name in enumerate(STATS)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "programs": {PROGRAM: self.interface},
            "maps": {"bindings": len(self._bound), "bindings_max": self.max_bindings},
            "packets": self.stats(),
        }

    def close(self) -> None:
        if self.interface:
            detach(self.interface)
        self.obj.close()
